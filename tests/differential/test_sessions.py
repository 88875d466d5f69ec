"""SMTP and POP3 sessions replayed byte for byte against real Mailpit and the sandbox; replies compared
line by line (host names, IDs and times masked). Includes what a client gets wrong: commands out of
order, bad addresses, too many recipients, an oversize message, unknown commands.
"""

from __future__ import annotations

import poplib
import socket
import smtplib

import pytest
from conftest import OPTIONS, Pair, Side
from corpus import BY_NAME, big_text

from emailkit.message import compose

pytestmark = pytest.mark.slow  # seconds to minutes: left out of `make test-fast`


class Wire:
    """A bare line-based client: send a line, read one complete reply (all its lines)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.file = self.sock.makefile("rb")

    def readline(self) -> str:
        try:
            return self.file.readline().decode("utf-8", "replace")
        except ConnectionResetError:
            return ""  # the server closed on us: shown as <closed>

    def smtp_reply(self) -> list[str]:
        lines = []
        while True:
            line = self.readline()
            if not line:
                lines.append("<closed>")
                return lines
            lines.append(line.rstrip("\r\n"))
            if len(line) < 4 or line[3] != "-":
                return lines

    def pop3_reply(self, multiline: bool) -> list[str]:
        first = self.readline()
        if not first:
            return ["<closed>"]
        lines = [first.rstrip("\r\n")]
        if multiline and first.startswith("+OK"):
            while True:
                line = self.readline()
                if not line:
                    lines.append("<closed>")
                    break
                lines.append(line.rstrip("\r\n"))
                if line in (".\r\n", ".\n"):
                    break
        return lines

    def send(self, data: str | bytes) -> None:
        self.sock.sendall(data if isinstance(data, bytes) else data.encode() + b"\r\n")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def smtp_dialogue(side: Side, steps: list[str | bytes]) -> list[str]:
    """The greeting, then each step's reply; a bytes step is sent as is (a DATA body)."""
    wire = Wire(side.box.smtp_host, side.box.smtp_port)
    try:
        out = [f"S: {x}" for x in wire.smtp_reply()]
        for step in steps:
            wire.send(step)
            out.append(f"C: {step if isinstance(step, str) else '<data>'}")
            out += [f"S: {x}" for x in wire.smtp_reply()]
            if out[-1].endswith("<closed>"):
                break
        return out
    finally:
        wire.close()


BODY = b"From: a@corpus.test\r\nTo: b@corpus.test\r\nSubject: wire\r\nMessage-ID: <wire@corpus.test>\r\n\r\nhi\r\n.\r\n"
TOO_MANY = int(OPTIONS["max_recipients"]) + 1

