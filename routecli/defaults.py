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

LOCAL_PROVIDERS = tuple(name for name, (_, env) in _OPENAI_COMPATIBLE.items() if env is None)


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
        "tier_order": ["cheap", "standard", "premium"],
        "baseline": "anthropic:claude-opus-5",
        # The learned router (routing/learned.py) beat rules-only in 10-fold tests on the shared
        # Arena data (benchmarks/routing_quality.py); these thresholds send 50% of those prompts
        # to cheap, 30% to standard and 20% to premium. `routecli calibrate` fits your traffic.
        "classifier": "learned",
        "thresholds": {"standard": 0.45, "premium": 0.54},
    },
    "tiers": {
        "local": {"models": ["ollama:llama3.2"]},
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
    "models": {ref: {"vision": True} for ref in _VISION_MODELS},
    "prices": {f"{name}:*": {"input_mtok": 0, "output_mtok": 0} for name in LOCAL_PROVIDERS},
    "providers": _providers(),
    "http": {"connect_timeout": 10.0, "read_timeout": 120.0},
    "judge": {"enabled": False, "model": "openai:gpt-5.4-nano", "band": [0.4, 0.6], "timeout": 5.0},
    "policies": {
        "agent_min_tier": {"critical": "standard"},
        "domain_min_tier": {"medical": "standard", "legal": "standard"},
    },
    "store": {"save_text": True},
    "limits": {"max_prompt_chars": 1_000_000, "default_max_tokens": 4096},
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
        "no key is skipped (and the decision says so). The 'local' tier needs a running Ollama:\n"
        "add it to routing.tier_order to use it."
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
        "kind is the wire format: openai | anthropic | gemini. Any OpenAI-compatible vendor or\n"
        "local server is one more entry with kind = \"openai\". api_key_env names the environment\n"
        "variable holding the key (or run `routecli keys set NAME`); local servers need none.\n"
        "Prices are found from base_url; behind a proxy, set pricing_provider (a genai-prices id).\n"
        "rpm / tpm: requests and tokens per minute `routecli batch` stays under (default: no limit)."
    ),
    "http": "Timeouts in seconds; a provider entry may set its own connect_timeout / read_timeout.",
    "store": "save_text = false keeps prompts and answers out of the ledger (hashes are kept).",
    "limits": "Refuse prompts longer than max_prompt_chars; default_max_tokens caps answers when unset.",
}
