"""emailkit: send and read real mail over SMTP and REST, and see what each costs.

Start every notebook with ``lab = emailkit.lab.connect()``.

The package root imports nothing until a name is used (PEP 562), so ``import emailkit.decide`` or
``emailkit --help`` do not pay for httpx, aiosmtplib or the wiretap.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

# name -> the module that defines it; submodules are imported on first use by name.
_EXPORTS: dict[str, str] = {
    "AsyncMailpit": "mailpit",
    "Connection": "smtp",
    "EmailkitError": "errors",
    "InvalidInput": "errors",
    "Lab": "lab",
    "Mailpit": "mailpit",
    "MailpitError": "errors",
    "MailpitNotFound": "errors",
    "MailpitTimeout": "errors",
    "MailpitUnreachable": "errors",
    "SMTPSendError": "errors",
    "SendResult": "smtp",
    "Transcript": "wiretap",
    "Wiretap": "wiretap",
    "compose": "message",
    "connect": "lab",
    "redact": "redaction",
    "send": "smtp",
}
_MODULES = ("errors", "evidence", "lab", "mailpit", "message", "redaction", "replies", "smtp", "wiretap")

__all__ = sorted([*_EXPORTS, *_MODULES])

if _typing.TYPE_CHECKING:
    from . import errors, evidence, lab, mailpit, message, redaction, replies, smtp, wiretap
    from .errors import (
        EmailkitError,
        InvalidInput,
        MailpitError,
        MailpitNotFound,
        MailpitTimeout,
        MailpitUnreachable,
        SMTPSendError,
    )
    from .lab import Lab, connect
    from .mailpit import AsyncMailpit, Mailpit
    from .message import compose
    from .redaction import redact
    from .smtp import Connection, SendResult, send
    from .wiretap import Transcript, Wiretap


def __getattr__(name: str) -> _typing.Any:
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    else:
        try:
            value = _importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
