"""`routecli batch`: many prompts, concurrent, resumable, each answered and recorded once.

source.py reads and hashes the input; runner.py sends (asyncio, rate limits, retries,
Ctrl-C); writer.py commits results in groups; session.py finds, runs and closes a run;
output.py writes the results file from the ledger.
"""
