"""Mailpit's chaos triggers as a Python object: validation, Mailpit's JSON, the CLI syntax, the dice."""

from __future__ import annotations

import pytest

from emailkit.errors import InvalidInput
from emailkit.sandbox.chaos import Chaos, Trigger, parse_triggers

DEFAULT = {
    "Sender": {"ErrorCode": 451, "Probability": 0},
    "Recipient": {"ErrorCode": 451, "Probability": 0},
    "Authentication": {"ErrorCode": 535, "Probability": 0},
}


def test_defaults_in_mailpits_key_order() -> None:
    chaos = Chaos()
    assert chaos.to_json() == DEFAULT
    assert list(chaos.to_json()) == ["Sender", "Recipient", "Authentication"]
    assert list(chaos.to_json()["Sender"]) == ["ErrorCode", "Probability"]
    assert chaos.enabled is False


def test_disabled_chaos_never_fires_even_with_triggers_set_directly() -> None:
    chaos = Chaos(enabled=True)
    chaos.recipient = Trigger(550, 100)
    chaos.enabled = False
    assert chaos.fire("Recipient") is None


def test_probability_100_always_0_never() -> None:
    chaos = Chaos(enabled=True)
    chaos.sender = Trigger(452, 100)
    assert {chaos.fire("Sender") for _ in range(200)} == {452}
    assert {chaos.fire("Recipient") for _ in range(200)} == {None}
    assert chaos.reply("Sender") == "452 Chaos sender error"
    chaos.set("auth", 454, 100)
    assert chaos.reply("Authentication") == "454 Chaos authentication error"


def test_setting_a_trigger_from_python_enables_chaos() -> None:
    chaos = Chaos()
    chaos.recipient = Trigger(550, 10)
    assert chaos.enabled and chaos.to_json()["Recipient"] == {"ErrorCode": 550, "Probability": 10}


@pytest.mark.parametrize(
    ("code", "probability", "field", "problem"),
    [
        (399, 0, "ErrorCode", "399 is not between 400 and 599"),
        (600, 0, "ErrorCode", "600 is not between 400 and 599"),
        (451, -1, "Probability", "-1 is not between 0 and 100"),
        (451, 101, "Probability", "101 is not between 0 and 100"),
        ("451", 1, "ErrorCode", "'451' is not a whole number"),
        (451, 12.5, "Probability", "12.5 is not a whole number"),
        (451, True, "Probability", "True is not a whole number"),
    ],
)
def test_trigger_validation_names_the_field(code: object, probability: object, field: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Trigger(code, probability)  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.problem) == (field, problem)
    assert caught.value.fix


def test_assigning_something_else_than_a_trigger_is_refused() -> None:
    chaos = Chaos()
    with pytest.raises(InvalidInput, match="Trigger"):
        chaos.sender = (451, 50)  # type: ignore[assignment]
    assert chaos.enabled is False


def test_update_follows_mailpits_put_rules() -> None:
    chaos = Chaos(enabled=True)
    chaos.update({"Sender": {"ErrorCode": 452, "Probability": 5}, "Authentication": {"Probability": 7}})
    assert chaos.to_json() == {
        "Sender": {"ErrorCode": 452, "Probability": 5},
        "Recipient": {"ErrorCode": 451, "Probability": 0},  # omitted: reset to the default
        "Authentication": {"ErrorCode": 535, "Probability": 7},  # no code: the default code
    }
    chaos.update({"recipient": {"errorcode": 550, "PROBABILITY": 9}, "Unknown": 1})  # Go: keys case-insensitive
    assert chaos.to_json()["Recipient"] == {"ErrorCode": 550, "Probability": 9}
    assert chaos.to_json()["Sender"] == DEFAULT["Sender"]
    chaos.update({})
    assert chaos.to_json() == DEFAULT


def test_a_bad_update_changes_nothing_and_names_trigger_and_field() -> None:
    chaos = Chaos(enabled=True)
    chaos.update({"Sender": {"ErrorCode": 452, "Probability": 5}})
    before = chaos.to_json()
    with pytest.raises(InvalidInput) as caught:
        chaos.update({"Sender": {"ErrorCode": 550, "Probability": 50}, "Recipient": {"ErrorCode": 700}})
    assert caught.value.field == "Recipient.ErrorCode"
    assert chaos.to_json() == before
    with pytest.raises(InvalidInput) as caught:
        chaos.update({"Authentication": [535, 10]})
    assert caught.value.field == "Authentication"


def test_parse_triggers_reads_mailpits_cli_syntax() -> None:
    assert parse_triggers("Sender:451:50,Recipient:550:100") == [("Sender", 451, 50), ("Recipient", 550, 100)]
    assert parse_triggers("recipients:452:1, AUTH:535:2") == [("Recipient", 452, 1), ("Authentication", 535, 2)]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Sender:451", "is not TRIGGER:CODE:PERCENT"),
        ("Sender:45:10", "is not TRIGGER:CODE:PERCENT"),
        ("Sender:451:x", "is not TRIGGER:CODE:PERCENT"),
        ("Helo:451:10", "unknown trigger 'Helo'"),
        ("Sender:999:10", "999 is not between 400 and 599"),
        ("Sender:451:150", "150 is not between 0 and 100"),
    ],
)
def test_parse_triggers_refuses_what_mailpit_refuses(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem) as caught:
        parse_triggers(text)
    assert caught.value.field == "--chaos-triggers"
