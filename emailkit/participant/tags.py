"""A participant's tag: the name that marks their mail in a shared Mailpit, checked."""

from __future__ import annotations

import re
from typing import Final

from emailkit.errors import InvalidInput

__all__ = ["PARTICIPANT_VARIABLE", "participant_tag"]

#: The variable naming the participant whose scope a shared Mailpit is read through.
PARTICIPANT_VARIABLE: Final = "EMAILKIT_PARTICIPANT"

# Lower case only: Mailpit's `tag:` search lower-cases the term (its tag names compare without case),
# and no '+' (plus-addresses split on it), ',' (X-Tags separates on it) or space (a search splits on it).
_TAG: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def participant_tag(value: str | None, field_name: str = PARTICIPANT_VARIABLE) -> str:
    """`value` checked as a participant tag (lower-case letters, digits, ``-``, ``_``, ``.``)."""
    fix = (f"set {field_name} to a lower-case name of letters, digits, '-', '_' or '.', up to 64 characters "
           "(e.g. participant-01); the workshop sets it to each participant's user name")
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field_name, "is empty", fix=fix)
    if not _TAG.match(value):
        raise InvalidInput(field_name, f"{value!r} cannot be a Mailpit tag for one participant", fix=fix)
    return value
