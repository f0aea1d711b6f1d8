"""`routecli serve`: an OpenAI-compatible endpoint that routes every request and records it in the ledger."""
