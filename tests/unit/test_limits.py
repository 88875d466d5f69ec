"""emailkit.limits.read_json: the one JSON reader of both servers refuses what would crash them later."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emailkit.limits import INT_MAX, INT_MIN, JSON_MAX_DEPTH, JSONLimitError, read_json


def nested(levels: int, *, leaf: str = "1") -> str:
    return "[" * levels + leaf + "]" * levels


def test_nesting_up_to_the_limit_is_read_and_one_more_is_refused() -> None:
    assert read_json(nested(JSON_MAX_DEPTH)) is not None
    with pytest.raises(JSONLimitError, match=f"nested deeper than {JSON_MAX_DEPTH} levels; flatten the document"):
        read_json(nested(JSON_MAX_DEPTH + 1))


@pytest.mark.parametrize("levels", [1_000, 100_000])
def test_nesting_that_would_exhaust_the_c_decoder_is_a_clean_refusal(levels: int) -> None:
    with pytest.raises(JSONLimitError, match="nested deeper than"):
        read_json('{"IDs": ' + nested(levels) + "}")


def test_objects_count_as_levels_too() -> None:
    doc = '{"a":' * (JSON_MAX_DEPTH + 1) + "1" + "}" * (JSON_MAX_DEPTH + 1)
    with pytest.raises(JSONLimitError) as caught:
        read_json(doc)
    assert caught.value.field.startswith("a.a.a")


@pytest.mark.parametrize("number", [INT_MAX, INT_MIN, 0, -1])
def test_64_bit_integers_are_kept_exactly(number: int) -> None:
    assert read_json(json.dumps({"n": number})) == {"n": number}


@pytest.mark.parametrize("literal", [str(INT_MAX + 1), str(INT_MIN - 1), "9" * 25, "9" * 5000, "-" + "9" * 5000,
                                     "1e999", "-1e999", "1" + "0" * 400 + ".5"])
def test_numbers_out_of_range_are_refused_naming_the_field(literal: str) -> None:
    with pytest.raises(JSONLimitError) as caught:
        read_json('{"Tags": ["a"], "Probability": ' + literal + "}")
    assert caught.value.field == "Probability"
    assert str(INT_MAX) in caught.value.fix
    assert len(str(caught.value)) < 300  # the number is shortened, not echoed in full


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_refused(literal: str) -> None:
    with pytest.raises(JSONLimitError, match=f"{literal} is not JSON"):
        read_json('{"x": ' + literal + "}")


def test_a_lone_surrogate_is_refused_where_it_is() -> None:
    with pytest.raises(JSONLimitError) as caught:
        read_json('{"To": [{"Email": "a@b.c", "Name": "x\\ud800y"}]}')
    assert caught.value.field == "To[0].Name"
    assert "\\ud800" in caught.value.problem and "UTF-8" in caught.value.fix
    str(caught.value).encode("utf-8")  # the message itself can be sent


def test_a_lone_surrogate_in_a_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(JSONLimitError) as caught:
        read_json('{"Headers": {"X-\\udc00": "v"}}')
    assert caught.value.field == "Headers.?"
    str(caught.value).encode("utf-8")


def test_paired_surrogates_are_one_character() -> None:
    assert read_json('{"Subject": "\\ud83d\\ude00"}') == {"Subject": "\U0001f600"}


def test_syntax_errors_stay_json_errors() -> None:
    with pytest.raises(json.JSONDecodeError):
        read_json(b'{"a": ')
    with pytest.raises(UnicodeDecodeError):
        read_json(b"\xff\xfe{")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(INT_MIN, INT_MAX) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_every_json_value_within_the_limits_reads_back_equal(value: object) -> None:
    text = json.dumps(value)
    assert read_json(text) == json.loads(text)
