"""The workshop room: a real JupyterHub on loopback, three participants, each on their own server.

It logs them in with the room's shared password, spawns their servers through the hub's REST API,
runs notebook 00 (their own copy) cell by cell in a kernel of each participant's server through the
hub's proxy, checks that one participant's mail, evidence and reports are invisible to the others,
and that stopping the room leaves no process behind. A second room does the same with one real Mailpit
shared by all three (each participant's share of it: emailkit.participant). Without jupyterhub or npm's
configurable-http-proxy it skips locally and fails under CI.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from emailkit.errors import InvalidInput
from emailkit.mailboxes import MailpitProcess, find_mailpit
from emailkit.mailpit import Mailpit
from emailkit.workshop import (
    Room,
    WorkshopError,
    collect_reports,
    participant_names,
    proxy_command,
    reset_participant,
    room_processes,
)
from tests.support import need_mailpit

ROOT = Path(__file__).resolve().parents[2]


def _need_the_hub() -> None:
    import importlib.util

    import shutil
    import subprocess

    problems = []
    proxy = ROOT / "deploy" / "proxy"
    if shutil.which("npm"):
        import fcntl

        # What `make workshop` does: the lockfile's configurable-http-proxy, through npm itself; locked,
        # so two xdist workers never install into the same folder at once.
        with open(proxy / ".install-lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (proxy / "node_modules" / ".bin" / "configurable-http-proxy").exists():
                subprocess.run(["npm", "ci", "--prefix", str(proxy), "--no-audit", "--no-fund"], check=False,
                               capture_output=True, timeout=300)
    if importlib.util.find_spec("jupyterhub") is None:
        problems.append("jupyterhub is not installed (pip install -e '.[workshop]')")
    try:
        proxy_command()
    except Exception as exc:  # the error names the fix: make workshop / npm ci --prefix deploy/proxy
        problems.append(str(exc))
    if problems:
        if os.environ.get("CI"):
            pytest.fail("; ".join(problems))
        pytest.skip("; ".join(problems))


def _login(room: Room, name: str, password: str) -> httpx.Response:
    """What a participant's browser does: GET the login form (its _xsrf cookie), POST the form."""
    with httpx.Client(base_url=room.url, timeout=30.0) as browser:
        browser.get("/hub/login")
        xsrf = browser.cookies.get("_xsrf", "")
        return browser.post("/hub/login", data={"username": name, "password": password, "_xsrf": xsrf})


