"""The dependency rule of docs/architecture.md holds, and the cheap entry points stay cheap."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_are_kept() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert len(contracts) >= 4
    result = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in result.stdout


def _modules_loaded_by(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    return set(out.stdout.split())


HEAVY = {"httpx", "aiosmtplib", "aiosmtpd", "emailkit.wiretap", "emailkit.sandbox", "emailkit.provider", "fastapi"}


def test_the_decision_model_imports_no_mail_machinery() -> None:
    assert not HEAVY & _modules_loaded_by("import emailkit.decide")


def test_emailkit_help_loads_no_subcommand() -> None:
    loaded = _modules_loaded_by("from emailkit.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert not (HEAVY | {"pandas", "emailkit.decide", "emailkit.stack"}) & loaded


def test_the_package_root_still_offers_its_names_on_use() -> None:
    loaded = _modules_loaded_by("import emailkit\nassert emailkit.SMTPSendError and emailkit.lab.connect")
    assert {"emailkit.errors", "emailkit.lab"} <= loaded
