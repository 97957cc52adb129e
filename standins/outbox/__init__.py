"""Reading the local mail outbox (local development only: production sends through ACS)."""
