"""The workshop's deployment files, checked as files (no Docker, Kubernetes or Binder here): they parse,
they name each other and the workbook's pins, and Binder's start script does what it says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import yaml

from emailkit.mailboxes import MAILPIT_VERSION

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile.singleuser"


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_single_user_image_carries_mailpit_the_workbook_and_the_hub_s_single_user_server() -> None:
    text = DOCKERFILE.read_text()
    assert f"FROM axllent/mailpit:{MAILPIT_VERSION} AS mailpit" in text
    assert "pip install --no-cache-dir '.[workshop]'" in text
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("jupyterhub") for r in extras["workshop"])
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.MULTILINE):
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the project"
    assert 'ENTRYPOINT ["/usr/local/bin/emailkit-start"]' in text and "COPY binder/start" in text
    assert 'CMD ["jupyterhub-singleuser"]' in text and "USER jovyan" in text
    assert f"emailkit-workshop:{_version()}" in text


def test_the_zero_to_jupyterhub_values_name_the_image_and_keep_the_password_out() -> None:
    values = yaml.safe_load((ROOT / "deploy" / "z2jh-values.yaml").read_text())
    image = values["singleuser"]["image"]
    assert image["name"] == "emailkit-workshop" and image["tag"] == _version()
    assert f"{image['name']}:{image['tag']}" in DOCKERFILE.read_text()
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] == "shared-password"
    assert values["hub"]["config"]["Authenticator"]["allowed_users"]
    secret = values["hub"]["extraEnv"]["WORKSHOP_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert secret["name"] and secret["key"]
    assert 'os.environ["WORKSHOP_PASSWORD"]' in values["hub"]["extraConfig"]["workshop-password"]
    assert "user_password" not in json.dumps(values["hub"]["config"])
    assert values["singleuser"]["cmd"] == "jupyterhub-singleuser"
    assert "MAILPIT_URL" not in values["singleuser"]["extraEnv"]  # never one shared Mailpit
    default = values["singleuser"]["defaultUrl"].removeprefix("/lab/tree/")
    assert (ROOT / default).is_file(), default


def test_the_compose_jupyter_service_builds_that_image_on_the_compose_mailpit() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jupyter = compose["services"]["jupyter"]
    assert (ROOT / jupyter["build"]["context"] / jupyter["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert jupyter["environment"]["MAILPIT_URL"] == "http://mailpit:8025"
    assert jupyter["environment"]["MAILPIT_SMTP"] == "mailpit:1025"
    assert jupyter["environment"]["EMAILKIT_MAILBOX"] == "external"
    assert jupyter["depends_on"]["mailpit"]["condition"] == "service_healthy"
    assert jupyter["command"][:2] == ["jupyter", "lab"] and "--ip=0.0.0.0" in jupyter["command"]
    assert any(p.endswith(":8888") for p in jupyter["ports"])


def test_binder_environment_and_post_build() -> None:
    env = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    root_env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python=")]
    assert python == [d for d in root_env["dependencies"] if isinstance(d, str) and d.startswith("python=")]
    post_build = ROOT / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK)
    text = post_build.read_text()
    assert "pip install --no-cache-dir -e ." in text and f"scripts/build-mailpit {MAILPIT_VERSION}" in text
    assert (ROOT / "scripts" / "build-mailpit").is_file()


def test_binder_start_gives_the_user_their_folders_and_ends_with_exec(tmp_path: Path) -> None:
    start = ROOT / "binder" / "start"
    assert os.access(start, os.X_OK)
    lines = [line for line in start.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines[-1] == 'exec "$@"'
    workbook = tmp_path / "workbook"
    (workbook / "notebooks").mkdir(parents=True)
    (workbook / "notebooks" / "00_start_here.ipynb").write_text("{}")
    env = {"HOME": str(tmp_path / "home"), "PATH": os.environ["PATH"], "EMAILKIT_WORKBOOK": str(workbook)}
    (tmp_path / "home").mkdir()
    out = subprocess.run([str(start), "sh", "-c", 'echo "$EMAILKIT_EVIDENCE_DIR|$EMAILKIT_REPORTS_DIR|$$"'],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    evidence, reports, _ = out.split("|")
    assert evidence == str(tmp_path / "home" / "evidence") and Path(evidence).is_dir()
    assert reports == str(tmp_path / "home" / "reports") and Path(reports).is_dir()
    assert (tmp_path / "home" / "notebooks" / "00_start_here.ipynb").is_file()


def test_the_proxy_is_pinned_by_its_lockfile_and_node_modules_stay_out_of_git() -> None:
    folder = ROOT / "deploy" / "proxy"
    wanted = json.loads((folder / "package.json").read_text())["dependencies"]["configurable-http-proxy"]
    lock = json.loads((folder / "package-lock.json").read_text())
    locked = lock["packages"]["node_modules/configurable-http-proxy"]["version"]
    major, minor = re.match(r"~(\d+)\.(\d+)", wanted).groups()
    assert locked.split(".")[:2] == [major, minor]
    ignored = subprocess.run(["git", "check-ignore", "-q", "deploy/proxy/node_modules"], cwd=ROOT)
    assert ignored.returncode == 0


def test_make_workshop_and_the_cli_subcommand() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^workshop: ", makefile, re.MULTILINE)
    assert "emailkit workshop --participants $(PARTICIPANTS)" in makefile
    from emailkit.cli import build_parser

    args = build_parser(["workshop"]).parse_args(["workshop", "--participants", "12"])
    assert args.participants == 12 and args.action == "start" and args.ip == "127.0.0.1"
    args = build_parser(["workshop"]).parse_args(["workshop", "reset", "participant-02"])
    assert (args.action, args.name) == ("reset", "participant-02")
