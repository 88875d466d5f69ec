"""The files a newcomer relies on stay true: environment.yml, docker-compose.yml, README, notebooks."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from emailkit.mailboxes import MAILPIT_VERSION

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_dependencies_as_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = [d for section in env["dependencies"] if isinstance(section, dict) for d in section.get("pip", [])]
    listed = {_name(d) for d in conda} | {_name(d) for d in pip if not d.startswith("-e")}
    assert listed - {"python", "pip"} == wanted
    # Minor-pinned: name=X.Y, and every pin commented in the file.
    for dep in conda:
        if _name(dep) not in {"python", "pip"}:
            assert re.fullmatch(r"[\w.-]+=\d+\.\d+", dep), dep
    text = (ROOT / "environment.yml").read_text()
    for line in text.splitlines():
        if re.match(r"\s+- [\w.-]+=\d", line) and "python=" not in line:
            assert "#" in line, f"no comment: {line.strip()}"


def test_docker_compose_runs_a_pinned_mailpit_with_auth_and_healthcheck() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mailpit = compose["services"]["mailpit"]
    assert mailpit["image"] == f"axllent/mailpit:{MAILPIT_VERSION}"
    ports = {p.split(":")[-1] for p in mailpit["ports"]}
    assert {"1025", "8025"} <= ports
    env = mailpit["environment"]
    assert str(env["MP_SMTP_AUTH_ACCEPT_ANY"]) in {"1", "true"}
    assert str(env["MP_SMTP_AUTH_ALLOW_INSECURE"]) in {"1", "true"}
    assert mailpit["healthcheck"]["test"] == ["CMD", "/mailpit", "readyz"]
    assert "MP_POP3_AUTH" in env and "1110" in ports


def test_one_mailpit_pin_for_the_build_the_lab_compose_and_the_contract_tests() -> None:
    """make mailpit, docker-compose.yml and the sandbox's imitation all name the same Mailpit release."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^MAILPIT_VERSION := {re.escape(MAILPIT_VERSION)}$", makefile, re.MULTILINE)
    from emailkit.sandbox.app import MAILPIT_VERSION as imitated

    assert imitated == MAILPIT_VERSION
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make mailpit" in ci and "command -v go" in ci  # CI builds real Mailpit and fails loudly without Go


def test_docker_compose_provider_service_relays_to_mailpit() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    provider = compose["services"]["provider"]
    assert provider["build"] == "." and (ROOT / "Dockerfile").is_file()
    command = provider["command"]
    assert command[:2] == ["emailkit", "provider"]
    assert command[command.index("--mailpit") + 1] == "http://mailpit:8025"
    assert command[command.index("--smtp") + 1] == "mailpit:1025"
    assert provider["depends_on"]["mailpit"]["condition"] == "service_healthy"
    # The command's flags are the CLI's own: parsing them must succeed.
    from emailkit.cli import build_parser

    args = build_parser().parse_args(command[1:])
    assert args.listen == "0.0.0.0:8090"


def test_readme_first_screen_has_the_two_commands_and_the_notebook_table() -> None:
    readme = (ROOT / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:40])
    assert "make lab" in first_screen and "make test" in first_screen
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks, "no notebooks"
    for name in notebooks:
        assert f"(notebooks/{name})" in readme, f"README's notebook table does not link {name}"


def test_notebooks_are_numbered_in_sequence_and_titled() -> None:
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    numbers = [int(p.name[:2]) for p in paths]
    assert numbers == list(range(len(paths))), numbers
    readme = (ROOT / "README.md").read_text()
    for path in paths:
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3"
        first = "".join(nb["cells"][0]["source"])
        title = first.splitlines()[0].lstrip("# ").strip()
        assert first.startswith("# "), f"{path.name} must open with a '# Title' markdown cell"
        assert title in readme, f"README does not carry the title of {path.name}: {title!r}"
        text = "".join("".join(c["source"]) for c in nb["cells"])
        assert re.search(r"\bC\d\d\b", text), f"{path.name} does not name the claims it covers"


def test_notebooks_are_committed_without_outputs() -> None:
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        assert "widgets" not in nb["metadata"], path.name
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and not cell.get("execution_count"), path.name


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "apt-get update" in ci


def _claims(text: str) -> set[str]:
    """Claim ids in `text`, ranges such as C08–C12 expanded."""
    found = {f"C{int(n):02d}" for n in re.findall(r"\bC(\d\d)\b", text)}
    for lo, hi in re.findall(r"\bC(\d\d)\s*[–-]\s*C(\d\d)\b", text):
        found |= {f"C{n:02d}" for n in range(int(lo), int(hi) + 1)}
    return found


def test_the_readme_claims_column_matches_what_each_notebook_covers() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\d\d) \| \[[^\]]+\]\(notebooks/([^)]+)\) \|[^|]*\| ([^|]+) \|$", readme, re.MULTILINE)
    assert len(rows) == len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    for number, name, column in rows:
        nb = json.loads((ROOT / "notebooks" / name).read_text())
        prose = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        listed, covered = _claims(column), _claims(prose)
        assert listed, f"README lists no claims for {name}"
        assert listed <= covered, f"{name}: README lists {sorted(listed - covered)}, which the notebook never names"


@pytest.mark.slow
def test_notebooks_are_stored_exactly_as_the_nbstripout_filter_writes_them() -> None:
    """Otherwise `git status` shows every notebook modified once `make` installs the git filter."""
    import subprocess
    import sys

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cleaned = subprocess.run([sys.executable, "-m", "nbstripout"], input=path.read_bytes(),
                                 capture_output=True, check=True).stdout
        assert cleaned == path.read_bytes(), f"{path.name}: run `make strip` (or nbstripout) and commit"
