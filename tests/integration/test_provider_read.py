"""Reading through the provider: grant isolation, pagination, every filter, flags, threads."""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from tests.support.provider import Lab, address, error_of

from emailkit.message import compose
from emailkit.threads import reply_headers


# The provider options of this module's `lab` (tests/integration/conftest.py).
LAB_OPTIONS = {"record_smtp": True}


def by_hand(sender: str, to: str, subject: str, *, headers: dict[str, str] | None = None,
            message_id: str | None = None) -> EmailMessage:
    return compose(sender=sender, to=[to], subject=subject, text=f"{subject} body", headers=headers,
                   message_id=message_id)


def test_a_grant_sees_only_mail_to_or_from_its_address(lab: Lab) -> None:
    ann, bob, carol = lab.grant("ann"), lab.grant("bob"), lab.grant("carol")
    sent = lab.sent_ok(ann, {"to": [{"email": bob.email}], "subject": "for bob", "body": "x"})
    # Mailpit's search is a substring match: mail for "x-bob…" must not reach bob.
    lab.smtp(by_hand(address("outsider"), "x-" + bob.email, "lookalike"))
    # Reply-To alone does not make a message yours.
    lab.smtp(compose(sender=address("outsider"), to=[address()], reply_to=[carol.email], subject="reply-to only",
                     text="x"))

    bob_view = lab.messages(bob).json()["data"]
    assert [m["subject"] for m in bob_view] == ["for bob"]
    assert bob_view[0]["unread"] is True and bob_view[0]["folders"] == ["INBOX"]
    ann_view = lab.messages(ann).json()["data"]
    assert [m["id"] for m in ann_view] == [sent["id"]] and ann_view[0]["folders"] == ["SENT"]
    assert lab.messages(carol).json()["data"] == []
    r = lab.http.get(f"/v3/grants/{carol.id}/messages/{sent['id']}")
    assert r.status_code == 404 and error_of(r)["type"] == "not_found_error"
    r = lab.http.put(f"/v3/grants/{carol.id}/messages/{sent['id']}", json={"unread": False})
    assert r.status_code == 404


def test_bcc_is_seen_by_the_sender_and_by_that_recipient_only(lab: Lab) -> None:
    ann, bob, dave = lab.grant("ann"), lab.grant("bob"), lab.grant("dave")
    lab.sent_ok(ann, {"to": [{"email": bob.email}], "bcc": [{"email": dave.email}], "subject": "bcc", "body": "x"})
    assert lab.messages(ann).json()["data"][0]["bcc"] == [{"name": "", "email": dave.email}]
    assert lab.messages(bob).json()["data"][0]["bcc"] == []
    dave_view = lab.messages(dave).json()["data"]
    assert [m["subject"] for m in dave_view] == ["bcc"]
    assert dave_view[0]["bcc"] == [{"name": "", "email": dave.email}]


def test_pagination_walks_every_message_once_newest_first(lab: Lab) -> None:
    ann, bob = lab.grant("ann"), lab.grant("bob")
    for i in range(7):
        lab.sent_ok(ann, {"to": [{"email": bob.email}], "subject": f"m{i}", "body": "x"})
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"limit": 3, **({"page_token": token} if token else {})}
        body = lab.messages(bob, **params).json()
        pages += 1
        seen += [m["subject"] for m in body["data"]]
        token = body["next_cursor"]
        if token is None:
            break
    assert pages == 3
    assert seen == [f"m{i}" for i in reversed(range(7))]


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": 201}, "limit"), ({"limit": 0}, "limit"), ({"limit": "ten"}, "limit"),
    ({"page_token": "garbage"}, "page_token"), ({"received_after": -1}, "received_after"),
    ({"unread": "maybe"}, "unread"), ({"from": "not an address"}, "from"), ({"fields": "raw_mime"}, "fields"),
    ({"received_before": 10**25}, "received_before"),
])
def test_bad_list_parameters_are_400_naming_the_parameter(lab: Lab, params: dict, field: str) -> None:
    r = lab.messages(lab.grant(), **params)
    assert r.status_code == 400
    error = error_of(r)
    assert error["type"] == "invalid_request_error" and error["field"] == field


def test_limit_200_is_allowed(lab: Lab) -> None:
    assert lab.messages(lab.grant(), limit=200).status_code == 200


