"""emailkit.threads: reply headers by RFC 5322 §3.6.4, and JWZ-style grouping."""

from __future__ import annotations

from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from emailkit.threads import base_subject, group, message_ids, references, reply_headers, reply_subject


def test_reply_to_a_first_message() -> None:
    parent = {"Message-ID": "<root@a.example>", "Subject": "Quarterly numbers"}
    assert reply_headers(parent) == {
        "In-Reply-To": "<root@a.example>",
        "References": "<root@a.example>",
        "Subject": "Re: Quarterly numbers",
    }


def test_references_grow_by_the_parent_id() -> None:
    parent = {
        "Message-ID": "<c@x>",
        "In-Reply-To": "<b@x>",
        "References": "<a@x> <b@x>",
        "Subject": "Re: plan",
    }
    headers = reply_headers(parent)
    assert headers["In-Reply-To"] == "<c@x>"
    assert headers["References"] == "<a@x> <b@x> <c@x>"
    assert headers["Subject"] == "Re: plan"  # "Re:" is added once only


def test_parent_without_references_falls_back_to_in_reply_to() -> None:
    parent = {"Message-ID": "<b@x>", "In-Reply-To": "<a@x>", "Subject": "Re: hi"}
    assert reply_headers(parent)["References"] == "<a@x> <b@x>"


def test_parent_with_several_in_reply_to_ids_gives_no_fallback() -> None:
    parent = {"Message-ID": "<c@x>", "In-Reply-To": "<a@x> <b@x>"}
    assert reply_headers(parent)["References"] == "<c@x>"


def test_parent_without_message_id_cannot_be_named() -> None:
    headers = reply_headers({"Subject": "no id"})
    assert "In-Reply-To" not in headers and "References" not in headers
    assert headers["Subject"] == "Re: no id"


def test_mailpit_headers_output_is_accepted() -> None:
    # Mailpit's /headers: canonical Go names (Message-Id), every value a list, folded lines joined.
    parent = {
        "Message-Id": ["<p@mailpit>"],
        "References": ["<r1@x>", "<r2@x>"],
        "Subject": ["RE: Status"],
    }
    assert reply_headers(parent) == {
        "In-Reply-To": "<p@mailpit>",
        "References": "<r1@x> <r2@x> <p@mailpit>",
        "Subject": "RE: Status",
    }


def test_email_message_is_accepted() -> None:
    msg = EmailMessage()
    msg["Message-ID"] = "<m@x>"
    msg["Subject"] = "Hello"
    assert reply_headers(msg)["In-Reply-To"] == "<m@x>"


def test_subject_helpers() -> None:
    assert reply_subject("Re: Re: x") == "Re: Re: x"
    assert reply_subject("AW: Termin") == "AW: Termin"
    assert reply_subject("x") == "Re: x"
    assert base_subject("Re: Fwd: RE: Plans ") == "plans"


def test_message_ids_parses_folded_and_bare_ids() -> None:
    assert message_ids("<a@x>\r\n <b@x> <a@x>") == ["<a@x>", "<b@x>"]
    assert message_ids("abc@mailpit") == ["<abc@mailpit>"]
    assert message_ids("") == []
    assert references({"In-Reply-To": "<p@x>"}) == ["<p@x>"]


def conversation() -> list[dict[str, str]]:
    """root ← a ← b, root ← c; plus an unrelated message; plus two replies to a missing root."""
    root = {"Message-ID": "<root@x>", "Subject": "Plan", "Date": "Mon, 20 Jul 2026 10:00:00 +0000"}
    a = {"Message-ID": "<a@x>", "Date": "Mon, 20 Jul 2026 10:01:00 +0000", **reply_headers(root)}
    b = {"Message-ID": "<b@x>", "Date": "Mon, 20 Jul 2026 10:02:00 +0000", **reply_headers(a)}
    c = {"Message-ID": "<c@x>", "Date": "Mon, 20 Jul 2026 10:03:00 +0000", **reply_headers(root)}
    other = {"Message-ID": "<other@y>", "Subject": "Lunch", "Date": "Mon, 20 Jul 2026 09:00:00 +0000"}
    orphan1 = {"Message-ID": "<o1@z>", "References": "<gone@z>", "Subject": "Re: Old", "Date": "Mon, 20 Jul 2026 11:00:00 +0000"}
    orphan2 = {"Message-ID": "<o2@z>", "In-Reply-To": "<gone@z>", "Subject": "Re: Old", "Date": "Mon, 20 Jul 2026 11:05:00 +0000"}
    return [root, a, b, c, other, orphan1, orphan2]


