"""The outbox on its own: batch numbers, stored batches, the bound, the old .seq file."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from gateway.outbox import DROPS_REMIND, Outbox, OutboxError


def payload(seq: int, size: int = 100) -> bytes:
    head = f'{{"seq":{seq},"pad":"'.encode()
    return head + b"x" * (size - len(head) - 2) + b'"}'


def fill(outbox: Outbox, count: int, size: int = 100) -> list[int]:
    return [outbox.add(lambda seq: payload(seq, size)) for _ in range(count)]


def test_a_new_outbox_numbers_from_zero_and_keeps_what_it_stores(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "state", "gw-a")
    assert outbox.path == tmp_path / "state" / "gw-a.sqlite"
    assert (outbox.next_seq, len(outbox), outbox.size) == (0, 0, 0)
    assert fill(outbox, 3) == [0, 1, 2]
    assert outbox.add(lambda seq: f'{{"seq":{seq}}}') == 3  # text is stored as UTF-8
    assert (outbox.next_seq, len(outbox), outbox.size) == (4, 4, 300 + len(b'{"seq":3}'))
    assert outbox.after(-1, 10) == [(0, payload(0)), (1, payload(1)), (2, payload(2)),
                                    (3, b'{"seq":3}')]
    assert [seq for seq, _ in outbox.after(0, 2)] == [1, 2]  # oldest first, at most limit
    assert outbox.after(3, 10) == []
    mode = sqlite3.connect(outbox.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    outbox.close()


def test_batches_and_numbering_survive_reopening(tmp_path: Path) -> None:
    first = Outbox(tmp_path, "gw-b")
    fill(first, 5)
    assert first.remove([0, 1]) == 2
    first.close()
    again = Outbox(tmp_path, "gw-b")
    assert (again.next_seq, len(again), again.size) == (5, 3, 300)
    assert again.seqs() == [2, 3, 4]
    assert again.add(payload) == 5
    again.close()
    other = Outbox(tmp_path, "gw-other")
    assert (other.next_seq, len(other)) == (0, 0)
    other.close()


def test_removing_acknowledged_batches(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, "gw-c")
    fill(outbox, 1200)
    assert outbox.remove([]) == 0
    assert outbox.remove(range(0, 1200, 2)) == 600  # more than one chunk of the IN list
    assert outbox.remove([1, 1, 3, 5000]) == 2  # repeated and unknown seqs count once/never
    assert (len(outbox), outbox.size) == (598, 59_800)
    assert outbox.seqs()[:3] == [5, 7, 9]
    assert outbox.next_seq == 1200  # removing never gives a number back
    outbox.remove(outbox.seqs())
    assert (len(outbox), outbox.size, outbox.next_seq) == (0, 0, 1200)
    outbox.close()


def test_a_full_outbox_drops_the_oldest_with_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path, "gw-d", max_bytes=1000)
    fill(outbox, 10)
    assert not caplog.records  # exactly full is not over
    fill(outbox, 1)
    assert outbox.seqs() == list(range(1, 11))
    assert outbox.size == 1000
    fill(outbox, 1, size=350)  # needs room for 350 bytes: four oldest go
    assert outbox.seqs() == [*range(5, 11), 11]
    assert (len(outbox), outbox.size) == (7, 950)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # once when it starts, not on every batch
    assert "full (1,000 bytes of batches): dropping the oldest" in errors[0].getMessage()
    assert "from seq 0 on" in errors[0].getMessage()
    assert str(outbox.path) in errors[0].getMessage()

    assert outbox.remove([5]) == 1  # the broker is back: room again, and a summary
    summary = caplog.records[-1]
    assert summary.levelno == logging.WARNING
    assert "has room again: 5 batch(es) dropped while it was full, seq 0 to 4" in (
        summary.getMessage())

    caplog.clear()
    fill(outbox, 1, size=5000)  # bigger than the bound: everything else goes, it stays
    assert outbox.seqs() == [12]
    assert outbox.next_seq == 13
    outbox.close()
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.WARNING]
    assert "closed while full: 6 batch(es) dropped while it was full, seq 6 to 11" in (
        caplog.records[-1].getMessage())
    again = Outbox(tmp_path, "gw-d", max_bytes=1000)  # the size is counted again on open
    assert (len(again), again.size) == (1, 5000)
    again.close()


def test_a_long_full_spell_reminds_every_so_many_drops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path, "gw-l", max_bytes=100)
    fill(outbox, 1 + 2 * DROPS_REMIND + 5)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert f"still full: {DROPS_REMIND} batch(es) dropped so far, seq 0 to {DROPS_REMIND - 1}" \
        in errors[1]
    assert f"still full: {2 * DROPS_REMIND} batch(es)" in errors[2]
    assert outbox.seqs() == [2 * DROPS_REMIND + 5]
    outbox.close()


def test_a_failed_add_stores_nothing_and_uses_no_number(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, "gw-e")
    fill(outbox, 2)

    def broken(seq: int) -> bytes:
        raise ValueError("no payload")

    with pytest.raises(ValueError):
        outbox.add(broken)
    assert (outbox.next_seq, len(outbox), outbox.size) == (2, 2, 200)
    assert outbox.add(payload) == 2
    outbox.close()


def test_the_old_seq_file_is_taken_over_and_removed(tmp_path: Path) -> None:
    (tmp_path / "gw-f.seq").write_text("41\n")
    outbox = Outbox(tmp_path, "gw-f")
    assert outbox.next_seq == 41
    assert not (tmp_path / "gw-f.seq").exists()
    assert outbox.add(payload) == 41
    outbox.close()
    assert Outbox(tmp_path, "gw-f").next_seq == 42


def test_an_old_seq_file_never_takes_the_number_back(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, "gw-g")
    fill(outbox, 50)
    outbox.close()
    # e.g. a crash between taking over the file and removing it, or an old backup restored
    (tmp_path / "gw-g.seq").write_text("10\n")
    again = Outbox(tmp_path, "gw-g")
    assert again.next_seq == 50
    assert not (tmp_path / "gw-g.seq").exists()
    again.close()


def test_a_damaged_seq_file_is_an_error_not_a_restart_at_zero(tmp_path: Path) -> None:
    (tmp_path / "gw-h.seq").write_text("12abc")
    with pytest.raises(OutboxError, match=r"gw-h\.seq should hold the next batch number"):
        Outbox(tmp_path, "gw-h")
    assert (tmp_path / "gw-h.seq").exists()  # left for a person to look at


def test_a_file_that_is_not_an_outbox_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "gw-i.sqlite").write_bytes(b"not a database at all, " * 100)
    with pytest.raises(OutboxError, match=r"cannot use the outbox .*gw-i\.sqlite"):
        Outbox(tmp_path, "gw-i")


def test_an_outbox_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    Outbox(tmp_path, "gw-j").close()
    with sqlite3.connect(tmp_path / "gw-j.sqlite") as db:
        db.execute("PRAGMA user_version = 2")
    with pytest.raises(OutboxError, match="schema version 2"):
        Outbox(tmp_path, "gw-j")


def test_an_unwritable_state_dir_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")  # a file where the state directory should be
    with pytest.raises(OutboxError, match="cannot make the state directory"):
        Outbox(tmp_path / "state", "gw-k")