def test_every_filter(lab: Lab) -> None:
    ann, bob = lab.grant("ann"), lab.grant("bob")
    other = address("other")
    a = lab.sent_ok(ann, {"to": [{"email": bob.email}], "subject": "Invoice 42", "body": "x"})
    b = lab.sent_ok(ann, {"to": [{"email": other}], "cc": [{"email": bob.email}], "subject": "Lunch", "body": "x"})
    lab.smtp(by_hand(other, bob.email, "Invoice from other"))

    def subjects(**params: object) -> list[str]:
        r = lab.messages(bob, **params)
        assert r.status_code == 200, r.text
        return sorted(m["subject"] for m in r.json()["data"])

    assert subjects() == ["Invoice 42", "Invoice from other", "Lunch"]
    assert subjects(subject="invoice") == ["Invoice 42", "Invoice from other"]
    assert subjects(**{"from": ann.email}) == ["Invoice 42", "Lunch"]
    assert subjects(**{"from": other.upper()}) == ["Invoice from other"]
    assert subjects(**{"from": f"{ann.email},{other}"}) == ["Invoice 42", "Invoice from other", "Lunch"]
    assert subjects(to=bob.email) == ["Invoice 42", "Invoice from other"]  # To only, not Cc
    assert subjects(to=other) == ["Lunch"]
    assert subjects(thread_id=a["thread_id"]) == ["Invoice 42"]
    # unread / starred are this grant's own flags
    assert lab.http.put(f"/v3/grants/{bob.id}/messages/{b['id']}", json={"unread": False, "starred": True}).status_code == 200
    assert subjects(unread="true") == ["Invoice 42", "Invoice from other"]
    assert subjects(unread="false") == ["Lunch"]
    assert subjects(starred="true") == ["Lunch"]
    assert lab.messages(ann, unread="false").json()["data"] != []  # the sender's view is unchanged
    assert lab.http.get(f"/v3/grants/{ann.id}/messages/{b['id']}").json()["data"]["starred"] is False
    # received_after / received_before (Unix seconds, on Mailpit's receive time)
    first = min(m["created_at"] for m in lab.messages(bob).json()["data"])
    assert subjects(received_after=first + 3600) == []
    assert subjects(received_before=first) == []
    assert len(subjects(received_after=first)) == 3
    assert len(subjects(received_after=first, received_before=first + 3600, subject="lunch")) == 1


def test_received_after_splits_by_time(lab: Lab) -> None:
    ann, bob = lab.grant("ann"), lab.grant("bob")
    lab.sent_ok(ann, {"to": [{"email": bob.email}], "subject": "early", "body": "x"})
    time.sleep(1.05)
    boundary = int(time.time())
    lab.sent_ok(ann, {"to": [{"email": bob.email}], "subject": "late", "body": "x"})
    assert [m["subject"] for m in lab.messages(bob, received_after=boundary).json()["data"]] == ["late"]
    assert [m["subject"] for m in lab.messages(bob, received_before=boundary).json()["data"]] == ["early"]


def test_get_and_put_a_message(lab: Lab) -> None:
    ann, bob = lab.grant("ann"), lab.grant("bob")
    sent = lab.sent_ok(ann, {"to": [{"email": bob.email}], "subject": "read me", "body": "<b>hi</b>"})
    r = lab.http.get(f"/v3/grants/{bob.id}/messages/{sent['id']}", params={"fields": "include_headers"})
    assert r.status_code == 200
    msg = r.json()["data"]
    assert msg["body"].strip() == "<b>hi</b>" and msg["unread"] is True
    names = {h["name"].lower(): h["value"] for h in msg["headers"]}
    assert names["message-id"] == sent["message_id"]
    assert lab.mailpit.message(sent["id"]).id  # (Mailpit's own read flag is not the grant's)
    r = lab.http.put(f"/v3/grants/{bob.id}/messages/{sent['id']}", json={"unread": False})
    assert r.status_code == 200 and r.json()["data"]["unread"] is False
    assert lab.http.get(f"/v3/grants/{bob.id}/messages/{sent['id']}").json()["data"]["unread"] is False
    r = lab.http.put(f"/v3/grants/{bob.id}/messages/{sent['id']}", json={"folders": ["TRASH"]})
    assert r.status_code == 400 and error_of(r)["field"] == "folders"
    r = lab.http.put(f"/v3/grants/{bob.id}/messages/{sent['id']}", json={"unread": "no"})
    assert r.status_code == 400 and error_of(r)["field"] == "unread"


def test_mail_deleted_in_mailpit_leaves_the_grant_view(lab: Lab) -> None:
    ann, bob = lab.grant("ann"), lab.grant("bob")
    keep = lab.sent_ok(ann, {"to": [{"email": bob.email}], "subject": "keep", "body": "x"})
    gone = lab.sent_ok(ann, {"to": [{"email": bob.email}], "subject": "gone", "body": "x"})
    assert len(lab.messages(bob).json()["data"]) == 2
    lab.mailpit.delete([gone["id"]])
    assert [m["id"] for m in lab.messages(bob).json()["data"]] == [keep["id"]]


