"""Local stand-ins for the Azure Functions host and Azure Storage (see README "Local host")."""
