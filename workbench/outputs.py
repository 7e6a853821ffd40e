"""Outputs: atomic writes, and the guard that keeps an output from destroying what workbench did not write."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO, Union

from workbench.errors import UsageError, WorkbenchError

PathLike = Union[str, "os.PathLike[str]"]

# A directory workbench writes holds this file at its top; only such a directory (or an empty one)
# may be replaced by an output. Older workbench folders carry `.workbench-tiny.json` and the like.
MARKER = ".workbench-output"
MARKER_PREFIX = ".workbench-"
_NAME_KEEP = 100  # characters of the output's name kept in its temp's name (names are limited to 255 bytes)
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


# --- the guard -----------------------------------------------------------------------------------


def owned_dir(path: Path) -> bool:
    """True for a directory workbench wrote (it holds a marker) or an empty one: replacing it loses nothing."""
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return not names or any(n.startswith(MARKER_PREFIX) and (path / n).is_file() for n in names)


def check_target(path: PathLike, label: str = "output") -> None:
    """Refuse an output path whose replacement would destroy something: a directory workbench did not
    write, a device or pipe, a path under a file; or one that cannot be written (permissions)."""
    text = os.fspath(path)
    if not text.strip():
        raise UsageError(f"{label}: an empty path", "name a file to write")
    p = Path(text)
    try:
        st = p.lstat()
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except ValueError:  # a NUL byte, from a recipe or a script
        raise UsageError(f"{label} {text!r} is not a valid path", "name a file to write") from None
    except OSError as e:
        raise WorkbenchError(f"cannot write {label} {text}: {e.strerror}", "check the path") from None
    if st is not None and not stat.S_ISLNK(st.st_mode):  # a symlink is replaced itself; what it points to is left alone
        if stat.S_ISDIR(st.st_mode):
            if not owned_dir(p):
                raise UsageError(
                    f"{label} {text} is a directory workbench did not write; refusing to replace it",
                    f"name a new path (an output may replace a file, or a folder holding {MARKER}); delete the folder yourself to reuse its name",
                )
        elif not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{label} {text} is not a regular file (a device, pipe or socket)", "name a file to write")
    parent = Path(os.path.abspath(text)).parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent  # missing folders are made when written; permissions come from the nearest existing one
    if not parent.is_dir():
        raise UsageError(f"{label} {text}: {parent} is not a directory", "name a path inside a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise WorkbenchError(f"cannot write {label} {text}: permission denied in {parent}", "choose a folder you can write to")


def _real(path: PathLike) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _same(a: PathLike, b: PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def guard(outputs: Iterable[tuple[str, PathLike | None]], inputs: Iterable[PathLike | None] = ()) -> None:
    """Check every output of a command before any work is done.

    ``outputs``: (label, path) pairs such as ("-o", "kept.jsonl"); None paths are skipped.
    ``inputs``: what the command reads (``hf:`` names are skipped). Refused: an output that is an
    input, lies inside an input folder or holds an input; two outputs that are the same path or lie
    one inside the other; and each output ``check_target`` refuses.
    """
    outs = [(label, os.fspath(p)) for label, p in outputs if p is not None]
    for label, out in outs:
        if "\0" in out or not out.strip():
            raise UsageError(f"{label} {out!r} is not a valid path", "name a file to write")
    # an input that does not exist (a hub name, a missing file the reader will report) cannot be overwritten
    ins = [os.fspath(p) for p in inputs if p is not None and "\0" not in os.fspath(p) and os.path.lexists(os.fspath(p))]
    for label, out in outs:
        ro = _real(out)
        for inp in ins:
            ri = _real(inp)
            if ro == ri or _same(out, inp):
                raise UsageError(f"{label} {out} is the input {inp}; inputs are never overwritten", "name a new output path")
            if _within(ri, ro):
                raise UsageError(f"{label} {out} holds the input {inp}; inputs are never overwritten", "name a new output path")
            if _within(ro, ri):
                raise UsageError(f"{label} {out} is inside the input {inp}; inputs are never written to", "name a path outside it")
        check_target(out, label)
    for i, (la, a) in enumerate(outs):
        for lb, b in outs[i + 1 :]:
            ra, rb = _real(a), _real(b)
            if ra == rb:
                raise UsageError(f"{la} and {lb} are the same path {a}", f"give {la} and {lb} different paths")
            for (l1, p1, r1), (l2, p2, r2) in (((la, a, ra), (lb, b, rb)), ((lb, b, rb), (la, a, ra))):
                if _within(r2, r1):
                    raise UsageError(f"{l2} {p2} is inside {l1} {p1}, which is written as a whole", f"give {l2} a path outside {p1}")


def check_folder(path: PathLike, label: str, *, owned_if: Iterable[str] = ()) -> None:
    """Refuse a folder that a command writes files into (a run directory) when it is a file, or a
    non-empty folder holding neither a marker nor any of ``owned_if`` (names workbench writes there)."""
    p = Path(os.fspath(path))
    if p.is_dir():
        if not owned_dir(p) and not any((p / name).exists() for name in owned_if):
            raise UsageError(f"{label} {p} is a folder workbench did not write; refusing to write into it",
                             "name a new or empty folder")  # fmt: skip
        return
    check_target(p, label)
    if p.is_symlink() or p.exists():
        raise UsageError(f"{label} {p} is not a folder", "name a new or empty folder")


def mark_folder(path: PathLike) -> Path:
    """Make ``path`` (and its parents) and mark it as written by workbench; returns it."""
    p = Path(os.fspath(path))
    try:
        p.mkdir(parents=True, exist_ok=True)
        if not (p / MARKER).exists():
            (p / MARKER).write_text("written by workbench\n")
    except OSError as e:
        raise (_write_error(p, e) or e) from None
    return p


# --- atomic writes -------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def clean_stale(target: Path) -> list[Path]:
    """Remove temps a killed write of ``target`` left beside it (their writer's pid is gone); returns them."""
    parent = target.parent
    pattern = re.compile(re.escape(f".{target.name[:_NAME_KEEP]}.") + r"workbench-(\d+)-[0-9a-f]{8}\.(?:tmp|old)")
    removed: list[Path] = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or _alive(int(m.group(1))):
            continue  # not ours, or another workbench is writing the same output right now
        p = parent / name
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def _temp_name(target: Path, kind: str) -> Path:
    return target.with_name(f".{target.name[:_NAME_KEEP]}.workbench-{os.getpid()}-{secrets.token_hex(4)}.{kind}")


def _shown(target: Path) -> Path:
    """The output a path stands for: one of our temps (a nested atomic write) names its final file."""
    m = re.fullmatch(r"\.(.+)\.workbench-\d+-[0-9a-f]{8}\.(?:tmp|old)", target.name)
    return target.with_name(m.group(1)) if m else target


def _write_error(target: Path, e: OSError) -> WorkbenchError | None:
    """A one-line error for a write that failed because of the disk or permissions; None for other faults."""
    code = e.errno
    if code is None:  # pyarrow's and polars' IO errors carry the code in their text only
        m = re.search(r"os error (\d+)", str(e))
        code = int(m.group(1)) if m else errno.ENOSPC if "No space left" in str(e) else None
    shown = _shown(target)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return WorkbenchError(f"cannot write {shown}: no space left on the device", "free some space or write elsewhere; nothing was replaced")
    if code == errno.EFBIG:
        return WorkbenchError(f"cannot write {shown}: file too large for the file system or the file-size limit", "write elsewhere; nothing was replaced")
    if code in _DENIED:
        return WorkbenchError(f"cannot write {shown}: {os.strerror(code)}", "choose a folder you can write to")
    if code in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return WorkbenchError(f"cannot write {shown}: {os.strerror(code)}", "check the output path")
    return None


def write_error(target: PathLike, e: OSError) -> Exception:
    """The error to raise for ``e`` while writing ``target``: a full disk or a size limit named as such
    (for a block that writes several outputs, where ``atomic_path`` cannot tell which one failed)."""
    return _write_error(Path(os.fspath(target)), e) or e


def _swap(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``. Where a directory is involved, the old one is renamed aside first
    (rename cannot replace a non-empty directory) and removed once the new one is in place."""
    exists = target.exists() or target.is_symlink()
    if not exists or not (tmp.is_dir() or (target.is_dir() and not target.is_symlink())):
        os.replace(tmp, target)  # a file over a file, a symlink or nothing
        return
    old = _temp_name(target, "old")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        os.rename(old, target)  # put the earlier output back
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (nothing there yet: write a file or make a folder);
    move it to ``path`` only if the block succeeds.

    An interrupted or failed write leaves any earlier output at ``path`` untouched. A directory
    written here gets a marker file, so a later write may replace it; a directory without one is
    never replaced (``check_target``). Temps left by a killed earlier write are removed first.
    """
    target = Path(os.fspath(path))
    check_target(target)
    tmp_path = _temp_name(target, "tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(target)
    except OSError as e:
        raise (_write_error(target, e) or e) from None
    try:
        yield tmp_path
        if tmp_path.is_dir() and not tmp_path.is_symlink():
            (tmp_path / MARKER).write_text("written by workbench; a later workbench write may replace this folder\n")
        check_target(target)  # the block may have run long: look again just before replacing
        _swap(tmp_path, target)
    except OSError as e:
        raise (_write_error(target, e) or e) from None
    finally:
        if tmp_path.is_dir() and not tmp_path.is_symlink():
            shutil.rmtree(tmp_path, ignore_errors=True)
        elif tmp_path.exists() or tmp_path.is_symlink():
            with contextlib.suppress(OSError):
                tmp_path.unlink()


@contextlib.contextmanager
def atomic_text(path: PathLike) -> Iterator[TextIO]:
    """Open a text file for writing that appears at ``path`` only when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        yield fh


def write_jsonl(path: PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Write dict rows as JSONL atomically; returns the number written."""
    n = 0
    with atomic_text(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False))
            fh.write("\n")
            n += 1
    return n