def test_threads_across_the_api_and_hand_made_smtp(lab: Lab) -> None:
    """An outsider writes over SMTP; the grant answers with reply_to_message_id; the outsider answers
    by hand with In-Reply-To/References from threads.reply_headers: one thread, three messages."""
    ann = lab.grant("ann")
    outsider = address("outsider")
    first = by_hand(outsider, ann.email, "Project kickoff")
    lab.smtp(first)
    inbox = lab.messages(ann).json()["data"]
    assert [m["subject"] for m in inbox] == ["Project kickoff"]
    reply = lab.sent_ok(ann, {"to": [{"email": outsider}], "body": "Count me in",
                              "reply_to_message_id": inbox[0]["id"]})
    assert reply["subject"] == "Re: Project kickoff"
    assert reply["thread_id"] == inbox[0]["thread_id"]
    api_headers = lab.mailpit.headers(reply["id"])
    assert api_headers["In-Reply-To"] == [first["Message-ID"]]
    assert api_headers["References"] == [first["Message-ID"]]

    threading = reply_headers(api_headers)
    answer = by_hand(outsider, ann.email, threading.pop("Subject"), headers=threading)
    lab.smtp(answer)
    messages = lab.messages(ann).json()["data"]
    assert len({m["thread_id"] for m in messages}) == 1
    threads = lab.http.get(f"/v3/grants/{ann.id}/threads").json()["data"]
    assert len(threads) == 1
    thread = threads[0]
    assert thread["object"] == "thread" and thread["subject"] == "Project kickoff"
    assert len(thread["message_ids"]) == 3 and thread["message_ids"][1] == reply["id"]
    assert {p["email"] for p in thread["participants"]} == {ann.email, outsider}
    assert thread["unread"] is True and thread["folders"] == ["INBOX", "SENT"]
    assert thread["latest_draft_or_message"]["message_id"] == answer["Message-ID"]
    assert lab.http.get(f"/v3/grants/{ann.id}/threads/{thread['id']}").json()["data"]["message_ids"] == thread["message_ids"]
    hand_headers = lab.mailpit.headers(thread["message_ids"][2])
    assert hand_headers["References"] == [f"{first['Message-ID']} {reply['message_id']}"]


def test_a_reply_that_arrives_before_its_parent_joins_the_same_thread(lab: Lab) -> None:
    ann = lab.grant("ann")
    outsider = address("outsider")
    root_id, parent_id = make_msgid(domain="x.example"), make_msgid(domain="x.example")
    child = by_hand(outsider, ann.email, "Re: order", headers={"In-Reply-To": parent_id,
                                                                "References": f"{root_id} {parent_id}"})
    lab.smtp(child)
    child_thread = lab.messages(ann).json()["data"][0]["thread_id"]
    lab.smtp(by_hand(outsider, ann.email, "order", message_id=root_id))  # an unrelated-looking root: indexed apart
    lab.messages(ann)
    lab.smtp(by_hand(outsider, ann.email, "Re: order", message_id=parent_id,
                     headers={"In-Reply-To": root_id, "References": root_id}))
    messages = lab.messages(ann).json()["data"]
    assert len(messages) == 3 and {m["thread_id"] for m in messages} == {child_thread}
    threads = lab.http.get(f"/v3/grants/{ann.id}/threads").json()["data"]
    assert len(threads) == 1 and threads[0]["subject"] == "Re: order"


def test_thread_filters_and_pagination(lab: Lab) -> None:
    ann, bob = lab.grant("ann"), lab.grant("bob")
    for i in range(3):
        lab.sent_ok(ann, {"to": [{"email": bob.email}], "subject": f"topic {i}", "body": "x"})
    page1 = lab.http.get(f"/v3/grants/{bob.id}/threads", params={"limit": 2}).json()
    assert [t["subject"] for t in page1["data"]] == ["topic 2", "topic 1"] and page1["next_cursor"]
    page2 = lab.http.get(f"/v3/grants/{bob.id}/threads", params={"limit": 2, "page_token": page1["next_cursor"]}).json()
    assert [t["subject"] for t in page2["data"]] == ["topic 0"] and page2["next_cursor"] is None
    assert [t["subject"] for t in lab.http.get(f"/v3/grants/{bob.id}/threads",
                                               params={"subject": "TOPIC 1"}).json()["data"]] == ["topic 1"]
    assert lab.http.get(f"/v3/grants/{bob.id}/threads", params={"unread": "false"}).json()["data"] == []
    r = lab.http.get(f"/v3/grants/{bob.id}/threads", params={"latest_message_before": 10**25})
    assert r.status_code == 400 and error_of(r)["field"] == "latest_message_before"
    r = lab.http.get(f"/v3/grants/{bob.id}/threads", params={"page_token": "eyJ4IjoxfQ"})
    assert r.status_code == 400 and error_of(r)["field"] == "page_token"
    r = lab.http.get(f"/v3/grants/{bob.id}/threads/does-not-exist")
    assert r.status_code == 404 and error_of(r)["field"] == "thread_id"
