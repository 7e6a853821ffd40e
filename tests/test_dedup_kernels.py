"""The dedup kernels: compiled once and loaded without numba, the JIT fallback when no cache is writable,
and scripts written without spaces shingled by characters (datasketch-identical signatures throughout)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.dedup import compiled, dedup
from workbench.dedup import minhash as mh
from workbench.records import Conversation, Message, Source

REPO = Path(__file__).resolve().parent.parent
HANZI = "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从"
THAI = "กขคงจฉชซญดตถทนบปผพฟมยรลวศสหอฮะาิีึืุูเแโใไ่้๊๋"


def conv(text: str, i: int) -> Conversation:
    return Conversation.make([Message("user", text), Message("assistant", "ok")], Source("f", i + 1))


def test_unspaced_scripts_are_words_of_one_character() -> None:
    assert mh.words_py("我爱北京。Hello世界, ok") == [c.encode() for c in "我爱北京"] + [b"hello"] + [c.encode() for c in "世界"] + [b"ok"]
    assert mh.words_py("東京タワー「高い」") == [c.encode() for c in "東京タワー高い"]
    assert mh.words_py("naïve “quoted”—dash") == ["naïve".encode(), b"quoted", b"dash"]  # Unicode punctuation separates
    assert mh.words_py("สวัสดีครับ") == [c.encode() for c in "สวัสดีครับ"]


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_signatures_of_unspaced_and_mixed_text_are_datasketchs(scheme: str) -> None:
    from datasketch import MinHash

    rng = random.Random(4)
    docs = ["".join(rng.choice(HANZI) for _ in range(rng.randint(0, 120))) for _ in range(30)]
    docs += ["".join(rng.choice(THAI) for _ in range(rng.randint(1, 80))) for _ in range(10)]
    docs += [" ".join(rng.choice(["word", "日本語", "東京タワー", "naïve", "“q”", "x—y", "ＡＢＣ！"]) for _ in range(rng.randint(1, 40))) for _ in range(30)]
    scan = mh.scan_texts(docs, signatures=True, scheme=scheme)
    for doc, sig in zip(docs, scan.signatures):  # type: ignore[union-attr]
        ref = MinHash(num_perm=128, seed=1, hashfunc=mh.shingle_hash32, scheme=scheme)
        ref.update_batch(mh.shingles_py(doc, 5))
        assert np.array_equal(ref.hashvalues.astype(np.uint64), sig), doc
        assert scan.words[docs.index(doc)] == len(mh.words_py(doc))


@pytest.mark.parametrize("alphabet", [HANZI, THAI])
def test_one_character_edits_of_unspaced_text_are_found(alphabet: str) -> None:
    rng = random.Random(7)
    base = "".join(rng.choice(alphabet) for _ in range(200))
    rows = [base]
    for _ in range(91):  # 91 copies, one character replaced in each
        k = rng.randrange(len(base))
        rows.append(base[:k] + rng.choice([c for c in alphabet if c != base[k]]) + base[k + 1 :])
    res = dedup([conv(t, i) for i, t in enumerate(rows)])
    assert res.kept_rows == [0] and len(res.removed) == 91


def test_kernels_load_without_importing_numba() -> None:
    compiled.kernels()  # built (once per machine) if it is not yet
    code = "import sys; from workbench.dedup.minhash import kernels; k = kernels(); print(k.how); print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)
    how, numba_loaded = out.stdout.splitlines()
    assert how.startswith("compiled") and numba_loaded == "False", out.stderr


@pytest.mark.slow  # the JIT compiles every kernel: about a minute on a busy 2-core machine
def test_no_writable_cache_falls_back_to_the_jit_and_agrees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")  # nothing can be created under a file, whoever runs the test
    monkeypatch.setattr(compiled, "cache_dirs", lambda: [blocked / "cache" / "kernels"])
    jit = compiled._load()
    assert jit.how.startswith("jit") and jit.how.endswith("not cached")
    aot = compiled.kernels()
    rng = random.Random(1)
    docs = [" ".join(rng.choice(["a", "bb", "ccc", "日本", "x"]) for _ in range(rng.randint(0, 60))) for _ in range(200)]
    buf, off = mh.pack(docs)
    a, b = mh.permutations(128, 1)
    outs = []
    for k in (aot, jit):
        band, ex, ln = np.empty((200, 16), np.uint64), np.empty((200, 2), np.uint64), np.empty((200, 2), np.int64)
        k.scan(buf, off, 5, a, b, False, 16, 8, True, band, ex, ln, np.empty((0, 128), np.uint64))
        outs.append((band, ex, ln))
    assert all(np.array_equal(x, y) for x, y in zip(*outs))
    monkeypatch.setattr(compiled, "_loaded", jit)
    docs = ["one two three four five six seven", "ONE two three four five six seven", "other words here entirely now"]
    res = dedup([conv(t, i) for i, t in enumerate(docs)])
    assert [r.reason for r in res.removed] == ["exact"] and "jit" in res.stats["kernels"]


def test_an_untrusted_cache_directory_is_not_loaded(tmp_path: Path) -> None:
    d = tmp_path / "kernels"
    d.mkdir()
    os.chmod(d, 0o777)  # anyone could have planted a module here
    assert not compiled._trusted(d)
    os.chmod(d, 0o700)
    os.chmod(tmp_path, 0o700)
    assert compiled._trusted(d)
