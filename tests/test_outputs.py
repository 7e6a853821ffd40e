"""Outputs: atomic writes that never replace a folder workbench did not write, the guard on inputs, stale temps, disk faults."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.errors import UsageError, WorkbenchError
from workbench.outputs import MARKER, atomic_path, atomic_text, check_folder, clean_stale, guard, mark_folder, write_jsonl


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_folder_workbench_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    data = tmp_path / "mydata"
    data.mkdir()
    (data / "train.jsonl").write_text('{"text": "precious"}\n')
    before = _tree(tmp_path)
    with pytest.raises(UsageError, match="mydata is a directory workbench did not write"):
        with atomic_text(data) as fh:
            fh.write("x")
    assert _tree(tmp_path) == before


def test_a_folder_workbench_wrote_is_replaced_whole_and_carries_the_marker(tmp_path: Path) -> None:
    out = tmp_path / "hf"
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "a.arrow").write_text("1")
    assert (out / MARKER).is_file() and (out / "a.arrow").read_text() == "1"
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "b.arrow").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "b.arrow"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no side folders left


def test_an_empty_folder_and_a_file_may_be_replaced(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with atomic_text(tmp_path / "empty") as fh:
        fh.write("now a file")
    assert (tmp_path / "empty").read_text() == "now a file"
    with atomic_path(tmp_path / "empty") as tmp:  # a file replaced by a folder
        tmp.mkdir()
    assert (tmp_path / "empty").is_dir()


def test_a_symlink_is_replaced_itself_and_what_it_points_to_is_left_alone(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep.txt").write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(real)
    with atomic_text(link) as fh:
        fh.write("out")
    assert not link.is_symlink() and link.read_text() == "out"
    assert (real / "keep.txt").read_text() == "keep"


def test_a_device_is_not_an_output(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        with atomic_text(fifo):
            pass


def test_a_path_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f.jsonl").write_text("x")
    with pytest.raises(UsageError, match="is not a directory"):
        guard([("-o", tmp_path / "f.jsonl" / "out.jsonl")])


@pytest.mark.parametrize(
    ("output", "input", "words"),
    [
        ("a.jsonl", "a.jsonl", "is the input"),
        ("d/x.jsonl", "d", "is inside the input"),  # d is a save_to_disk folder read as input
        ("top", "top/d/a.jsonl", "holds the input"),
        ("link.jsonl", "a.jsonl", "is the input"),  # link.jsonl -> a.jsonl
    ],
)
def test_inputs_are_protected_by_containment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str, input: str, words: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a.jsonl").write_text("{}\n")
    Path("d").mkdir()
    (Path("d") / "state.json").write_text("{}")
    Path("top/d").mkdir(parents=True)
    Path("top/d/a.jsonl").write_text("{}\n")
    Path("link.jsonl").symlink_to("a.jsonl")
    with pytest.raises(UsageError, match=words):
        guard([("-o", output)], [input])


def test_two_outputs_may_not_collide(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="-o and --removed are the same path"):
        guard([("-o", tmp_path / "x.jsonl"), ("--removed", tmp_path / "x.jsonl")])
    with pytest.raises(UsageError, match="--removed .* is inside -o"):
        guard([("-o", tmp_path / "kept"), ("--removed", tmp_path / "kept" / "removed.jsonl")])
    guard([("-o", tmp_path / "k.jsonl"), ("--removed", tmp_path / "r.jsonl")], [tmp_path / "in.jsonl", "hf:org/name"])


def test_unwritable_folder_is_one_clean_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # root may write anywhere, so the permission answer is simulated
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    with pytest.raises(WorkbenchError, match="permission denied"):
        guard([("-o", tmp_path / "new" / "x.jsonl")])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only folders")
def test_read_only_folder_for_real(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(WorkbenchError, match="permission denied"):
            write_jsonl(ro / "x.jsonl", [{}])
    finally:
        ro.chmod(0o700)


class _FullDisk:
    """A file handle whose writes fail with ENOSPC once a few bytes are in."""

    def __init__(self, fh: object) -> None:
        self.fh = fh
        self.n = 0

    def write(self, s: str) -> int:
        self.n += len(s)
        if self.n > 10:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.fh.write(s)  # type: ignore[attr-defined]

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()  # type: ignore[attr-defined]


def test_full_disk_is_one_error_and_the_earlier_output_survives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.outputs as outputs

    target = tmp_path / "out.jsonl"
    target.write_text("earlier\n")
    monkeypatch.setattr(outputs, "open", lambda *a, **k: _FullDisk(open(*a, **k)), raising=False)
    with pytest.raises(WorkbenchError, match="no space left") as e:
        write_jsonl(target, [{"row": i} for i in range(100)])
    assert not isinstance(e.value, UsageError)
    assert target.read_text() == "earlier\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_stale_temps_of_a_killed_write_are_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    # a writer killed with -9 mid-write: its temp stays, named after the output and its pid
    code = (
        "import os, sys\n"
        "from workbench.outputs import atomic_text\n"
        f"with atomic_text({str(target)!r}) as fh:\n"
        "    fh.write('half'); fh.flush(); os.kill(os.getpid(), 9)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    subprocess.run([sys.executable, "-c", code], env=env, check=False)
    stale = [p.name for p in tmp_path.iterdir()]
    assert len(stale) == 1 and stale[0].startswith(".out.jsonl.") and not target.exists()
    mine = tmp_path / ".out.jsonl.backup.tmp"  # a user's file that merely looks alike
    mine.write_text("mine")
    other = tmp_path / ".other.jsonl.workbench-999999999-0123abcd.tmp"
    other.write_text("another output's temp")
    write_jsonl(target, [{"a": 1}])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name, "out.jsonl"])


def test_a_live_writers_temp_is_left_alone(tmp_path: Path) -> None:
    live = tmp_path / f".out.jsonl.workbench-{os.getppid()}-0123abcd.tmp"
    live.write_text("being written")
    assert clean_stale(tmp_path / "out.jsonl") == []
    assert live.exists()


def test_run_folders_must_be_new_empty_or_workbench_s(tmp_path: Path) -> None:
    check_folder(tmp_path / "new", "run_dir")
    (tmp_path / "empty").mkdir()
    check_folder(tmp_path / "empty", "run_dir")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="did not write"):
        check_folder(mine, "run_dir")
    (mine / "stages.json").write_text("{}")
    check_folder(mine, "run_dir", owned_if=["stages.json"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        check_folder(tmp_path / "file", "run_dir")
    assert (mark_folder(tmp_path / "made") / MARKER).is_file()
