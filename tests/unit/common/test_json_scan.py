"""The structure of JSON text without decoding it: a whole array's elements, a whole object's top-level strings.

Checked against orjson on generated documents in several layouts (the same elements, the same strings), and on
every cut prefix of them (never whole: a page cut short must be asked for again, never judged).
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.json_scan import split_array, top_level_strings

# Text with the characters that matter to a scanner: quotes, backslashes, brackets, separators, controls.
tricky_text = st.text(st.one_of(st.sampled_from('"\\[]{},: \n\t/u'), st.characters(exclude_categories=["Cs"])),
                      max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
                    st.floats(allow_nan=False, allow_infinity=False), tricky_text)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(tricky_text, inner, max_size=4)),
                      max_leaves=16)
LAYOUTS = {
    "orjson": orjson.dumps,
    "ascii": lambda v: json.dumps(v).encode(),
    "utf-8": lambda v: json.dumps(v, ensure_ascii=False).encode(),
    "indented": lambda v: json.dumps(v, indent=2, ensure_ascii=False).encode(),
    "bom and spaces": lambda v: b"\xef\xbb\xbf \n" + json.dumps(v, separators=(" , ", " : ")).encode() + b"\r\n",
}
KEYS = frozenset({"uuid", "eventType", "published"})


def cut_prefixes(data: bytes):
    """Every prefix that ends before the closing bracket (whatever whitespace follows it is not needed)."""
    whole = len(data.rstrip(b" \t\r\n"))
    return (data[:end] for end in range(whole))


@settings(max_examples=80, deadline=None)
@given(st.lists(values, max_size=6), st.sampled_from(sorted(LAYOUTS)))
def test_split_array_gives_orjsons_elements_and_never_a_cut_prefix(array, layout):
    data = LAYOUTS[layout](array)
    elements = split_array(data)
    assert elements is not None
    assert [orjson.loads(element) for element in elements] == orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
    assert all(element == element.strip() and element for element in elements)
    for prefix in cut_prefixes(data):
        assert split_array(prefix) is None, prefix


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.one_of(st.sampled_from(sorted(KEYS)), tricky_text), values, max_size=6),
       st.sampled_from(sorted(LAYOUTS)))
def test_top_level_strings_gives_orjsons_strings_and_never_for_a_cut_prefix(document, layout):
    data = LAYOUTS[layout](document)
    decoded = orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
    assert top_level_strings(data, KEYS) == {k: v for k, v in decoded.items() if k in KEYS and isinstance(v, str)}
    for prefix in cut_prefixes(data):
        assert top_level_strings(prefix, KEYS) is None, prefix


def test_elements_orjson_refuses_are_still_elements():
    deep = b"[" * 1100 + b"]" * 1100
    bad = [b'{"a":NaN}', b'{"s":"\\ud800"}', b'{"s":"caf\xe9"}', deep, b'{"n":1e400}', b'Infinity', b'{"t":"a\tb"}']
    data = b"[" + b" , ".join(bad) + b"]"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(data)
    assert split_array(data) == bad


@pytest.mark.parametrize("data", [
    b"", b"  ", b"{}", b'"[1]"', b"[", b"[1", b"[1,", b"[1,]", b"[,1]", b"[1,,2]", b"[1]]", b"[1] x", b"[1][2]",
    b"[{]}", b"[[}]", b'["a]', b'["a\\"]', b'["a\\', b'[{"a":"}"]',
])
def test_what_is_not_a_whole_array(data):
    assert split_array(data) is None


def test_top_level_strings_reads_only_the_top_level_and_the_last_of_a_repeated_name():
    data = (b'{"uuid":"first","actor":{"uuid":"nested"},"list":["eventType","x"],"uuid":"last",'
            b'"eventType":"personal\\u002ex","published":5,"bad":NaN}')
    assert top_level_strings(data, KEYS) == {"uuid": "last", "eventType": "personal.x"}
    assert top_level_strings(b'{"uuid":"a","uuid":null}', KEYS) == {}  # the last value is not a string
    assert top_level_strings(b'{"uuid":"\\ud800","eventType":"caf\xe9"}', KEYS) == {}  # neither valid on its own
    assert top_level_strings(b'[{"uuid":"a"}]', KEYS) is None
    assert top_level_strings(b'{"uuid":"a"}}', KEYS) is None
