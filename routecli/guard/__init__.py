"""Guard rails around each call: budgets, circuit breakers, the response cache, fallbacks and escalation.

The pure halves (which limits apply, the worst case of a call, breaker transitions, cache keys)
live here; their state lives in the store (`routecli.store.guards`), so separate routecli
processes share it.
"""
