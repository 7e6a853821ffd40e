"""The dedup kernels compiled once per machine: an ahead-of-time extension in a writable cache, else numba's JIT.

``kernels()`` returns the compiled kernels of ``workbench.dedup.kernels`` and ``.pairs``. In order:

1. a ready extension module in a cache directory: ``$WORKBENCH_CACHE_DIR``, else
   ``$XDG_CACHE_HOME/workbench`` (``~/.cache/workbench``), else ``<tmp>/workbench-<uid>``; the file
   name carries a hash of the kernels' source, numba and Python versions and the CPU, so a stale
   or foreign build is never loaded. Loading it imports neither numba nor llvmlite: start-up is
   milliseconds;
2. otherwise it is built once (numba's ahead-of-time compiler, for this CPU, in a subprocess)
   into the first writable of those directories, then loaded;
3. where nothing is writable or building fails (no C compiler, read-only ``$HOME``), numba's JIT
   compiles the same source in this process, caching in a writable directory when there is one
   and not caching otherwise. Dedup runs either way; ``how`` says which path was taken.

A cache directory is used only when it belongs to this user and no one else can write to it,
so a planted module is never loaded.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

_U8, _I64, _U64 = "uint8[::1]", "int64[::1]", "uint64[::1]"
EXPORTS = {  # each kernel the engine calls: its module and its ahead-of-time signature
    "scan": ("kernels", f"void({_U8}, {_I64}, int64, {_U64}, {_U64}, boolean, int64, int64, boolean, "
                        "uint64[:, ::1], uint64[:, ::1], int64[:, ::1], uint64[:, ::1])"),
    "exact_only": ("kernels", f"void({_U8}, {_I64}, boolean, uint64[:, ::1], {_I64})"),
    "word_counts": ("kernels", f"{_I64}({_U8}, {_I64}, boolean)"),
    "ngram_hits": ("kernels", f"UniTuple({_I64}, 2)({_U8}, {_I64}, {_I64}, boolean, {_U64}, {_I64}, int64)"),
    "bucket_pairs": ("pairs", f"Tuple(({_I64}, int64, int64))(uint64[:, ::1], int64, {_I64}, int64, {_I64}, int64)"),
    "gram_sets": ("pairs", f"Tuple(({_U64}, {_I64}, {_I64}))({_U8}, {_I64}, int64, boolean)"),
    "jaccard_pairs": ("pairs", f"float64[::1]({_U64}, {_I64}, {_I64}, {_I64}, {_I64})"),
    "stars": ("pairs", f"Tuple((int64[::1], float64[::1], int64))(int64, {_I64}, {_I64}, {_U64}, {_I64}, {_I64}, "
                       "boolean[::1], float64)"),
}  # fmt: skip
NAMES = tuple(EXPORTS)
SOURCES = (Path(__file__).with_name("kernels.py"), Path(__file__).with_name("pairs.py"))
_lock = threading.Lock()
_loaded: Any = None


def cache_dirs() -> list[Path]:
    """Where the compiled kernels may live, best first."""
    out = []
    if os.environ.get("WORKBENCH_CACHE_DIR"):
        out.append(Path(os.environ["WORKBENCH_CACHE_DIR"]))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    out.append(Path(xdg) / "workbench")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    out.append(Path(tempfile.gettempdir()) / f"workbench-{uid}")
    return [d / "kernels" for d in out]


def _cpu() -> str:
    try:  # the build targets this CPU's instruction set: another CPU must not load it
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            flags = next((line for line in fh if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {platform.processor()} {flags}"


def module_name() -> str:
    """The extension's module name: a hash of everything the build depends on."""
    spec = importlib.util.find_spec("numba")  # found, not imported: start-up stays free of numba
    if spec is None or spec.origin is None:
        raise ImportError("numba is not installed")
    h = hashlib.sha256(b"".join(p.read_bytes() for p in SOURCES))
    version = Path(spec.origin).with_name("_version.py")  # numba's version, read without importing it
    h.update(version.read_bytes() if version.is_file() else str(Path(spec.origin).stat().st_mtime_ns).encode())
    h.update(f"{sys.version} {_cpu()}".encode())
    return f"_wbkernels_{h.hexdigest()[:20]}"


def _trusted(d: Path) -> bool:
    """A directory (and its parent) owned by this user and writable by no one else."""
    if not hasattr(os, "getuid"):
        return True
    try:
        for p in (d, d.parent):
            st = p.stat()
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                return False
    except OSError:
        return False
    return True


