"""Read-only views of the ledger: stats and exports. The CLI commands call these."""
