"""The comparison engine itself: it must find differences, and must not invent them."""

from __future__ import annotations

from compare import diff_json, diff_lines, normalise_json, normalise_line


def test_json_leaves_types_missing_keys_and_key_order() -> None:
    count, diffs = diff_json("c", {"a": 1, "b": [1, 2], "c": True}, {"b": [1, 3], "a": 1, "c": 1, "d": None})
    assert count == 5
    assert {d.where for d in diffs} == {"b[1]", "c", "d", "<key order>"}


def test_json_equal_values_have_no_difference() -> None:
    assert diff_json("c", {"x": [{"y": "z"}], "e": []}, {"x": [{"y": "z"}], "e": []}) == (2, [])


def test_normaliser_masks_only_run_dependent_values() -> None:
    real = normalise_json({"ID": "aaaaaaaaaaaaaaaaaaaaaa", "Subject": "same", "Created": "2026-12-01T09:00:00.1Z",
                           "Size": 10}, hostnames=("vm",))
    ours = normalise_json({"ID": "bbbbbbbbbbbbbbbbbbbbbb", "Subject": "same", "Created": "2026-12-01T09:00:01Z",
                           "Size": 12}, hostnames=("vm",))
    assert real == ours
    assert diff_json("c", normalise_json({"Subject": "a"}), normalise_json({"Subject": "b"}))[1]


def test_lines_align_so_one_extra_line_is_one_difference() -> None:
    count, diffs = diff_lines("c", ["a", "b", "c"], ["a", "c"])
    assert count == 3 and [d.where for d in diffs] == ["line 2"]
    assert normalise_line("250 2.0.0 Ok: queued as AbCdEfGhIjKlMnOpQrStUv\r\n") == "250 2.0.0 Ok: queued as <id>"
    assert normalise_line("250-AUTH PLAIN LOGIN") == normalise_line("250-AUTH LOGIN PLAIN")
    assert normalise_line("220 vm Mailpit ESMTP", hostnames=("vm",)) == "220 <host> Mailpit ESMTP"
