"""The embedded Mailpit stand-in: a real SMTP server and Mailpit's REST API over SQLite.

Used where Docker (and so real Mailpit) is not available. Behaves like Mailpit v1.30.5 for
the parts the workbook uses; see ``MAILPIT-NOTES.md`` and the module docstrings for the
few deliberate differences.
"""

from __future__ import annotations

from emailkit.sandbox.server import Sandbox, add_arguments, run
from emailkit.sandbox.store import Store

__all__ = ["Sandbox", "Store", "add_arguments", "run"]
