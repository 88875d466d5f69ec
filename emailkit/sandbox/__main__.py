"""``python -m emailkit.sandbox [options]``: the same as ``emailkit sandbox [options]``."""

from __future__ import annotations

import argparse
import sys

from emailkit.sandbox.cli import add_arguments, run

__all__: list[str] = []

parser = argparse.ArgumentParser(prog="python -m emailkit.sandbox", description="the embedded Mailpit stand-in")
add_arguments(parser)
sys.exit(run(parser.parse_args()))
