"""The corpus sent three ways (emailkit's client, stdlib smtplib, Nodemailer with its defaults) to real
Mailpit and to the sandbox; then every read endpoint for the stored message compared field by field.
"""

from __future__ import annotations

import pytest
from conftest import Pair
from corpus import CASES, Case

from emailkit.smtp import send_sync

pytestmark = pytest.mark.slow  # seconds to minutes: left out of `make test-fast`


def _read_everything(pair: Pair, case: str, ids: tuple[str, str], *, smtp: bool = True) -> None:
    """List, message, headers, raw, every part and thumbnail, the views and checks of one message."""
    by_side = dict(zip(pair.sides, ids))
    pair.json(f"{case}: list", *pair.call("GET", "/api/v1/messages"), smtp=smtp)
    real_msg, our_msg = pair.call("GET", lambda s: f"/api/v1/message/{by_side[s]}")
    pair.json(f"{case}: message", real_msg, our_msg, smtp=smtp)
    pair.json(f"{case}: headers", *pair.call("GET", lambda s: f"/api/v1/message/{by_side[s]}/headers"), smtp=smtp)
    raw = pair.call("GET", lambda s: f"/api/v1/message/{by_side[s]}/raw")
    pair.lines(f"{case}: raw", *(r.text.split("\n") for r in raw))
    pair.json(f"{case}: raw download", *pair.call("GET", lambda s: f"/api/v1/message/{by_side[s]}/raw?dl=1"),
              smtp=smtp)
    for kind in ("Inline", "Attachments"):
        parts = real_msg.json()[kind]
        for i, part in enumerate(parts):
            part_id = part["PartID"]
            pair.json(f"{case}: {kind}[{i}] part", *pair.call(
                "GET", lambda s: f"/api/v1/message/{by_side[s]}/part/{part_id}"), smtp=smtp)
            pair.json(f"{case}: {kind}[{i}] thumb", *pair.call(
                "GET", lambda s: f"/api/v1/message/{by_side[s]}/part/{part_id}/thumb"), smtp=smtp)
    for view in ("html", "txt"):
        pair.json(f"{case}: view .{view}", *pair.call("GET", lambda s: f"/view/{by_side[s]}.{view}"), smtp=smtp)
    pair.json(f"{case}: link-check", *pair.call("GET", lambda s: f"/api/v1/message/{by_side[s]}/link-check"),
              smtp=smtp)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_by_smtplib(pair: Pair, case: Case) -> None:
    ids = pair.deliver(case.raw(), case.sender, case.recipients)
    _read_everything(pair, f"smtplib {case.name}", ids)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_by_emailkit(pair: Pair, case: Case) -> None:
    results = []
    ids = []
    for side in pair.sides:
        result = send_sync(case.message(), host=side.box.smtp_host, port=side.box.smtp_port)
        results.append({"code": result.code, "reply": result.reply, "queued_as": bool(result.queued_as),
                        "refused": result.refused, "message_id": result.message_id})
        side.wait_for(1)
        ids.append(side.ids()[0])
    pair.json(f"emailkit {case.name}: send result", *results)
    _read_everything(pair, f"emailkit {case.name}", (ids[0], ids[1]))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_by_nodemailer(pair: Pair, case: Case, nodemailer) -> None:
    replies = nodemailer(case.nodemailer(), [(s.box.smtp_host, s.box.smtp_port) for s in pair.sides])
    pair.json(f"nodemailer {case.name}: replies", *replies)
    assert all(r["ok"] for r in replies), replies
    for side in pair.sides:
        side.wait_for(1)
    ids = (pair.real.ids()[0], pair.ours.ids()[0])
    _read_everything(pair, f"nodemailer {case.name}", ids)
