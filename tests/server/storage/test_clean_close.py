"""A store reopened after a clean close skips the full integrity check; after a crash, a copy or any other
write to the file, it checks every page again."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from graphfuse.gnn.data.records import TripleRecord
from graphfuse.server.storage.store import DB_FILENAME, GraphStore


@pytest.fixture
def checks(monkeypatch) -> list[Path]:
    opened: list[Path] = []
    original = GraphStore._check_integrity

    def counted(self: GraphStore) -> None:
        opened.append(self.path)
        original(self)

    monkeypatch.setattr(GraphStore, "_check_integrity", counted)
    return opened


def stored(data_dir: Path) -> None:
    with GraphStore(data_dir) as store:
        store.create_graph("g")
        store.write("g", [TripleRecord("a", "r", "b")])


def test_a_clean_close_lets_the_next_open_skip_the_check_once(tmp_path: Path, checks: list[Path]) -> None:
    stored(tmp_path)
    assert len(checks) == 1  # a new file
    with GraphStore(tmp_path) as store:
        assert store.read_graph("g")[1] == [TripleRecord("a", "r", "b")]
        assert len(checks) == 1
        assert not (tmp_path / f"{DB_FILENAME}.clean").exists()  # taken: a crash from here is not clean
    GraphStore(tmp_path).close()
    assert len(checks) == 1


def test_a_crash_leaves_no_marker_and_the_next_open_checks(tmp_path: Path, checks: list[Path]) -> None:
    stored(tmp_path)
    crashed = GraphStore(tmp_path)  # never closed, as a killed server
    crashed.write("g", [TripleRecord("b", "r", "c")])
    shutil.copytree(tmp_path, tmp_path / "after-crash")  # the files as the crash left them
    GraphStore(tmp_path / "after-crash").close()
    assert checks[-1] == tmp_path / "after-crash" / DB_FILENAME
    crashed.close()


def test_a_file_written_after_the_close_is_checked(tmp_path: Path, checks: list[Path]) -> None:
    stored(tmp_path)
    with sqlite3.connect(tmp_path / DB_FILENAME) as conn:  # another program writes it
        conn.execute("UPDATE graphs SET description = 'changed'")
    before = len(checks)
    GraphStore(tmp_path).close()
    assert len(checks) == before + 1


def test_a_copied_store_is_checked(tmp_path: Path, checks: list[Path]) -> None:
    stored(tmp_path / "a")
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / DB_FILENAME, tmp_path / "b" / DB_FILENAME)
    shutil.copy(tmp_path / "a" / f"{DB_FILENAME}.clean", tmp_path / "b" / f"{DB_FILENAME}.clean")
    GraphStore(tmp_path / "b").close()
    assert checks[-1] == tmp_path / "b" / DB_FILENAME  # another inode