# What each participant runs after notebook 00: their own message, figure and report, and what they see.
_CHECK = """
import json, os
from emailkit import evidence, decide
from emailkit.message import compose
me = os.environ["EMAILKIT_PARTICIPANT"]
sent = await lab.send(compose(sender=f"{me}@example.com", to=["trainer@example.com"],
                              subject=f"only for {me}", text="mine"))
lab.mailpit.wait_for(f"subject:\\"only for {me}\\"", timeout=10)
evidence.record("smtp.round_trips_per_message", 7, "round trips", source="00_start_here", detail=f"by {me}")
report = decide.save_report(decide.score({}), "md", title=f"{me} service")
print(json.dumps({
    "me": me, "api": lab.api_url, "kind": lab.kind,
    "subjects": [m.subject for m in lab.mailpit.messages(limit=200).messages],
    "evidence": str(evidence.location()), "details": [e.detail for e in evidence.load().values()],
    "report": str(report), "reports": sorted(os.listdir(os.environ["EMAILKIT_REPORTS_DIR"])),
}))
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _code_cells(notebook: Path) -> list[str]:
    return ["".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"]
            if cell["cell_type"] == "code"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_room_of_three_each_on_their_own_server_mailbox_evidence_and_reports(tmp_path: Path) -> None:
    _need_the_hub()
    names = participant_names(3)
    kernels: list = []
    room = Room(names, root=tmp_path / "room", port=0, mailpit_url=None)
    started = time.monotonic()
    room.start()
    try:
        # The password printed for the trainer logs a participant in; a wrong one and a stranger do not.
        for name in names:
            answer = _login(room, name, room.password)
            assert answer.status_code == 302, (name, answer.status_code)
            assert "jupyterhub-session-id" in answer.cookies or any(
                c.startswith("jupyterhub-hub-login") for c in answer.cookies), answer.cookies
        assert _login(room, names[0], room.password + "x").status_code == 403
        assert _login(room, "intruder", room.password).status_code == 403
        assert room.password not in room.log_file.read_text(errors="replace")

        # Every participant's server, started through the hub's REST API (as their login would).
        for name in names:
            room.start_server(name)  # all three start at once, as a room logging in does
        urls = {name: room.spawn(name) for name in names}  # waits for each until it answers
        assert len(set(urls.values())) == 3

        seen: dict[str, dict] = {}
        for name in names:
            notebook = room.home(name) / "notebooks" / "00_start_here.ipynb"
            assert notebook.is_file(), f"{name} has no copy of the workbook"
            with room.kernel(name) as kernel:
                for index, code in enumerate(_code_cells(notebook)):
                    result = kernel.run(code, timeout=180)
                    assert result.status == "ok", f"{name}: notebook 00, code cell {index}: {result.error}"
                result = kernel.run(_CHECK, timeout=120)
                assert result.status == "ok", f"{name}: {result.error}"
                seen[name] = json.loads(result.stdout.strip().splitlines()[-1])

        assert len({s["api"] for s in seen.values()}) == 3, "two participants share a mailbox"
        for name, view in seen.items():
            others = [n for n in names if n != name]
            home = room.home(name)
            assert view["me"] == name
            assert f"only for {name}" in view["subjects"]
            assert not any(f"only for {o}" in view["subjects"] for o in others), view["subjects"]
            assert Path(view["evidence"]).is_relative_to(home), view["evidence"]
            assert f"by {name}" in view["details"] and not any(f"by {o}" in view["details"] for o in others)
            assert Path(view["report"]).is_relative_to(home / "reports")
            assert view["reports"] == [Path(view["report"]).name]
            for other in others:  # and on disk, nothing of theirs in anybody else's folders
                assert name not in (room.home(other) / "evidence" / "evidence.json").read_text()
                assert all(name not in p.read_text() for p in (room.home(other) / "reports").iterdir())

        # The trainer collects the room's reports, one folder per participant.
        copied = collect_reports(room.root, tmp_path / "collected")
        assert sorted(p.parent.name for p in copied) == names

        # A participant cannot be reset while their server runs (it says how to stop it).
        with pytest.raises(WorkshopError, match="still running") as caught:
            reset_participant(room.root, names[0])
        assert "Stop My Server" in caught.value.fix

        # Leave a lab running in each server (its own Mailpit or sandbox), then stop the room.
        for name in names:
            context = room.kernel(name)
            kernel = context.__enter__()
            assert kernel.run("import emailkit\nlab = emailkit.lab.connect()\nprint(lab.kind)").status == "ok"
            kernel.close()
            kernels.append(context)
        running = room_processes(room.room_id)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in running]
        assert sum(b"jupyterhub-singleuser" in c for c in commands) == 3, commands
        if seen[names[0]]["kind"] == "mailpit":
            assert sum(b"mailpit" in c.split(b"\0")[0] for c in commands) >= 3, commands
    finally:
        leftovers = room.stop()
    assert room_processes(room.room_id) == []
    for context in kernels:  # their servers are gone: this only closes the client side
        with contextlib.suppress(Exception):
            context.__exit__(None, None, None)
    # The kernels, servers and proxy stopped through the hub and its servers' APIs: nothing was left
    # for the room's final sweep to end.
    assert leftovers == [], f"left for the sweep: {room.swept}"
    assert not [pid for pid in running if _alive(pid)]
    reset_participant(room.root, names[0])   # stopped now: their folder goes, the others' stay
    assert not room.home(names[0]).exists() and room.home(names[1]).is_dir()
    assert time.monotonic() - started < 420


# In each participant's kernel on a shared Mailpit: what their lab is, and what their POP3 maildrop holds.
_SHARED_CHECK = """
import json, poplib
pop = poplib.POP3(lab.pop3.host, lab.pop3.port, timeout=10)
pop.user(lab.pop3.user)
pop.pass_(lab.pop3.password)
in_pop3 = pop.stat()[0]
pop.quit()
print(json.dumps({"label": lab.mailbox.label, "web_ui": lab.web_ui, "pop3": in_pop3,
                  "stored": lab.mailpit.info()["Messages"], "shared": os.environ["MAILPIT_URL"]}))
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_room_of_three_on_one_shared_mailpit_each_reads_only_their_own_mail(tmp_path: Path) -> None:
    _need_the_hub()
    need_mailpit()
    names = participant_names(3)
    with MailpitProcess(find_mailpit(), max_messages=0, chaos=False) as shared:
        room = Room(names, root=tmp_path / "room", port=0, mailpit_url=shared.api_url,
                    mailpit_smtp=f"127.0.0.1:{shared.smtp_port}")
        assert room.shared
        started = time.monotonic()
        room.start()
        try:
            for name in names:
                room.start_server(name)
            for name in names:
                room.spawn(name)
            spawned = time.monotonic()
            seen: dict[str, dict] = {}
            for name in names:
                notebook = room.home(name) / "notebooks" / "00_start_here.ipynb"
                with room.kernel(name) as kernel:
                    for index, code in enumerate(_code_cells(notebook)):
                        result = kernel.run(code, timeout=180)
                        assert result.status == "ok", f"{name}: notebook 00, code cell {index}: {result.error}"
                    views = []
                    for check in (_CHECK, _SHARED_CHECK):
                        result = kernel.run(check, timeout=120)
                        assert result.status == "ok", f"{name}: {result.error}"
                        views.append(json.loads(result.stdout.strip().splitlines()[-1]))
                    seen[name] = {**views[0], **views[1]}
            ran = time.monotonic()

            with Mailpit(shared.api_url) as whole:
                stored = whole.messages(limit=500).messages
            owners = {m.id: [n for n in names if n in m.tags] for m in stored}
            assert all(len(o) == 1 for o in owners.values()), "a message without exactly one participant's tag"
            for name, view in seen.items():
                others = [n for n in names if n != name]
                mine = [m for m in stored if owners[m.id] == [name]]
                assert view["kind"] == "external" and view["shared"] == shared.api_url
                assert view["label"].endswith(f"participant {name} (their own mail only)") and view["web_ui"] is None
                assert f"only for {name}" in view["subjects"]
                assert not any(f"only for {o}" in s for o in others for s in view["subjects"]), view["subjects"]
                assert sorted(view["subjects"]) == sorted(m.subject for m in mine)
                assert view["stored"] == len(mine) == view["pop3"] and len(mine) >= 2  # notebook 00's + the check's
            assert len({s["api"] for s in seen.values()}) == 3
        finally:
            room.stop()
        stopped = time.monotonic()
        assert room_processes(room.room_id) == []
        assert shared.proc is not None and shared.proc.poll() is None, "stopping the room stopped the shared Mailpit"
    print(f"shared room: hub + 3 servers {spawned - started:.1f} s, notebook 00 x3 {ran - spawned:.1f} s, "
          f"stop {stopped - ran:.1f} s")
    assert stopped - started < 420


