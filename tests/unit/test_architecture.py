"""The dependency rule of docs/architecture.md holds, and the cheap entry points stay cheap."""

from __future__ import annotations

import re
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


def _layout() -> list[str]:
    """The lines of the code block under "## 2. Layout" in docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## 2. Layout", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1].splitlines()


def _block(lines: list[str], head: str) -> str:
    """The entry starting with `head` (at its indent) and its continuation lines, as one text."""
    for i, line in enumerate(lines):
        if line.lstrip().startswith(head + " ") or line.strip() == head:
            indent = len(line) - len(line.lstrip())
            block = [line]
            for more in lines[i + 1:]:
                if more.strip() and len(more) - len(more.lstrip()) <= indent + 2 and not more[indent + 2:indent + 3].isspace():
                    break
                block.append(more)
            return "\n".join(block)
    raise AssertionError(f"docs/architecture.md's layout has no entry for {head}")


def _modules(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.py") if p.stem not in ("__init__", "__main__"))


def test_the_layout_is_the_true_map_of_the_package() -> None:
    """Every module and subpackage is named in the layout (a subpackage's modules in its entry), and
    every `name.py` the layout names exists: the map cannot drift from the house."""
    lines = _layout()
    package = ROOT / "emailkit"
    for module in _modules(package):
        _block(lines, f"{module}.py")
    for sub in sorted(p for p in package.iterdir() if (p / "__init__.py").is_file()):
        entry = _block(lines, f"{sub.name}/")
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", entry))
        nested = [f"{inner.name}/{m}" for inner in sub.iterdir() if (inner / "__init__.py").is_file()
                  for m in _modules(inner)]
        missing = [m for m in _modules(sub) if m not in words] + [n for n in nested if n.split("/")[1] not in words]
        assert not missing, f"emailkit/{sub.name}/ entry in docs/architecture.md does not name {missing}"
    named = {line.split()[0] for line in lines if line.startswith("  ") and line.split() and line.split()[0].endswith(".py")}
    assert not [n for n in named if not (package / n).is_file()], "docs/architecture.md names modules that do not exist"


def test_the_layout_names_every_top_level_folder() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    folders = {path.split("/", 1)[0] for path in tracked.splitlines() if "/" in path and not path.startswith(".")}
    entries = {line.split()[0].rstrip("/") for line in _layout() if line and not line[0].isspace()}
    assert not sorted(folders - entries), f"docs/architecture.md's layout lacks {sorted(folders - entries)}"
