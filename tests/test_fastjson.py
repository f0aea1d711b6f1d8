"""routecli.fastjson: orjson's speed, json's answers where orjson refuses what json takes."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routecli import fastjson

_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
            | st.text(st.characters(blacklist_categories=("Cs",))))


def _json_of(leaves):
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


_json_values = _json_of(_scalars | st.floats(allow_nan=False, allow_infinity=False))
_no_floats = _json_of(_scalars)


@given(_json_values)
def test_what_it_writes_json_reads_back_the_same(value):
    assert json.loads(fastjson.dumps(value)) == value
    assert fastjson.loads(json.dumps(value)) == value


@given(_no_floats)
def test_sorted_it_writes_the_ledger_text_json_wrote(value):
    # the ledger's JSON columns (store/models.py) are compared as text in SQL (tags = '[]')
    expected = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert fastjson.dumps(value, sort_keys=True).decode() == expected


@pytest.mark.parametrize("text", [
    '\ufeff{"a": 1}',  # a byte order mark
    '{"a": NaN, "b": Infinity}',
    '{"a": "\\ud800"}',  # a lone surrogate
    '{"a": 1e400}',  # past a double
])
def test_it_reads_what_json_reads(text):
    ours, theirs = fastjson.loads(text.encode("utf-8")), json.loads(text.encode("utf-8"))
    assert repr(ours) == repr(theirs)  # NaN != NaN, so compared as text


def test_not_json_raises_as_json_does():
    with pytest.raises(json.JSONDecodeError):
        fastjson.loads(b"{not json")


def test_ints_past_64_bits_and_non_finite_floats_are_written():
    assert json.loads(fastjson.dumps({"n": 2**70})) == {"n": 2**70}
    assert json.loads(fastjson.dumps({"x": math.nan, "y": math.inf})) == {"x": None, "y": None}
    assert fastjson.dumps({"u": "é", "t": (1, 2)}) == '{"u":"é","t":[1,2]}'.encode()
