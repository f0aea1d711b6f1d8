"""The few errors routecli raises on purpose. Each message names the fix.

The CLI's single error boundary prints `error: <message>` on one line and exits
with `exit_code`. Nothing here may ever contain an API key: use `redact()` on any
text that came from outside before putting it in a message.
"""

from __future__ import annotations

from typing import Iterable


class RoutecliError(Exception):
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(RoutecliError):
    """Bad input from the user: empty prompt, unknown tier, unreadable image..."""

    exit_code = 2


class ConfigError(RoutecliError):
    """The config file or a config value is wrong."""

    exit_code = 2


class MissingKeyError(ConfigError):
    """No API key for a provider that needs one."""


class StoreError(RoutecliError):
    """The ledger database cannot be opened, migrated or written."""


class BudgetError(RoutecliError):
    """A call would pass a spending limit and the policy is to refuse it (or nothing fits)."""

    exit_code = 3


class ProviderError(RoutecliError):
    """A call to a model failed. `kind` is one of KINDS; it is recorded in the ledger."""

    KINDS = (
        "auth",  # 401/403: the key is wrong or lacks access
        "not_found",  # 404: unknown model or wrong base_url
        "rate_limit",  # 429
        "server",  # 5xx
        "timeout",
        "connection",  # refused, DNS, TLS
        "malformed",  # a body we cannot parse
        "bad_request",  # other 4xx, e.g. context too long, invalid parameter
        "stream_cut",  # the stream ended before the vendor said it was done
        "context_window",  # the prompt is longer than the model's context window
        "refusal",  # the model declined to answer (content filter, safety stop)
        "open_circuit",  # not called: its circuit breaker is open after repeated failures
    )

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        provider: str = "",
        model: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown provider error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after = retry_after


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret (longer than 3 characters) in text with '***'."""
    for secret in secrets:
        if secret and len(secret) > 3:
            text = text.replace(secret, "***")
    return text
