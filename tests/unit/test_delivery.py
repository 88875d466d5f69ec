"""emailkit.delivery's tallies: one row per try, and what a batch of sends did against the mailbox."""

from __future__ import annotations

from types import SimpleNamespace

from emailkit.delivery import outcomes_frame, tally_deliveries
from emailkit.replies import classify_smtp
from emailkit.retry import AttemptRecord, Outcome


def test_outcomes_frame_has_a_row_per_try() -> None:
    first = AttemptRecord(1, 0.0, 452, "4.5.3 Too many recipients", classify_smtp(452, "4.5.3"))
    second = AttemptRecord(2, 0.2, 250, "2.0.0 Ok: queued as X", classify_smtp(250), waited_s=0.19)
    outcome = Outcome("smtp", True, 250, "2.0.0 Ok: queued as X", classify_smtp(250), 2, [0.19], False, "<a@b>",
                      history=[first, second])
    frame = outcomes_frame([outcome])
    assert list(frame["attempt"]) == [1, 2]
    assert list(frame["final"]) == [False, True]
    assert list(frame["enhanced"]) == ["4.5.3", "2.0.0"]
    assert frame.loc[0, "retry"] and not frame.loc[1, "retry"]
    assert frame.loc[0, "kind"] == "too_many_recipients"


def test_tally_deliveries_counts_against_the_mailbox() -> None:
    def outcome(delivered: bool = True, retry: bool = False, attempts: int = 1, avoided: bool = False):  # noqa: ANN202
        return SimpleNamespace(delivered=delivered, verdict=SimpleNamespace(retry=retry), attempts=attempts,
                               retried=attempts > 1, duplicate_avoided=avoided, waits=[0.5] * (attempts - 1))

    sends = [
        (True, "a", outcome(attempts=3, avoided=True)),  # arrived once after retries
        (True, "b", outcome()),                          # lost: not in the mailbox
        (True, "c", outcome(attempts=2)),                # doubled
        (False, "d", outcome(delivered=False)),          # refused for good, reported, not stored
        (False, "e", outcome(delivered=False)),          # refused, yet stored: a half-store
    ]
    t = tally_deliveries("SMTP", sends, {"a": 1, "c": 2, "e": 1})  # type: ignore[arg-type]
    assert (t["meant to arrive"], t["arrived exactly once"], t["lost"], t["doubled"]) == (3, 1, 1, 1)
    assert (t["refused for good, reported"], t["…stored anyway"]) == (2, 1)
    assert (t["attempts in all"], t["sends that needed a retry"], t["duplicates avoided"]) == (8, 2, 1)
    assert t["seconds waited (sum)"] == 1.5
