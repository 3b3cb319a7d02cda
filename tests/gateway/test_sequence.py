"""The persisted batch sequence number."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.sequence import SequenceFileError, SequenceStore


def test_a_new_gateway_starts_at_zero_and_counts_up(tmp_path: Path) -> None:
    store = SequenceStore(tmp_path / "state", "gw-a")
    assert store.load() == 0
    assert [store.take() for _ in range(3)] == [0, 1, 2]
    assert store.path == tmp_path / "state" / "gw-a.seq"
    assert store.path.read_text() == "3\n"  # the next one, written before 2 was handed out


def test_numbering_continues_in_a_new_store(tmp_path: Path) -> None:
    first = SequenceStore(tmp_path, "gw-b")
    first.load()
    for _ in range(5):
        first.take()
    again = SequenceStore(tmp_path, "gw-b")
    assert again.load() == 5
    assert again.take() == 5
    assert SequenceStore(tmp_path, "gw-other").load() == 0


def test_take_without_load_reads_the_file(tmp_path: Path) -> None:
    (tmp_path / "gw-c.seq").write_text("41\n")
    assert SequenceStore(tmp_path, "gw-c").take() == 41


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = SequenceStore(tmp_path, "gw-d")
    store.load()
    for _ in range(10):
        store.take()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gw-d.seq"]


def test_a_damaged_file_is_an_error_not_a_restart_at_zero(tmp_path: Path) -> None:
    (tmp_path / "gw-e.seq").write_text("12abc")
    with pytest.raises(SequenceFileError, match=r"gw-e\.seq should hold the next batch number"):
        SequenceStore(tmp_path, "gw-e").load()


def test_an_unwritable_state_dir_raises_and_uses_no_number(tmp_path: Path) -> None:
    store = SequenceStore(tmp_path / "state", "gw-f")
    assert store.load() == 0
    (tmp_path / "state").write_text("")  # a file where the state directory should be
    with pytest.raises(OSError):
        store.take()
    (tmp_path / "state").unlink()
    assert store.take() == 0  # the failed take did not use 0 up