SMTP_SESSIONS: dict[str, list[str | bytes]] = {
    "happy path": ["EHLO client.test", "MAIL FROM:<a@corpus.test>", "RCPT TO:<b@corpus.test>", "DATA", BODY, "QUIT"],
    "HELO not EHLO": ["HELO client.test", "MAIL FROM:<a@corpus.test>", "RCPT TO:<b@corpus.test>", "DATA", BODY,
                      "QUIT"],
    "MAIL before EHLO": ["MAIL FROM:<a@corpus.test>", "QUIT"],
    "RCPT before MAIL": ["EHLO client.test", "RCPT TO:<b@corpus.test>", "QUIT"],
    "DATA before RCPT": ["EHLO client.test", "MAIL FROM:<a@corpus.test>", "DATA", "QUIT"],
    "MAIL twice": ["EHLO client.test", "MAIL FROM:<a@corpus.test>", "MAIL FROM:<c@corpus.test>", "QUIT"],
    "RSET then again": ["EHLO client.test", "MAIL FROM:<a@corpus.test>", "RSET", "RCPT TO:<b@corpus.test>",
                        "MAIL FROM:<a@corpus.test>", "RCPT TO:<b@corpus.test>", "QUIT"],
    "bad sender": ["EHLO client.test", "MAIL FROM:<not an address>", "MAIL FROM:a@corpus.test", "QUIT"],
    "bad recipient": ["EHLO client.test", "MAIL FROM:<a@corpus.test>", "RCPT TO:<nobody>", "RCPT TO:<@x>",
                      "RCPT TO:<b@corpus.test>", "QUIT"],
    "null sender": ["EHLO client.test", "MAIL FROM:<>", "RCPT TO:<b@corpus.test>", "DATA", BODY, "QUIT"],
    "too many recipients": ["EHLO client.test", "MAIL FROM:<a@corpus.test>",
                            *[f"RCPT TO:<r{i}@corpus.test>" for i in range(TOO_MANY)], "QUIT"],
    "declared oversize": ["EHLO client.test", f"MAIL FROM:<a@corpus.test> SIZE={2 * 1024 * 1024}", "QUIT"],
    "NOOP VRFY HELP unknown": ["EHLO client.test", "NOOP", "VRFY b@corpus.test", "HELP", "FOO bar", "QUIT"],
    "AUTH PLAIN accepted": ["EHLO client.test", "AUTH PLAIN AHVzZXIAcGFzcw==", "MAIL FROM:<a@corpus.test>", "QUIT"],
    "lower-case verbs": ["ehlo client.test", "mail from:<a@corpus.test>", "rcpt to:<b@corpus.test>", "quit"],
    "STARTTLS not offered": ["EHLO client.test", "STARTTLS", "QUIT"],
    "AUTH LOGIN": ["EHLO client.test", "AUTH LOGIN", "dXNlcg==", "cGFzcw==", "AUTH PLAIN AHVzZXIAcGFzcw==", "QUIT"],
    "AUTH bad": ["EHLO client.test", "AUTH PLAIN !!!", "AUTH CRAM-MD5", "AUTH", "QUIT"],
    "MAIL parameters": ["EHLO client.test", "MAIL FROM:<a@corpus.test> SIZE=100 BODY=8BITMIME",
                        "RCPT TO:<b@corpus.test>", "RSET", "MAIL FROM:<a@corpus.test> SIZE=abc",
                        "MAIL FROM:<a@corpus.test> FOO=bar", "QUIT"],
    "UTF-8 addresses": ["EHLO client.test", "MAIL FROM:<zoë@corpus.test> SMTPUTF8", "RCPT TO:<jürgen@corpus.test>",
                        "DATA", BODY, "QUIT"],
    "dot-stuffed DATA": ["EHLO client.test", "MAIL FROM:<a@corpus.test>", "RCPT TO:<b@corpus.test>", "DATA",
                         b"Subject: dots\r\n\r\n..leading dot\r\n.\r\n", "QUIT"],
    "empty and junk lines": ["", "EHLO", "HELO", "EHLO client.test", "MAIL", "MAIL TO:<x@corpus.test>", "RCPT",
                             "QUIT"],
}


@pytest.mark.parametrize("name", list(SMTP_SESSIONS))
def test_smtp_session(pair: Pair, name: str) -> None:
    real, ours = (smtp_dialogue(side, SMTP_SESSIONS[name]) for side in pair.sides)
    pair.lines(f"SMTP {name}", real, ours)


def test_smtp_oversize_message_body(pair: Pair) -> None:
    """A message past the 1 MB cap sent without SIZE: the reply to its end-of-data."""
    msg = compose(sender="a@corpus.test", to="b@corpus.test", subject="big", text=big_text(1024 * 1024 + 4096),
                  date="Tue, 01 Dec 2026 09:00:00 +0000", message_id="<big@corpus.test>")
    body = msg.as_bytes(policy=msg.policy).replace(b"\r\n.", b"\r\n..") + b".\r\n"
    steps: list[str | bytes] = ["EHLO client.test", "MAIL FROM:<a@corpus.test>", "RCPT TO:<b@corpus.test>", "DATA",
                                body, "QUIT"]
    real, ours = (smtp_dialogue(side, steps) for side in pair.sides)
    pair.lines("SMTP oversize body", real, ours)
    pair.json("SMTP oversize body: stored", *(side.count() for side in pair.sides))


def test_smtplib_errors_as_a_client_sees_them(pair: Pair) -> None:
    """What stdlib smtplib raises for refused recipients and an oversize message."""
    def run(side: Side) -> dict:
        seen: dict = {}
        with side.smtp() as client:
            try:
                client.sendmail("a@corpus.test", ["nobody", "b@corpus.test"], BODY[:-3])
                seen["partial"] = "sent"
            except smtplib.SMTPRecipientsRefused as exc:
                seen["partial"] = {k: [v[0], v[1].decode()] for k, v in exc.recipients.items()}
            try:
                client.sendmail("a@corpus.test", [f"r{i}@corpus.test" for i in range(TOO_MANY)], BODY[:-3])
                seen["too many"] = "sent"
            except smtplib.SMTPException as exc:
                seen["too many"] = type(exc).__name__
        return seen

    pair.json("smtplib refusals", *(run(side) for side in pair.sides))


