"""Atomic file writes (sprint_bench.atomic): the whole file or the old one, never a partial file or a leftover."""
import numpy as np
import pytest

from sprint_bench.atomic import atomic_write


def test_writes_the_file_and_its_parent_folders(tmp_path):
    path = tmp_path / "a" / "b" / "x.npy"  # np.save to a path would append .npy; to the open file it cannot
    assert atomic_write(path, lambda f: np.save(f, np.arange(3))) == path
    np.testing.assert_array_equal(np.load(path), np.arange(3))
    assert [p.name for p in path.parent.iterdir()] == ["x.npy"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"old")

    def half_then_fail(f):
        f.write(b"new, but cut")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]
    atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["x.bin"]
