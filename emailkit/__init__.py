"""emailkit: send and read real mail over SMTP and REST, and see what each costs."""

from __future__ import annotations

__version__ = "0.1.0"
