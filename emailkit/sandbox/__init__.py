"""The embedded Mailpit stand-in: a real SMTP server, Mailpit's REST API and (optionally) POP3 over SQLite.

Used where Docker (and so real Mailpit) is not available. Behaves like Mailpit v1.33.1 for
the parts the workbook uses, Chaos (SMTP fault injection) included; ``docs/sandbox.md`` lists
every deliberate difference, and the module docstrings say why each one exists.
"""

from __future__ import annotations

from emailkit.sandbox.chaos import Chaos, Trigger
from emailkit.sandbox.cli import add_arguments, run
from emailkit.sandbox.pop3_server import POP3Server
from emailkit.sandbox.sandbox import Sandbox
from emailkit.sandbox.store import Store

__all__ = ["Chaos", "POP3Server", "Sandbox", "Store", "Trigger", "add_arguments", "run"]
