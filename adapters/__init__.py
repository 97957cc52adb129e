"""Adapters: the only code that talks to storage SDKs (and, beside them, Stripe, mail, identity).

- `table_storage`: the Azure Table/Queue Storage port (`Storage`), returning plain rows (`Row`) and
  raising `ConcurrencyConflict` / `StorageUnavailable`, never SDK types.
- `memory_storage`: an in-memory `Storage` with the same contract (ETags, atomic transactions, Azure's
  key and size limits) for fast unit tests.
- `keys`: every PartitionKey/RowKey format, defined once.
- `subscription_repository`: the subscription partition (subscription, seats, reservations, audit)
  with typed rows; `lookup_repository`: the lookup tables for the other access paths.
"""
