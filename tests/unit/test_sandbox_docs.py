"""docs/sandbox.md stays true to the code: every CLI flag is documented, the chaos JSON is the real one."""

from __future__ import annotations

import argparse
from pathlib import Path

from emailkit.sandbox import add_arguments
from emailkit.sandbox.routes.answers import go_json
from emailkit.sandbox.chaos import Chaos

DOC = (Path(__file__).resolve().parents[2] / "docs" / "sandbox.md").read_text(encoding="utf-8")


def test_every_cli_flag_is_in_the_table() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = [opt for action in parser._actions for opt in action.option_strings if opt.startswith("--")]
    assert "--pop3-auth" in flags and "--chaos-triggers" in flags
    missing = [flag for flag in flags if flag != "--help" and f"| `{flag}" not in DOC]
    assert not missing, f"docs/sandbox.md does not document {missing}"


def test_the_documented_chaos_defaults_are_what_get_returns() -> None:
    assert go_json(Chaos(enabled=True).to_json()).decode().strip() in DOC
