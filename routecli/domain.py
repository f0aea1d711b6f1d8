"""The value types every layer shares. Frozen, dependency-free, cheap to import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from routecli.errors import UsageError


@dataclass(frozen=True, slots=True)
class Image:
    """An image attached to a message, already read and base64-encoded."""

    media_type: str  # e.g. "image/png"
    data: str  # base64, without a "data:" prefix
    source: str = ""  # where it came from (path), recorded instead of the bytes


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # "user" | "assistant" | "tool"; the system prompt lives on Request
    text: str
    images: tuple[Image, ...] = ()


@dataclass(frozen=True, slots=True)
class Request:
    """What the user asked for, before any routing decision."""

    messages: tuple[Message, ...]
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    agent: str | None = None
    tags: tuple[str, ...] = ()
    tier: str | None = None  # forced tier (--tier)
    model: str | None = None  # forced "provider:model" (--model)
    tools: tuple[Mapping[str, Any], ...] = ()  # OpenAI-style function definitions, as given
    router: str | None = None  # "CLASSIFIER[:THRESHOLD]" (--router) or "router-CLASSIFIER-THRESHOLD"

    @property
    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text
        return ""

    @property
    def has_images(self) -> bool:
        return any(message.images for message in self.messages)

    def all_text(self) -> str:
        parts = [self.system or ""] + [message.text for message in self.messages]
        return "\n".join(part for part in parts if part)


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A concrete model at a configured provider, written "provider:model"."""

    provider: str
    model: str

    @classmethod
    def parse(cls, ref: str) -> ModelRef:
        provider, sep, model = ref.partition(":")
        if not sep or not provider.strip() or not model.strip():
            raise UsageError(
                f"Bad model reference {ref!r}: write it as provider:model, e.g. openai:gpt-5.4-mini"
            )
        return cls(provider.strip(), model.strip())

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The classifier's judgement of one request."""

    score: float  # estimated probability that the strong model is needed, 0..1
    tier: str
    reasons: tuple[str, ...]
    phase: str  # "explicit" | "rules" | "learned" | "judge"
    classifier: str
    version: str
    signals: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # (A/B test, variant) whose strategy made this verdict; on the verdict, not the Decision,
    # so it survives every re-choice (judge, fallback, escalation) that keeps the verdict
    ab: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict plus the concrete model chosen for it."""

    verdict: Verdict
    model: ModelRef
    tier: str  # the tier the model was taken from (may differ from verdict.tier)
    notes: tuple[str, ...] = ()  # e.g. "skipped tier cheap: no key for openai"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts, normalised across vendors the way genai-prices counts them."""

    input_tokens: int = 0  # every prompt token, cached ones included
    output_tokens: int = 0  # every generated token, reasoning included
    cached_tokens: int = 0  # prompt tokens read from the vendor's cache (subset of input)
    cache_write_tokens: int = 0  # prompt tokens written to the vendor's cache (subset of input)
    reasoning_tokens: int = 0  # thinking tokens (subset of output)


@dataclass(frozen=True, slots=True)
class Reply:
    """A model's answer and what it cost in tokens and time."""

    text: str
    usage: Usage | None  # None when the vendor reported no usage
    model: str  # the model id the vendor reported
    finish_reason: str | None = None
    ttft_ms: float | None = None  # time to first token, streaming only
    latency_ms: float = 0.0
