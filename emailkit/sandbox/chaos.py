"""Mailpit's Chaos: SMTP errors injected on purpose, with a chance per command (Mailpit's `internal/smtpd/chaos`).

Three triggers, each an SMTP code (400–599) and a probability in percent (0–100):

* ``Sender`` at ``MAIL FROM`` → ``<code> Chaos sender error`` (default code 451),
* ``Recipient`` at each ``RCPT TO`` → ``<code> Chaos recipient error`` (451),
* ``Authentication`` at ``AUTH`` → ``<code> Chaos authentication error`` (535).

Each command draws ``secrets.randbelow(100) < probability`` (crypto-random, as Mailpit draws).
Off unless the sandbox is started with ``chaos=True`` (``--enable-chaos``) or with triggers
(``chaos="Recipient:550:100"``, ``--chaos-triggers``); setting a trigger from Python turns it
on too, as Mailpit's ``--chaos-triggers`` does.

>>> chaos = Chaos(enabled=True)
>>> chaos.recipient = Trigger(550, 100)
>>> chaos.fire("Recipient"), chaos.fire("Sender")
(550, None)
>>> chaos.to_json()["Recipient"]
{'ErrorCode': 550, 'Probability': 100}

One deliberate difference: Mailpit applies a ``PUT /api/v1/chaos`` trigger by trigger and
stops at the first bad value (earlier triggers already changed) with a message that does not
say which trigger; here every value is checked first, nothing changes on an error, and the
error names the trigger and the field (`InvalidInput.field`, e.g. ``Recipient.ErrorCode``).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from emailkit.errors import InvalidInput

__all__ = ["DEFAULT_CODES", "TRIGGERS", "Chaos", "Trigger", "TriggerName", "parse_triggers"]

TriggerName = Literal["Sender", "Recipient", "Authentication"]
#: The triggers in Mailpit's JSON key order.
TRIGGERS: tuple[TriggerName, ...] = ("Sender", "Recipient", "Authentication")
#: Mailpit's default code per trigger (used when a trigger is reset or sent without a code).
DEFAULT_CODES: dict[str, int] = {"Sender": 451, "Recipient": 451, "Authentication": 535}
# Mailpit's --chaos-triggers accepts these spellings (case-insensitive).
_ALIASES = {
    "sender": "Sender",
    "recipient": "Recipient",
    "recipients": "Recipient",
    "auth": "Authentication",
    "authentication": "Authentication",
}
_REPLY = {"Sender": "sender", "Recipient": "recipient", "Authentication": "authentication"}


def _whole_number(value: Any, field: str, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"{value!r} is not a whole number", fix=f"use a whole number from {low} to {high}")
    if not low <= value <= high:
        raise InvalidInput(field, f"{value} is not between {low} and {high}", fix=f"use {what} from {low} to {high}")
    return value


@dataclass(frozen=True)
class Trigger:
    """One chaos trigger: the SMTP `error_code` to answer and the `probability` (percent) of answering it."""

    error_code: int
    probability: int = 0

    def __post_init__(self) -> None:
        _whole_number(self.error_code, "ErrorCode", 400, 599, "an SMTP error code")
        _whole_number(self.probability, "Probability", 0, 100, "a percentage")

    def to_json(self) -> dict[str, int]:
        return {"ErrorCode": self.error_code, "Probability": self.probability}


def _trigger(name: str, code: Any, probability: Any) -> Trigger:
    """A `Trigger` whose validation errors name the trigger too (``Recipient.ErrorCode``)."""
    try:
        return Trigger(code, probability)
    except InvalidInput as exc:
        raise InvalidInput(f"{name}.{exc.field}", exc.problem, fix=exc.fix) from None


def _canonical(name: str, field: str) -> str:
    canonical = _ALIASES.get(name.strip().lower())
    if canonical is None:
        raise InvalidInput(field, f"unknown trigger {name!r}", fix="use Sender, Recipient or Authentication")
    return canonical


class Chaos:
    """The sandbox's chaos triggers; read by the SMTP thread, set from the API or from Python.

    Assign a `Trigger` to `.sender`, `.recipient` or `.authentication`, or call `set()`;
    either turns chaos on. `reset()` puts every trigger back to its default (probability 0).
    """

    def __init__(self, *, enabled: bool = False) -> None:
        self._lock = threading.Lock()
        self.enabled = enabled
        self._triggers: dict[str, Trigger] = {name: Trigger(DEFAULT_CODES[name]) for name in TRIGGERS}

    # -- the three triggers as attributes --------------------------------------------------

    def _get(self, name: str) -> Trigger:
        return self._triggers[name]

    def _put(self, name: str, trigger: Trigger) -> None:
        if not isinstance(trigger, Trigger):
            raise InvalidInput(name, f"{trigger!r} is not a Trigger", fix="assign Trigger(error_code, probability)")
        with self._lock:
            self._triggers = {**self._triggers, name: trigger}
            self.enabled = True

    @property
    def sender(self) -> Trigger:
        return self._get("Sender")

    @sender.setter
    def sender(self, trigger: Trigger) -> None:
        self._put("Sender", trigger)

    @property
    def recipient(self) -> Trigger:
        return self._get("Recipient")

    @recipient.setter
    def recipient(self, trigger: Trigger) -> None:
        self._put("Recipient", trigger)

    @property
    def authentication(self) -> Trigger:
        return self._get("Authentication")

    @authentication.setter
    def authentication(self, trigger: Trigger) -> None:
        self._put("Authentication", trigger)

    # -- changing ---------------------------------------------------------------------------

    def set(self, name: str, error_code: int, probability: int) -> None:
        """Set one trigger (`name` as Mailpit spells it: sender, recipient(s), auth(entication))."""
        canonical = _canonical(name, "trigger")
        self._put(canonical, _trigger(canonical, error_code, probability))

    def reset(self) -> None:
        """Every trigger back to its default code with probability 0 (chaos stays enabled)."""
        with self._lock:
            self._triggers = {name: Trigger(DEFAULT_CODES[name]) for name in TRIGGERS}

    def update(self, data: Mapping[str, Any]) -> None:
        """Replace all triggers from Mailpit's JSON shape (``PUT /api/v1/chaos``).

        An omitted trigger, or an ``ErrorCode`` of 0/absent, gets its default; ``{}`` resets
        all. Keys are matched case-insensitively, unknown keys ignored (as Go decodes JSON).
        Everything is checked before anything changes; raises `InvalidInput` naming the field.
        """
        folded = {str(k).lower(): v for k, v in data.items()}
        new: dict[str, Trigger] = {}
        for name in TRIGGERS:
            item = folded.get(name.lower())
            if item is None:
                new[name] = Trigger(DEFAULT_CODES[name])
                continue
            if not isinstance(item, Mapping):
                raise InvalidInput(name, f"{item!r} is not an object", fix='send {"ErrorCode": 451, "Probability": 50}')
            fields = {str(k).lower(): v for k, v in item.items()}
            code = fields.get("errorcode")
            probability = fields.get("probability")
            new[name] = _trigger(
                name,
                DEFAULT_CODES[name] if code is None or code == 0 and not isinstance(code, bool) else code,
                0 if probability is None else probability,
            )
        with self._lock:
            self._triggers = new
            self.enabled = True

    # -- reading ----------------------------------------------------------------------------

    def fire(self, name: TriggerName) -> int | None:
        """Draw once for trigger `name`: the SMTP code to answer, or None to carry on normally."""
        trigger = self._triggers[name]
        if not self.enabled or trigger.probability <= 0:
            return None
        return trigger.error_code if secrets.randbelow(100) < trigger.probability else None

    def reply(self, name: TriggerName) -> str | None:
        """The whole SMTP reply when trigger `name` fires (``550 Chaos recipient error``), else None."""
        code = self.fire(name)
        return None if code is None else f"{code} Chaos {_REPLY[name]} error"

    def to_json(self) -> dict[str, dict[str, int]]:
        """Mailpit's ``ChaosTriggers`` JSON (key order Sender, Recipient, Authentication)."""
        triggers = self._triggers
        return {name: triggers[name].to_json() for name in TRIGGERS}

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        parts = ", ".join(f"{n}={t.error_code}@{t.probability}%" for n, t in self._triggers.items())
        return f"<Chaos {state}: {parts}>"


def parse_triggers(text: str, field: str = "--chaos-triggers") -> list[tuple[str, int, int]]:
    """Mailpit's ``Sender:451:50,Recipient:550:100`` → ``[(name, code, probability), ...]``.

    Raises `InvalidInput` naming `field` for anything Mailpit would refuse at start-up.
    """
    result = []
    for part in text.split(","):
        part = part.strip()
        pieces = part.split(":")
        if len(pieces) != 3 or not pieces[1].isdigit() or len(pieces[1]) != 3 or not pieces[2].isdigit():
            raise InvalidInput(
                field, f"{part!r} is not TRIGGER:CODE:PERCENT", fix="write it like Sender:451:50,Recipient:550:100"
            )
        name = _canonical(pieces[0], field)
        try:
            trigger = _trigger(name, int(pieces[1]), int(pieces[2]))
        except InvalidInput as exc:
            raise InvalidInput(field, f"{part!r}: {exc.field} {exc.problem}", fix=exc.fix) from None
        result.append((name, trigger.error_code, trigger.probability))
    return result
