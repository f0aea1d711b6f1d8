"""JSON on the path of every request that serve and the batch runner send: orjson (in Rust), with
the standard library's answer wherever orjson refuses what `json` takes, so what is accepted and what
is written stays the same but for the spacing, the spelling of some floats (1e-05 is written 1e-5)
and NaN (written null: NaN is not JSON).

Per request through serve, with a 260-word answer: writing the response 11 -> 0.8 µs, reading the
vendor's answer 8.9 -> 2.9 µs, the ledger row's four JSON columns 8.9 -> 1.7 µs
(benchmarks/serve_instructions.py counts the whole request).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_SORTED = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON; a float that is not finite is written as null (json wrote NaN, not JSON)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:  # an int past 64 bits, a key that is not a string: json writes them (or says why not)
        return (_SORTED if sort_keys else _COMPACT).encode(value).encode()


def loads(data: bytes | str) -> Any:
    """Parsed JSON; raises ValueError (json.JSONDecodeError) as json.loads does."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # a byte order mark, NaN, a lone surrogate, a number past a double
        return json.loads(data)
