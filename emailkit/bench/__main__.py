"""``python -m emailkit.bench``: the same as ``make bench``."""

from __future__ import annotations

import sys

from emailkit.bench.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