def test_a_shared_room_checks_its_mailpit_and_names_before_it_starts(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    from emailkit.mailboxes import free_port

    monkeypatch.setenv("MAILPIT_URL", f"http://127.0.0.1:{free_port()}")   # nothing listens there
    room = Room(["ann"], root=tmp_path, port=0)
    assert room.shared
    with pytest.raises(WorkshopError, match="does not answer") as caught:
        room.start()
    assert "MAILPIT_URL" in caught.value.fix
    assert room.proc is None and not (tmp_path / "hub").exists()
    monkeypatch.delenv("MAILPIT_URL")
    with pytest.raises(InvalidInput) as invalid:
        Room(["ann"], root=tmp_path, port=0, mailbox="external").start()
    assert invalid.value.field == "mailpit_url"
    from emailkit.sandbox import Sandbox

    with Sandbox(starttls=False) as box:
        with pytest.raises(InvalidInput) as invalid:   # a user name that cannot be a participant's tag
            Room(["-ann"], root=tmp_path, port=0, mailpit_url=box.api_url,
                 mailpit_smtp=f"127.0.0.1:{box.smtp_port}").start()
        assert invalid.value.field == "names"
        with pytest.raises(WorkshopError, match="SMTP port"):
            Room(["ann"], root=tmp_path, port=0, mailpit_url=box.api_url,
                 mailpit_smtp=f"127.0.0.1:{free_port()}").start()
    if find_mailpit() is not None:  # a Mailpit as it starts by default offers no SMTP AUTH: notebooks 01/02 need it
        import subprocess

        smtp, http = free_port(), free_port()
        plain = subprocess.Popen([str(find_mailpit()), "--smtp", f"127.0.0.1:{smtp}", "--listen", f"127.0.0.1:{http}",
                                  "--database", str(tmp_path / "plain.db"), "--disable-version-check"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with Mailpit(f"http://127.0.0.1:{http}") as client:
                deadline = time.monotonic() + 15
                while not client.ready():
                    assert time.monotonic() < deadline, "the plain Mailpit did not start"
                    time.sleep(0.1)
            with pytest.raises(WorkshopError, match="offers no AUTH") as caught:
                Room(["ann"], root=tmp_path, port=0, mailpit_url=f"http://127.0.0.1:{http}",
                     mailpit_smtp=f"127.0.0.1:{smtp}").start()
            assert "--smtp-auth-accept-any" in caught.value.fix
        finally:
            plain.terminate()
            plain.wait(timeout=10)
    assert not (tmp_path / "hub").exists()


def test_room_names_and_passwords_are_checked() -> None:
    assert participant_names(2) == ["participant-01", "participant-02"]
    assert participant_names(0, "ann,bob") == ["ann", "bob"]
    for bad, field in ((0, "participants"), (101, "participants")):
        with pytest.raises(InvalidInput) as caught:
            participant_names(bad)
        assert caught.value.field == field
    for names in ("Ann", "ann,ann", "a b"):
        with pytest.raises(InvalidInput) as caught:
            participant_names(1, names)
        assert caught.value.field == "names"
    with pytest.raises(InvalidInput) as caught:
        Room(["ann"], password="short")
    assert caught.value.field == "password"
    with pytest.raises(InvalidInput) as caught:
        Room(["ann"], ssl_cert="cert.pem")
    assert caught.value.field == "ssl_key"
    assert "password" not in repr(Room(["ann"]))


def test_collect_and_reset_work_on_the_room_folder(tmp_path: Path) -> None:
    for name, report in (("ann", "a.md"), ("bob", "b.html")):
        (tmp_path / "participants" / name / "reports").mkdir(parents=True)
        (tmp_path / "participants" / name / "reports" / report).write_text(name)
    copied = collect_reports(tmp_path, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in copied] == ["ann/a.md", "bob/b.html"]
    assert (tmp_path / "out" / "bob" / "b.html").read_text() == "bob"
    reset_participant(tmp_path, "ann")
    assert not (tmp_path / "participants" / "ann").exists() and (tmp_path / "participants" / "bob").exists()
    with pytest.raises(InvalidInput) as caught:
        reset_participant(tmp_path, "ann")
    assert caught.value.field == "name"
    with pytest.raises(InvalidInput) as caught:
        collect_reports(tmp_path / "nowhere", tmp_path / "out")
    assert caught.value.field == "room"


def test_the_command_line_collects_resets_and_refuses_with_a_clear_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from emailkit.cli import main

    (tmp_path / "participants" / "ann" / "reports").mkdir(parents=True)
    (tmp_path / "participants" / "ann" / "reports" / "ann-service.md").write_text("# ann")
    assert main(["workshop", "collect", "--room", str(tmp_path), "--output", str(tmp_path / "out")]) == 0
    assert "1 report(s)" in capsys.readouterr().out and (tmp_path / "out" / "ann" / "ann-service.md").is_file()
    assert main(["workshop", "reset", "ann", "--room", str(tmp_path)]) == 0
    assert not (tmp_path / "participants" / "ann").exists()
    assert main(["workshop", "--participants", "0", "--room", str(tmp_path)]) == 2
    assert "participants" in capsys.readouterr().err
    from emailkit.mailboxes import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    assert main(["workshop", "--participants", "2", "--room", str(tmp_path / "r"), "--port", "0",
                 "--mailpit-url", dead]) == 2
    err = capsys.readouterr().err
    assert "shared Mailpit" in err and "does not answer" in err and "MAILPIT_URL" in err
    assert not (tmp_path / "r" / "hub").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_emailkit_workshop_prints_the_room_once_and_ctrl_c_stops_it(tmp_path: Path, signal_name: str) -> None:
    """The trainer's command: the address and password on the terminal only; Ctrl-C (SIGINT), or a
    SIGTERM, ends it all."""
    import re
    import signal
    import subprocess
    import sys

    stop_signal = getattr(signal, signal_name)

    _need_the_hub()
    env = {k: v for k, v in os.environ.items() if k != "MAILPIT_URL"}
    command = [sys.executable, "-m", "emailkit", "workshop", "--participants", "1", "--port", "0",
               "--room", str(tmp_path / "room"), "--mailbox", "sandbox"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        while not any("Ctrl-C" in line for line in lines):
            line = proc.stdout.readline()
            assert line, f"the command ended early: {proc.stderr.read()[-2000:]}"
            lines.append(line)
        printed = "".join(lines)
        url = re.search(r"Workshop room at (http://127\.0\.0\.1:\d+)/", printed).group(1)
        password = re.search(r"shared password \(write it on the board\): (\S+)", printed).group(1)
        assert "participant-01" in printed
        room = Room(["participant-01"], root=tmp_path / "room", port=int(url.rsplit(":", 1)[1]))
        assert _login(room, "participant-01", password).status_code == 302
    finally:
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "Room stopped." in out
    room_id = json.loads((tmp_path / "room" / "hub" / "room.json").read_text())["room_id"]
    assert room_processes(room_id) == []
    for written in (tmp_path / "room").rglob("*"):
        if written.is_file():
            assert password not in written.read_text(errors="replace"), f"the password is in {written}"
    assert password not in err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_emailkit_workshop_with_a_shared_mailpit_says_whose_mail_is_where(tmp_path: Path) -> None:
    """`emailkit workshop --mailpit-url ... --mailpit-smtp ...`: the room starts on that Mailpit, says
    so on the trainer's terminal (and that its web UI shows everybody's mail), and hands it to the
    participants in the room's settings."""
    import re
    import signal
    import subprocess
    import sys

    _need_the_hub()
    need_mailpit()
    with MailpitProcess(find_mailpit(), max_messages=0, chaos=False) as shared:
        env = {k: v for k, v in os.environ.items() if k not in ("MAILPIT_URL", "MAILPIT_SMTP")}
        command = [sys.executable, "-m", "emailkit", "workshop", "--participants", "1", "--port", "0",
                   "--room", str(tmp_path / "room"), "--mailpit-url", shared.api_url,
                   "--mailpit-smtp", f"127.0.0.1:{shared.smtp_port}"]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            lines: list[str] = []
            while not any("Ctrl-C" in line for line in lines):
                line = proc.stdout.readline()
                assert line, f"the command ended early: {proc.stderr.read()[-2000:]}"
                lines.append(line)
            printed = "".join(lines)
            assert re.search(rf"mail: one shared Mailpit at {re.escape(shared.api_url)}, each participant their "
                             r"own share of it \(its own web UI shows everybody's mail", printed), printed
            settings = json.loads((tmp_path / "room" / "hub" / "room.json").read_text())
            assert settings["mailbox"] == "external" and settings["mailpit_url"] == shared.api_url
            assert settings["mailpit_smtp"] == f"127.0.0.1:{shared.smtp_port}"
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        assert shared.proc is not None and shared.proc.poll() is None   # the room leaves the shared Mailpit running
