"""Every measured difference between real Mailpit and the sandbox that is kept on purpose.

``KNOWN[check][where] = reason``: `check` is the name a differential test gives one comparison, `where`
the JSON path or reply line that differs. A test fails on a difference not listed here *and* on a
listed one that no longer shows up, so this table is always exactly what the run measures. Each entry
is described in docs/sandbox.md, "Measured against real Mailpit".
"""

from __future__ import annotations

__all__ = ["KNOWN"]

KNOWN: dict[str, dict[str, str]] = {
}
