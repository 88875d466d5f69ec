"""The sandbox's Mailpit search language: parsing, and what each term finds in a real SQLite store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from emailkit.message import compose
from emailkit.sandbox.search import SearchError, Term, parse_date, parse_query, resolve_tz, split_query
from emailkit.sandbox.store import Store


def test_split_query_keeps_quoted_phrases_together() -> None:
    assert split_query('one "two three"  four') == ["one", "two three", "four"]
    assert split_query('subject:"big news" -"not this"') == ["subject:big news", "-not this"]
    assert split_query("   ") == []


def test_parse_query_prefixes_negation_and_flags() -> None:
    terms = parse_query('from:Ann TO:bob@example.com !subject:"Hello World" -is:read has:attachments tag:urgent')
    assert terms == [
        Term("from", "ann", False),
        Term("to", "bob@example.com", False),
        Term("subject", "Hello World", True),  # subject keeps its case, like Mailpit
        Term("is:read", "", True),
        Term("has:attachment", "", False),
        Term("tag", "urgent", False),
    ]


def test_parse_query_skips_what_mailpit_skips() -> None:
    assert parse_query(",,, () ; <>") == []  # empty once cleaned, as Mailpit's cleanString leaves them
    # measured against Mailpit (tests/differential): "-" and "!" alone are searched as text, as is 日本語
    assert parse_query("- 日本語") == [Term("text", "-"), Term("text", "日本語")]
    assert parse_query("to:") == []
    assert parse_query("is:unknown") == [Term("text", "is:unknown")]
    assert parse_query("larger:huge") == [Term("text", "larger:huge")]


@pytest.mark.parametrize(
    "text",
    [
        "2026/07/20",
        "2026-07-20",
        "2026-07-20 10:30",
        "2026-07-20T10:30:00Z",
        "20 Jul 2026",
        "Mon, 20 Jul 2026 10:30:00 +0000",
        "1784505600",
    ],
)
def test_parse_date_reads_common_forms(text: str) -> None:
    value = parse_date(text, timezone.utc)
    assert (value.year, value.month, value.day) == (2026, 7, 20)


def test_parse_date_uses_the_given_zone_for_naive_dates() -> None:
    assert parse_date("2026/07/20", resolve_tz("Pacific/Auckland")).utcoffset() == timedelta(hours=12)


def test_bad_dates_and_zones_are_errors_not_silently_ignored() -> None:
    with pytest.raises(SearchError, match="invalid date"):
        parse_date("the day after tomorrow", timezone.utc)
    with pytest.raises(SearchError, match="invalid timezone"):
        resolve_tz("Mars/Olympus_Mons")


# --------------------------------------------------------------------------- against a real store


def raw(
    subject: str,
    *,
    sender: str = "ann@example.com",
    to: tuple[str, ...] = ("bob@example.com",),
    cc: tuple[str, ...] = (),
    text: str = "plain body",
    html: str | None = None,
    attachments: tuple = (),
    headers: dict | None = None,
    message_id: str | None = None,
) -> bytes:
    msg = compose(
        sender=sender,
        to=list(to),
        cc=list(cc),
        subject=subject,
        text=text,
        html=html,
        attachments=list(attachments),
        headers=headers,
        message_id=message_id,
    )
    return msg.as_bytes(policy=msg.policy)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "mail.db") as s:
        s.add(
            raw(
                "Quarterly report",
                sender="Finance Team <finance@corp.example>",
                to=("boss@corp.example",),
                text="numbers inside",
                attachments=(("q3.pdf", "application/pdf", b"%PDF"),),
            )
        )
        s.add(
            raw(
                "Lunch?",
                sender="ann@example.com",
                to=("bob+food@example.com",),
                cc=("cat@example.com",),
                html="<p>Pizza at <b>noon</b>&nbsp;today</p>",
                text=None,
                headers={"X-Tags": "social"},
            )
        )
        s.add(
            raw(
                "Re: Lunch?",
                sender="bob@example.com",
                to=("ann@example.com",),
                text="Yes, pizza!",
                message_id="<reply-1@example.com>",
            )
        )
        yield s


def subjects(store: Store, query: str) -> list[str]:
    page, matches, _ = store.search(query)
    assert matches == len(page)
    return [m["Subject"] for m in page]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("pizza", ["Re: Lunch?", "Lunch?"]),
        ("PIZZA -re", ["Lunch?"]),
        ('"pizza at noon"', ["Lunch?"]),  # HTML is searched as visible text
        ("from:finance", ["Quarterly report"]),
        ("from:finance team", ["Quarterly report"]),  # two terms; 'team' is in the search text
        ("to:bob", ["Lunch?"]),
        ("cc:cat@example.com", ["Lunch?"]),
        ("-cc:cat", ["Re: Lunch?", "Quarterly report"]),
        ("addressed:boss", ["Quarterly report"]),
        ("subject:lunch", ["Re: Lunch?", "Lunch?"]),
        ('subject:"re: lunch"', ["Re: Lunch?"]),
        ("message-id:<reply-1@example.com>", ["Re: Lunch?"]),
        ("tag:social", ["Lunch?"]),
        ("tag:SOCIAL", ["Lunch?"]),
        ("tag:food", ["Lunch?"]),  # plus-address tag
        ("is:tagged", ["Lunch?"]),
        ("!is:tagged", ["Re: Lunch?", "Quarterly report"]),
        ("has:attachment", ["Quarterly report"]),
        ("q3.pdf", ["Quarterly report"]),  # attachment file names are searchable
        ("smaller:1", []),
        ("larger:1m", []),
        ("-larger:1m smaller:1M", ["Re: Lunch?", "Lunch?", "Quarterly report"]),
        ("100%", []),  # LIKE wildcards in the term are literal
        ("bob_example", []),
    ],
)
def test_search_terms(store: Store, query: str, expected: list[str]) -> None:
    assert subjects(store, query) == expected


def test_size_terms(store: Store) -> None:
    sizes = {m["Subject"]: m["Size"] for m in store.list()}
    middle = sorted(sizes.values())[1]
    bigger = [s for s, size in sizes.items() if size > middle]
    smaller = [s for s, size in sizes.items() if size < middle]
    assert sorted(subjects(store, f"larger:{middle}")) == sorted(bigger)
    assert sorted(subjects(store, f"smaller:{middle}")) == sorted(smaller)
    assert len(bigger) == len(smaller) == 1


def test_read_state_terms(store: Store) -> None:
    newest = store.list()[0]["ID"]
    store.get(newest)  # reading marks it read
    assert subjects(store, "is:read") == ["Re: Lunch?"]
    assert subjects(store, "is:unread") == ["Lunch?", "Quarterly report"]
    assert subjects(store, "-is:unread") == ["Re: Lunch?"]


def test_before_and_after(store: Store) -> None:
    later = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y/%m/%d")
    earlier = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y/%m/%d")
    assert len(subjects(store, f"before:{later}")) == 3
    assert subjects(store, f"before:{earlier}") == []
    assert len(subjects(store, f"after:{earlier}")) == 3
    assert subjects(store, f"after:{later}") == []
    with pytest.raises(SearchError):
        store.search("after:someday")


def test_search_pages_and_counts(store: Store) -> None:
    page, matches, unread = store.search("lunch", start=1, limit=1)
    assert [m["Subject"] for m in page] == ["Lunch?"] and matches == 2 and unread == 2
    page, matches, _ = store.search("lunch", limit=0)
    assert page == [] and matches == 2  # Mailpit: limit=0 returns no messages in a search


def test_latest_and_delete_search(store: Store) -> None:
    assert store.get(store.latest("subject:quarterly") or "")  # newest match
    assert store.latest("subject:nothing-like-this") is None
    assert store.delete_search("lunch") == 2
    assert [m["Subject"] for m in store.list()] == ["Quarterly report"]
    assert store.tags() == []  # tags of deleted messages are gone too


def test_set_read_by_search(store: Store) -> None:
    store.set_read(read=True, query="pizza")
    assert store.counts().unread == 1
    store.set_read(None, read=False)
    assert store.counts().unread == 3


def test_results_are_newest_first_even_within_one_millisecond(tmp_path: Path) -> None:
    with Store(tmp_path / "m.db") as s:
        for i in range(20):
            s.add(raw(f"msg {i:02d}"))
        assert [m["Subject"] for m in s.list(limit=3)] == ["msg 19", "msg 18", "msg 17"]
        assert [m["Subject"] for m in s.search("msg", limit=2)[0]] == ["msg 19", "msg 18"]


def test_store_keeps_the_newest_max_messages(tmp_path: Path) -> None:
    with Store(tmp_path / "m.db", max_messages=3) as s:
        for i in range(5):
            s.add(raw(f"msg {i}", headers={"X-Tags": f"t{i}"}))
        assert [m["Subject"] for m in s.list()] == ["msg 4", "msg 3", "msg 2"]
        assert s.counts().total == 3
        assert s.tags() == ["t2", "t3", "t4"]
        assert s.stats.messages_deleted == 2


def test_store_survives_a_restart_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "keep.db"
    with Store(path) as s:
        first = s.add(raw("kept", headers={"X-Tags": "keep"}))
    with Store(path) as s:
        stored = s.get(first)
        assert stored is not None and stored.summary["Subject"] == "kept" and stored.tags == ["keep"]
        assert path.exists()
    assert path.exists()


def test_temporary_store_leaves_no_files_behind() -> None:
    s = Store()
    s.add(raw("temp"))
    files = [Path(f"{s.path}{suffix}") for suffix in ("", "-wal", "-shm")]
    assert files[0].exists()
    s.close()
    assert not any(f.exists() for f in files)


def test_a_failed_insert_stores_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "m.db") as s:
        s.add(raw("one"))
        s._db.execute("CREATE TRIGGER boom BEFORE INSERT ON mailbox_data BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        with pytest.raises(Exception, match="disk full"):
            s.add(raw("two"))
        assert [m["Subject"] for m in s.list()] == ["one"]
        assert s._db.execute("SELECT COUNT(*) FROM mailbox_data").fetchone()[0] == 1
        assert s.counts().total == 1


def test_ids_look_like_mailpit_ids(store: Store) -> None:
    ids = [m["ID"] for m in store.list()]
    assert all(len(i) == 22 and i.isalnum() and i.isascii() for i in ids)
    assert len(set(ids)) == 3


def test_created_is_rfc3339_utc(store: Store) -> None:
    created = store.list()[0]["Created"]
    assert created.endswith("Z")
    parsed = datetime.fromisoformat(created.replace("Z", "+00:00"))
    assert abs(parsed.timestamp() - time.time()) < 60
