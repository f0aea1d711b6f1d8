"""The built-in configuration, and the comments `routecli config init` writes beside it.

Model ids are current ids that genai-prices (the price data routecli uses) knows, so
every default model has a real price. A user's config.toml is deep-merged over this.
"""

from __future__ import annotations

from typing import Any

_OPENAI_COMPATIBLE = {
    # name: (base_url, api_key_env or None for local servers)
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "together": ("https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "mistral": ("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "ollama": ("http://localhost:11434/v1", None),
    "vllm": ("http://localhost:8000/v1", None),
    "llamacpp_server": ("http://localhost:8080/v1", None),
    "lmstudio": ("http://localhost:1234/v1", None),
}

# "local" is the in-process llama.cpp model of `pip install "routecli[local]"`; the rest are servers.
LOCAL_PROVIDERS = ("local",) + tuple(name for name, (_, env) in _OPENAI_COMPATIBLE.items() if env is None)
LOCAL_MODEL = "local:qwen2.5-coder-0.5b-instruct"


def _providers() -> dict[str, dict[str, Any]]:
    providers: dict[str, dict[str, Any]] = {
        "openai": {
            "kind": "openai",
            "base_url": "https://api.openai.com/v1",
            "api_key_env": "OPENAI_API_KEY",
        },
        "anthropic": {
            "kind": "anthropic",
            "base_url": "https://api.anthropic.com/v1",
            "api_key_env": "ANTHROPIC_API_KEY",
        },
        "gemini": {
            "kind": "gemini",
            "base_url": "https://generativelanguage.googleapis.com/v1beta",
            "api_key_env": "GEMINI_API_KEY",
        },
        "local": {"kind": "llamacpp"},
    }
    for name, (base_url, env) in _OPENAI_COMPATIBLE.items():
        entry: dict[str, Any] = {"kind": "openai", "base_url": base_url}
        if env:
            entry["api_key_env"] = env
        providers[name] = entry
    return providers


_VISION_MODELS = (
    "openai:gpt-5.4-nano",
    "openai:gpt-5.4-mini",
    "openai:gpt-5.5",
    "anthropic:claude-haiku-4-5",
    "anthropic:claude-sonnet-5",
    "anthropic:claude-opus-5",
    "gemini:gemini-3.1-flash-lite",
    "gemini:gemini-3.5-flash",
    "gemini:gemini-3.1-pro-preview",
)

DEFAULTS: dict[str, Any] = {
    "routing": {
        "tier_order": ["local", "cheap", "standard", "premium"],
        "baseline": "anthropic:claude-opus-5",
        # The learned router (routing/learned.py) beat rules-only in 10-fold tests on the shared
        # Arena data (benchmarks/routing_quality.py); these thresholds send 50% of those prompts
        # to cheap, 30% to standard and 20% to premium. `routecli calibrate` fits your traffic.
        # Below 0.263 the local model answers: the 6 sample_prompts/easy.jsonl questions and 17%
        # of the Arena prompts (once those went to cheap); the tier is skipped when not installed.
        "classifier": "learned",
        "thresholds": {"cheap": 0.263, "standard": 0.365, "premium": 0.456},
    },
    "tiers": {
        "local": {"models": [LOCAL_MODEL]},
        "cheap": {
            "models": [
                "openai:gpt-5.4-nano",
                "gemini:gemini-3.1-flash-lite",
                "anthropic:claude-haiku-4-5",
                "groq:openai/gpt-oss-20b",
            ]
        },
        "standard": {
            "models": [
                "openai:gpt-5.4-mini",
                "anthropic:claude-sonnet-5",
                "gemini:gemini-3.5-flash",
                "deepseek:deepseek-v4-pro",
            ]
        },
        "premium": {
            "models": [
                "anthropic:claude-opus-5",
                "openai:gpt-5.5",
                "gemini:gemini-3.1-pro-preview",
            ]
        },
    },
    "models": {**{ref: {"vision": True} for ref in _VISION_MODELS}, LOCAL_MODEL: {"context_window": 4096}},
    "prices": {f"{name}:*": {"input_mtok": 0, "output_mtok": 0} for name in LOCAL_PROVIDERS},
    "providers": _providers(),
    "http": {"connect_timeout": 10.0, "read_timeout": 120.0},
    # The local model judges for free, but measured on the sample prompts it judged every easy one
    # "standard" or higher: phase 2 stays opt-in (see benchmarks/local_tier.py).
    "judge": {"enabled": False, "model": LOCAL_MODEL, "band": [0.4, 0.6], "timeout": 5.0},
    "policies": {
        "agent_min_tier": {"critical": "standard"},
        "domain_min_tier": {"medical": "standard", "legal": "standard"},
    },
    "store": {"save_text": True},
    "limits": {"max_prompt_chars": 1_000_000, "default_max_tokens": 4096},
    "budgets": {"warn_share": 0.8, "on_exceed": "downgrade"},
    "fallbacks": {
        "enabled": True,
        "on": ["timeout", "server", "rate_limit", "connection", "stream_cut", "malformed", "context_window",
               "refusal"],
        "climb": True,
        "max_attempts": 4,
        # the free in-process model answers when every remote model failed (skipped when
        # routecli[local] is not installed)
        "last_resort": "local",
    },
    "breaker": {"enabled": True, "failures": 5, "failure_rate": 0.5, "window": 60.0, "min_calls": 10,
                "cooldown": 30.0},
    "cache": {"enabled": True, "ttl": 86_400.0, "max_entries": 100_000},
    "escalation": {"enabled": True, "threshold": 0.7, "max_escalations": 1},
    "alerts": {
        "enabled": True, "window_hours": 24.0, "min_requests": 20, "budget_share": 0.8, "escalation_rate": 0.3,
        "error_rate": 0.2, "anomaly_factor": 3.0, "anomaly_days": 7, "min_savings": 0.1, "min_confidence": 0.5,
    },
}

# Comments written above each section by `routecli config init` (tomli-w writes no comments).
SECTION_COMMENTS: dict[str, str] = {
    "routing": (
        "How a prompt becomes a tier. tier_order lists tiers cheapest first; the classifier\n"
        "scores each prompt 0..1 (how likely it needs a strong model) and a tier is reached\n"
        "when the score is at least its threshold. baseline is what savings are measured against."
    ),
    "tiers": (
        "Each tier lists provider:model refs in order of preference; a model whose provider has\n"
        "no key is skipped (and the decision says so). The 'local' tier runs a small model in\n"
        "this process, free and with no key, once `pip install \"routecli[local]\"` is done; a\n"
        "local server (Ollama, vLLM, LM Studio...) is a model ref such as \"ollama:llama3.2\"."
    ),
    "models": (
        "Capabilities per model: vision = true lets a model receive images; tools = false keeps\n"
        "requests with tools away; context_window (tokens) overrides the genai-prices figure."
    ),
    "judge": (
        "Phase 2 (opt-in): requests whose score falls inside band are classified by this small\n"
        "model, which must answer JSON {\"tier\", \"reason\"} within timeout seconds; answers are\n"
        "cached in the ledger; on any failure the phase-1 decision stands (and the note says so).\n"
        "ask and batch consult it; route and dry runs never call a model, so they use phase 1."
    ),
    "policies": (
        "Lowest tier per agent (--agent) and per detected domain (medical, legal, financial,\n"
        "scientific, creative, technical, educational). Explicit --tier/--model always win."
    ),
    "prices": (
        "Optional price overrides in USD per 1M tokens (input_mtok, output_mtok,\n"
        "cached_input_mtok); \"provider:*\" covers every model of a provider. Without one, prices\n"
        "come from the genai-prices data; an unknown price is recorded as unknown, never $0."
    ),
    "providers": (
        "kind is the wire format: openai | anthropic | gemini, or llamacpp for a GGUF model run in\n"
        "this process (threads, context_size; no base_url, no key). Any OpenAI-compatible vendor or\n"
        "local server is one more entry with kind = \"openai\". api_key_env names the environment\n"
        "variable holding the key (or run `routecli keys set NAME`); local servers need none.\n"
        "Prices are found from base_url; behind a proxy, set pricing_provider (a genai-prices id).\n"
        "rpm / tpm: requests and tokens per minute `routecli batch` stays under (default: no limit)."
    ),
    "http": "Timeouts in seconds; a provider entry may set its own connect_timeout / read_timeout.",
    "store": "save_text = false keeps prompts and answers out of the ledger (hashes are kept).",
    "limits": "Refuse prompts longer than max_prompt_chars; default_max_tokens caps answers when unset.",
    "budgets": (
        "Hard spending limits in dollars: daily, monthly, total (UTC days and months), and per agent\n"
        "or tag ([budgets.agents.NAME], [budgets.tags.NAME]); `batch --budget 5.00` adds one per run.\n"
        "Each call reserves its worst case first, so concurrent calls never pass a limit. At\n"
        "warn_share of a limit a warning and an alert are recorded; a call that would pass it is\n"
        "downgraded to a cheaper tier that fits, or refused (on_exceed). Free models never block."
    ),
    "fallbacks": (
        "When a call fails with one of these error kinds (after retries), the next model of the\n"
        "tier is tried, then the tiers above (climb), at most max_attempts models per request;\n"
        "last_resort names a tier tried when all of them failed (e.g. a local model)."
    ),
    "breaker": (
        "A circuit breaker per model, shared by every routecli process through the ledger: it opens\n"
        "after `failures` failures in a row, or a failure_rate within `window` seconds (of at least\n"
        "min_calls calls); open models are skipped; after cooldown seconds one probe call decides."
    ),
    "cache": (
        "Exact response cache for temperature-0 requests (same model, messages, system, max_tokens):\n"
        "a hit costs nothing and is recorded with what it saved. ttl in seconds; --no-cache skips it."
    ),
    "escalation": (
        "After each answer, a confidence 0..1 from cheap checks (refusal, hedging, cut off by\n"
        "max_tokens, invalid JSON or code, too short, another language). Below threshold the\n"
        "request is retried one tier up, at most max_escalations times; every attempt is recorded\n"
        "and linked. An answer with no warning sign scores 0.9; one strong sign takes it below 0.7."
    ),
    "alerts": (
        "Checked after each ask and batch, and by `routecli alerts`; each fires once per subject and\n"
        "UTC day and stays open until `routecli alerts ack`. A rule set to 0 is off. Over the last\n"
        "window_hours, with at least min_requests requests: escalation_rate and error_rate (per\n"
        "model) above, min_savings and min_confidence below. budget_share: a [budgets] limit this\n"
        "share spent. anomaly_factor: today's spend above k x the median of the anomaly_days before."
    ),
}