def test_group_builds_the_tree() -> None:
    frame = group(conversation())
    rows = {r["message_id"]: r for r in frame.to_dict("records")}
    assert rows["<a@x>"]["parent"] == "<root@x>" and rows["<a@x>"]["depth"] == 1
    assert rows["<b@x>"]["parent"] == "<a@x>" and rows["<b@x>"]["depth"] == 2
    assert rows["<c@x>"]["parent"] == "<root@x>"
    assert {rows[m]["thread_id"] for m in ("<root@x>", "<a@x>", "<b@x>", "<c@x>")} == {"<root@x>"}
    assert rows["<other@y>"]["thread_id"] == "<other@y>"
    # The missing root is pruned; its two replies stay in one thread as siblings.
    assert rows["<o1@z>"]["thread_id"] == rows["<o2@z>"]["thread_id"]
    assert rows["<o1@z>"]["parent"] is None and rows["<o2@z>"]["depth"] == 0
    # Tree order: threads by their first message's date, then depth-first.
    assert list(frame["message_id"]) == ["<other@y>", "<root@x>", "<a@x>", "<b@x>", "<c@x>", "<o1@z>", "<o2@z>"]
    assert {"thread_id", "message_id", "subject", "depth", "parent"} <= set(frame.columns)


def test_group_by_subject_joins_roots_with_the_same_subject() -> None:
    msgs = [{"Message-ID": "<1@x>", "Subject": "Invoice"}, {"Message-ID": "<2@x>", "Subject": "Re: invoice"}]
    assert group(msgs)["thread_id"].nunique() == 2
    assert group(msgs, by_subject=True)["thread_id"].nunique() == 1


def test_group_keeps_ids_of_mailpit_rows() -> None:
    frame = group([{"id": "abc", "Message-Id": ["<m@x>"], "Subject": ["Hi"]}])
    assert frame.loc[0, "id"] == "abc" and frame.loc[0, "message_id"] == "<m@x>"


def test_group_survives_a_reference_cycle() -> None:
    msgs = [{"Message-ID": "<a@x>", "References": "<b@x>"}, {"Message-ID": "<b@x>", "References": "<a@x>"}]
    frame = group(msgs)
    assert frame["thread_id"].nunique() == 1 and len(frame) == 2


@settings(max_examples=60, deadline=None)
@given(st.permutations(conversation()))
def test_any_order_of_arrival_gives_the_same_grouping(order: list[dict[str, str]]) -> None:
    assert group(order).equals(group(conversation()))


@st.composite
def random_threads(draw: st.DrawFn) -> list[dict[str, str]]:
    """Random reply trees built with reply_headers(), some messages then dropped (lost parents)."""
    messages: list[dict[str, str]] = []
    for i in range(draw(st.integers(1, 12))):
        if messages and draw(st.booleans()):
            parent = messages[draw(st.integers(0, len(messages) - 1))]
            messages.append({"Message-ID": f"<m{i}@x>", **reply_headers(parent)})
        else:
            messages.append({"Message-ID": f"<m{i}@x>", "Subject": f"topic {i}"})
    keep = draw(st.lists(st.booleans(), min_size=len(messages), max_size=len(messages)))
    return [m for m, k in zip(messages, keep) if k] or messages[:1]


@settings(max_examples=100, deadline=None)
@given(random_threads(), st.randoms(use_true_random=False))
def test_random_conversations_group_the_same_in_any_order(messages: list[dict[str, str]], rnd) -> None:  # noqa: ANN001
    shuffled = list(messages)
    rnd.shuffle(shuffled)
    expected = group(messages)
    assert group(shuffled).equals(expected)
    # Every message shares a thread with each ancestor it names that is present.
    by_id = expected.set_index("message_id")
    for mid, row in by_id.iterrows():
        for ref in row["references"].split():
            if ref in by_id.index:
                assert by_id.loc[ref, "thread_id"] == row["thread_id"]