def test_nodemailer_refusals(pair: Pair, nodemailer) -> None:
    """Nodemailer with its defaults: a bad recipient, too many recipients, an oversize message."""
    targets = [(s.box.smtp_host, s.box.smtp_port) for s in pair.sides]
    base = BY_NAME["plain"].nodemailer()
    cases = {
        "bad recipient": {**base, "to": ["not-an-address", "b@corpus.test"]},
        "too many recipients": {**base, "to": [f"r{i}@corpus.test" for i in range(TOO_MANY)]},
        "oversize": {**base, "text": big_text(1024 * 1024 + 4096)},
    }
    for name, message in cases.items():
        real, ours = nodemailer(message, targets)
        pair.json(f"nodemailer {name}", real, ours)


# --------------------------------------------------------------------------- POP3


def pop3_dialogue(side: Side, steps: list[tuple[str, bool]]) -> list[str]:
    assert side.box.pop3 is not None
    wire = Wire(side.box.pop3.host, side.box.pop3.port)
    try:
        out = [f"S: {x}" for x in wire.pop3_reply(False)]
        for command, multiline in steps:
            command = command.replace("{user}", side.box.pop3.user).replace("{password}", side.box.pop3.password)
            wire.send(command)
            out.append("C: " + ("PASS <password>" if command.upper().startswith(("PASS ", "APOP ")) else command))
            out += [f"S: {x}" for x in wire.pop3_reply(multiline)]
            if out[-1].endswith("<closed>"):
                break
        return out
    finally:
        wire.close()


POP3_SESSIONS: dict[str, list[tuple[str, bool]]] = {
    "read and delete": [("CAPA", True), ("USER {user}", False), ("PASS {password}", False), ("STAT", False),
                        ("LIST", True), ("LIST 1", False), ("UIDL", True), ("RETR 2", True),
                        ("DELE 1", False), ("STAT", False), ("RSET", False), ("NOOP", False), ("QUIT", False)],
    "TOP": [("USER {user}", False), ("PASS {password}", False), ("TOP 1 0", True), ("TOP 2 1", True),
            ("QUIT", False)],
    "out of order": [("STAT", False), ("PASS {password}", False), ("USER {user}", False), ("USER {user}", False),
                     ("QUIT", False)],
    "bad login": [("USER {user}", False), ("PASS wrong", False), ("QUIT", False)],
    "list and uidl after DELE": [("USER {user}", False), ("PASS {password}", False), ("DELE 1", False),
                                 ("LIST", True), ("UIDL 1", False), ("RETR 1", False), ("DELE 1", False),
                                 ("STAT", False), ("QUIT", False)],
    "APOP and case": [("APOP workbook 0123456789abcdef", False), ("user {user}", False), ("pass {password}", False),
                      ("stat", False), ("uidl", True), ("quit", False)],
    "bad arguments": [("USER {user}", False), ("PASS {password}", False), ("RETR 99", False), ("LIST x", False),
                      ("DELE 0", False), ("TOP 1", False), ("FOO", False), ("QUIT", False)],
}


@pytest.mark.parametrize("name", list(POP3_SESSIONS))
def test_pop3_session(pair: Pair, name: str) -> None:
    for case in ("plain", "utf8"):
        pair.deliver(BY_NAME[case].raw(), BY_NAME[case].sender, BY_NAME[case].recipients)
    real, ours = (pop3_dialogue(side, POP3_SESSIONS[name]) for side in pair.sides)
    pair.lines(f"POP3 {name}", real, ours)
    pair.json(f"POP3 {name}: left after QUIT", *(side.count() for side in pair.sides))


def test_poplib_reads_what_the_api_shows(pair: Pair) -> None:
    """stdlib poplib: the message count, sizes, and the retrieved bytes, on both servers."""
    for case in ("plain", "attachments"):
        pair.deliver(BY_NAME[case].raw(), BY_NAME[case].sender, BY_NAME[case].recipients)

    def read(side: Side) -> dict:
        assert side.box.pop3 is not None
        client = poplib.POP3(side.box.pop3.host, side.box.pop3.port, timeout=10)
        try:
            client.user(side.box.pop3.user)
            client.pass_(side.box.pop3.password)
            count, _size = client.stat()
            subjects = []
            for i in range(1, count + 1):
                _resp, lines, _octets = client.retr(i)
                subjects += [ln.decode() for ln in lines if ln.startswith(b"Subject:")]
            return {"count": count, "subjects": subjects, "capa": sorted(client.capa())}
        finally:
            client.quit()

    pair.json("poplib read", *(read(side) for side in pair.sides))