def _writable(d: Path) -> bool:
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        if d.parent.name.startswith("workbench-"):  # the shared temp dir: make our own corner private
            os.chmod(d.parent, 0o700)
        probe = tempfile.NamedTemporaryFile(dir=d, prefix=".probe-")
        probe.close()
    except OSError:
        return False
    return _trusted(d)


def _import(path: Path, name: str) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _suffix() -> str:
    return importlib.machinery.EXTENSION_SUFFIXES[0]


def ready() -> bool:
    """True when the kernels are loaded or a built extension is waiting in a cache directory (so
    ``kernels()`` will not spend a minute compiling)."""
    if _loaded is not None or os.environ.get("WORKBENCH_KERNELS") == "jit":
        return True
    try:
        name = module_name()
    except ImportError:
        return True
    return any((d / f"{name}{_suffix()}").is_file() and _trusted(d) for d in cache_dirs())


def kernels() -> Any:
    """The kernels as attributes (``scan``, ``stars``, ...), plus ``how``: where they came from."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = _load()
    return _loaded


def _load() -> Any:
    if os.environ.get("WORKBENCH_KERNELS") == "jit":  # tests compare the two paths
        return _jit("jit (WORKBENCH_KERNELS=jit)")
    try:
        name = module_name()
    except Exception as e:  # no numba metadata: the JIT will say what is wrong
        return _jit(f"jit ({type(e).__name__}: {e})")
    dirs = cache_dirs()
    for d in dirs:
        path = d / f"{name}{_suffix()}"
        if path.is_file() and _trusted(d):
            try:
                return _wrap(_import(path, name), f"compiled ({path})")
            except ImportError:
                continue  # a broken file: rebuilt below
    why = "no writable cache directory"
    for d in dirs:
        if not _writable(d):
            continue
        why = build(d, name)
        if not why:
            path = d / f"{name}{_suffix()}"
            try:
                return _wrap(_import(path, name), f"compiled now ({path})")
            except ImportError as e:
                why = f"cannot load the kernels built in {d}: {e}"
        break
    return _jit(f"jit ({why})")


def _wrap(module: Any, how: str) -> Any:
    return SimpleNamespace(how=how, **{n: getattr(module, n) for n in NAMES})


def build(directory: Path, name: str) -> str:
    """Compile the kernels into ``directory`` in a subprocess; '' on success, else why not."""
    import shutil
    import time

    for old in directory.glob(".build-*"):  # left by a build that was killed: a day is long enough
        try:
            if time.time() - old.stat().st_mtime > 86400:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    cmd = [sys.executable, "-m", "workbench.dedup.compiled", str(directory), name]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot build the kernels: {e}"
    if done.returncode != 0 or not (directory / f"{name}{_suffix()}").is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"cannot build the kernels: {last}"
    return ""


def _jit(how: str) -> Any:
    import numba

    cache = next((d / "numba" for d in cache_dirs() if _writable(d)), None)
    if cache is not None:
        numba.config.CACHE_DIR = str(cache)  # a writable place, whatever the package dir allows
    import importlib

    fns = {}
    for n in NAMES:
        fn = getattr(importlib.import_module(f"workbench.dedup.{EXPORTS[n][0]}"), n)
        if cache is not None:
            try:
                fn.enable_caching()
            except RuntimeError:  # numba found no usable cache locator: compile every run
                pass
        fns[n] = fn
    return SimpleNamespace(how=how + ("" if cache else ", not cached"), **fns)


def _main(directory: str, name: str) -> None:
    """Build ``name`` into ``directory`` (run by ``build`` in a subprocess)."""
    warnings.simplefilter("ignore")
    import importlib

    from numba.pycc import CC

    out = Path(directory)
    with tempfile.TemporaryDirectory(dir=out, prefix=".build-") as tmp:
        cc = CC(name)
        cc.output_dir = tmp
        cc.target_cpu = "host"
        cc.verbose = False
        for n in NAMES:
            where, sig = EXPORTS[n]
            cc.export(n, sig)(getattr(importlib.import_module(f"workbench.dedup.{where}"), n).py_func)
        cc.compile()
        built = Path(tmp) / f"{name}{_suffix()}"
        os.chmod(built, 0o700)
        os.replace(built, out / built.name)  # atomic: a concurrent run sees the whole file or none


if __name__ == "__main__":
    if len(sys.argv) == 3:
        _main(sys.argv[1], sys.argv[2])
    else:  # `python -m workbench.dedup.compiled`: build now (e.g. in a container image) and say where
        print(kernels().how)
