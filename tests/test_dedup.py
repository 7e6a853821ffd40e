"""Dedup: the engine against datasketch, planted duplicates, clusters, keep policies, decontamination, the CLI."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from tests.dedup_gen import conversations, corpus, jaccard_py
from workbench.dedup import minhash as mh
from workbench.dedup.decontam import AgainstItem, AgainstSet, load_against, reason_for
from workbench.dedup import DedupConfig, apply_overrides, dedup, write_outputs
from workbench.errors import WorkbenchError
from workbench.records import Conversation, Message, Source

REPO = Path(__file__).resolve().parent.parent


def conv(user: str, assistant: str = "ok", line: int = 1, file: str = "t.jsonl") -> Conversation:
    return Conversation.make([Message("user", user), Message("assistant", assistant)], Source(file, line))


def random_docs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijk") for _ in range(rng.randint(1, 7))) for _ in range(400)]
    vocab += ["École", "naïve", "ﬁve", "Straße", "日本語", "e\u0301t\u00e9"]  # non-ASCII, NFC-sensitive
    docs = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 80))) for _ in range(150)]
    return docs + ["", "one", "two words", "Punctuation, only!?", "   \n\t ", "Hello\u00a0world"]


@pytest.fixture(scope="module")
def planted():  # type: ignore[no-untyped-def]
    return corpus(2500, seed=11)


# --- the engine against datasketch ---------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_signatures_are_datasketchs(scheme: str) -> None:
    from datasketch import MinHash

    docs = random_docs(156)
    scan = mh.scan_texts(docs, signatures=True, scheme=scheme, num_perm=128, seed=1)
    for doc, sig in zip(docs, scan.signatures):  # type: ignore[union-attr]
        ref = MinHash(num_perm=128, seed=1, hashfunc=mh.shingle_hash32, scheme=scheme)
        ref.update_batch(mh.shingles_py(doc, 5))
        assert np.array_equal(ref.hashvalues.astype(np.uint64), sig), doc


def test_signature_identity_other_seed_and_sizes() -> None:
    from datasketch import MinHash

    docs = random_docs(20, seed=3)
    scan = mh.scan_texts(docs, signatures=True, num_perm=64, seed=42, ngram=3, bands=8, rows=8)
    for doc, sig in zip(docs, scan.signatures):  # type: ignore[union-attr]
        ref = MinHash(num_perm=64, seed=42, hashfunc=mh.shingle_hash32)
        ref.update_batch(mh.shingles_py(doc, 3))
        assert np.array_equal(ref.hashvalues.astype(np.uint64), sig)


def test_candidates_are_datasketch_lsh_candidates(planted) -> None:  # type: ignore[no-untyped-def]
    from datasketch import MinHash, MinHashLSH

    texts = planted.texts[:1500]
    scan = mh.scan_texts(texts, signatures=True)
    lsh = MinHashLSH(num_perm=128, params=(16, 8))
    sketches = [MinHash(hashvalues=s.astype(np.uint32), scheme="affine32") for s in scan.signatures]  # type: ignore[union-attr]
    with lsh.insertion_session() as session:
        for i, m in enumerate(sketches):
            session.insert(i, m)
    expected = {(min(i, j), max(i, j)) for i, m in enumerate(sketches) for j in lsh.query(m) if i != j}
    pi, pj, big = mh.candidate_pairs(scan.bands)
    assert big == 0 and set(zip(pi.tolist(), pj.tolist())) == expected
    assert len(expected) > 100


def test_exact_jaccard_is_set_jaccard() -> None:
    docs = random_docs(40, seed=5)
    rng = np.random.default_rng(0)
    pi, pj = rng.integers(0, len(docs), 200), rng.integers(0, len(docs), 200)
    got = mh.exact_jaccard(docs, pi, pj)
    for a, b, j in zip(pi, pj, got):
        sa, sb = set(map(mh.shingle_hash64, mh.shingles_py(docs[a], 5))), set(map(mh.shingle_hash64, mh.shingles_py(docs[b], 5)))
        want = len(sa & sb) / len(sa | sb) if sa | sb else 0.0
        assert j == pytest.approx(want)


# --- planted duplicates ---------------------------------------------------------------------------


def test_planted_duplicates_recall_and_precision(planted) -> None:  # type: ignore[no-untyped-def]
    convs = conversations(planted)
    res = dedup(convs, config=DedupConfig(threshold=0.8))
    expected = planted.expected_removed(0.8)
    got = {r.row for r in res.removed}
    tp = len(expected & got)
    assert tp / len(got) >= 0.99, "precision"
    assert tp / len(expected) >= 0.95, "recall"
    assert len(expected) > 300
    assert res.counts["read"] == len(convs) == res.counts["kept"] + res.counts["removed"]
    # every removed row is similar enough to the row actually kept in its place, and that row is kept
    kept = set(res.kept_rows)
    for r in res.removed:
        assert r.kept_row in kept and r.kept_id == convs[r.kept_row].id
        assert r.similarity >= 0.8
        if r.reason == "near" and r.row % 7 == 0:
            assert jaccard_py(planted.texts[r.row], planted.texts[r.kept_row]) == pytest.approx(r.similarity)
    # rows planted below the threshold stay
    assert not {i for i in got if planted.kind[i] == "far" and planted.jaccard[i] < 0.8}


def test_exact_duplicates_fold_case_whitespace_and_unicode() -> None:
    nfd = unicodedata.normalize("NFD", "Café crème brûlée")
    rows = [conv("Café crème brûlée"), conv(nfd, line=2), conv("  CAFÉ   crème\nbrûlée ", line=3), conv("Cafe creme brulee", line=4)]
    res = dedup(rows, config=DedupConfig(near=False))
    assert [r.row for r in res.removed] == [1, 2]
    assert all(r.reason == "exact" and r.kept_row == 0 and r.similarity == 1.0 for r in res.removed)
    res = dedup(rows, config=DedupConfig(near=False, casefold=False))
    assert [r.row for r in res.removed] == [1]


def test_no_exact_leaves_exact_copies_to_near() -> None:
    text = " ".join(f"word{i}" for i in range(40))
    res = dedup([conv(text), conv(text.upper(), line=2)], config=DedupConfig(exact=False))
    assert [(r.reason, r.similarity) for r in res.removed] == [("near", 1.0)]
    res = dedup([conv(text), conv(text.upper(), line=2)], config=DedupConfig(exact=False, near=False))
    assert not res.removed


def chain() -> tuple[str, str, str]:
    """A~B and B~C at J >= 0.8, A!~C."""
    words = [f"w{i}" for i in range(200)]
    b = list(words)
    a = list(words)
    c = list(words)
    for p in (9, 29, 49):  # 3 substitutions in A's first half and 3 in C's second: J(A,B) = J(B,C) ~ 0.86
        a[p] = f"a{p}"
    for p in (109, 129, 149):
        c[p] = f"c{p}"
    return " ".join(a), " ".join(b), " ".join(c)


def test_chaining_never_removes_a_row_for_one_it_does_not_resemble() -> None:
    a, b, c = chain()
    assert jaccard_py(a, b) >= 0.8 and jaccard_py(b, c) >= 0.8 and jaccard_py(a, c) < 0.8
    res = dedup([conv(a), conv(b, line=2), conv(c, line=3)])
    assert res.kept_rows == [0, 2]
    assert [(r.row, r.kept_row) for r in res.removed] == [(1, 0)]
    # with B first, B is kept and both A and C resemble it
    res = dedup([conv(b), conv(a, line=2), conv(c, line=3)])
    assert res.kept_rows == [0]
    assert [(r.row, r.kept_row, r.cluster) for r in res.removed] == [(1, 0, 1), (2, 0, 1)]


@pytest.mark.parametrize(("keep", "kept"), [("first", 0), ("longest", 2), ("shortest", 1)])
def test_keep_policies(keep: str, kept: int) -> None:
    q = " ".join(f"tok{i}" for i in range(60))
    rows = [conv(q, "medium answer"), conv(q, "short"), conv(q.upper(), "a much much longer answer here")]
    res = dedup(rows, config=DedupConfig(on="prompt", keep=keep))
    assert res.kept_rows == [kept]
    assert {r.kept_row for r in res.removed} == {kept}
    assert res.counts["kept"] + res.counts["removed"] == 3


def test_conflicting_answers_are_a_finding() -> None:
    q = "What is the boiling point of water at sea level in degrees Celsius?"
    rows = [conv(q, "100 degrees."), conv(q, "It boils at 90 degrees, roughly.", line=2), conv("unrelated question", "x", line=3)]
    res = dedup(rows)  # compared as whole conversations: different answers, nothing removed
    assert not res.removed
    (f,) = res.findings
    assert f.code == "conflicting_answers" and f.data["groups"] == [["t.jsonl:1", "t.jsonl:2"]]
    res = dedup(rows, config=DedupConfig(on="prompt"))
    assert [r.row for r in res.removed] == [1]
    assert [f.code for f in res.findings] == ["conflicting_answers"]


def test_system_prompt_does_not_count() -> None:
    sys_msg = Message("system", " ".join(f"rule{i}" for i in range(300)))
    rows = [
        Conversation.make([sys_msg, Message("user", "alpha beta gamma"), Message("assistant", "one")], Source("s", 1)),
        Conversation.make([sys_msg, Message("user", "delta epsilon zeta"), Message("assistant", "two")], Source("s", 2)),
    ]
    assert not dedup(rows).removed


# --- decontamination ----------------------------------------------------------------------------


def test_reason_rule() -> None:
    assert reason_for("eval/test.jsonl") == "contaminated"
    assert reason_for("gsm8k.jsonl") == "contaminated"
    assert reason_for("workbench/eval/taskfiles/gsm8k_local.yaml") == "contaminated"
    assert reason_for("data/val.jsonl") == "leaked"
    assert reason_for("my_dev_split.csv") == "leaked"
    assert reason_for("test.jsonl", leak=True) == "leaked"


def test_against_exact_ngram_and_near() -> None:
    item = " ".join(f"e{i}" for i in range(40))
    sets = [AgainstSet("eval.jsonl", "contaminated", [AgainstItem("eval.jsonl:1", item, ""), AgainstItem("eval.jsonl:2", "z y x", "")])]
    rows = [
        conv(item.upper(), ""),  # the same text
        conv("intro words then " + " ".join(f"e{i}" for i in range(10, 24)) + " and more", ""),  # one 13-gram+
        conv(" ".join(f"e{i}" if i != 20 else "zz" for i in range(40)), ""),  # near: one word changed
        conv("nothing to see here at all", ""),
    ]
    rows = [Conversation.make(tuple(m for m in r.messages if m.content), r.source) for r in rows]
    res = dedup(rows, against=sets)
    got = {r.row: r for r in res.removed}
    assert sorted(got) == [0, 1, 2]
    assert all(r.reason == "contaminated" and r.against_file == "eval.jsonl" and r.against_item == "eval.jsonl:1" for r in got.values())
    assert got[0].similarity == 1.0 and "13-grams" in got[1].detail
    assert res.counts["contaminated"] == 3 and res.kept_rows == [3]


def test_leaked_from_another_split(tmp_path: Path) -> None:
    val = tmp_path / "val.jsonl"
    text = " ".join(f"v{i}" for i in range(30))
    val.write_text(json.dumps({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "a"}]}) + "\n")
    s = load_against(val)
    assert s.reason == "leaked" and len(s.items) == 1
    res = dedup([conv(text, "a"), conv("other", "b", line=2)], against=[s])
    assert [(r.row, r.reason, r.against_item) for r in res.removed] == [(0, "leaked", f"{val}:1")]


@pytest.fixture(scope="module")
def gsm8k(fixtures_dir: Path):  # type: ignore[no-untyped-def]
    root = fixtures_dir / "data" / "gsm8k"
    if not (root / "test.jsonl").exists():
        pytest.skip("GSM8K fixture missing")
    read = lambda name: [json.loads(x) for x in (root / name).read_text(encoding="utf-8").splitlines()]  # noqa: E731
    return read("train.jsonl"), read("test.jsonl")


def test_task_yaml_reads_local_gsm8k(gsm8k, fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import yaml

    task = REPO / "workbench" / "eval" / "taskfiles" / "gsm8k_local.yaml"
    data = yaml.safe_load(task.read_text())["dataset_kwargs"]["data_files"]["test"]
    if not Path(data).is_absolute():  # lm-eval resolves data_files against the working directory
        (tmp_path / data).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / data).symlink_to(fixtures_dir / "data" / "gsm8k" / "test.jsonl")
        monkeypatch.chdir(tmp_path)
    s = load_against(task)
    assert s.reason == "contaminated" and len(s.items) == len(gsm8k[1]) == 1319
    assert s.items[0].prompt.startswith("Question: Janet") and s.items[0].prompt.endswith("Answer:")
    assert s.items[0].response.endswith("#### 18") and s.items[0].id.endswith("test.jsonl:1")


def test_gsm8k_test_items_paraphrased_into_train_are_found(gsm8k) -> None:  # type: ignore[no-untyped-def]
    train, test = gsm8k
    rng = random.Random(0)
    rows = [conv(r["question"], r["answer"], i + 1, "train.jsonl") for i, r in enumerate(train)]
    planted = rng.sample(range(len(test)), 40)
    for t in planted:  # a light paraphrase: a lead-in, two words swapped for others, the worked answer kept
        w = test[t]["question"].split()
        for _ in range(2):
            w[rng.randrange(len(w))] = rng.choice(["some", "the", "a", "several"])
        rows.insert(rng.randrange(len(rows)), conv("Solve this: " + " ".join(w), test[t]["answer"], t + 1, "planted"))
    items = [AgainstItem(f"test.jsonl:{i + 1}", f"Question: {r['question']}\nAnswer:", r["answer"]) for i, r in enumerate(test)]
    res = dedup(rows, against=[AgainstSet("test.jsonl", "contaminated", items)])
    flagged = [r for r in res.removed if r.reason == "contaminated"]
    hits = [r for r in flagged if r.conv.source.file == "planted"]
    assert len(hits) == 40, "every planted test item is found"
    assert all(r.against_item == f"test.jsonl:{r.conv.source.line}" for r in hits), "and named"
    others = [r for r in flagged if r.conv.source.file != "planted"]
    assert len(others) <= 0.005 * len(train)  # GSM8K's own train/test template overlaps (a handful)
    for r in others:  # each one is explained by a real shared 13-word run
        item = items[int(r.against_item.split(":")[1]) - 1]
        grams = lambda s: set(mh.shingles_py(s, 13))  # noqa: E731
        assert grams(r.conv.text()) & grams(f"{item.prompt}\n{item.response}")


# --- overrides, outputs, counts ------------------------------------------------------------------


def test_overrides_and_write_outputs(tmp_path: Path, planted) -> None:  # type: ignore[no-untyped-def]
    convs = conversations(planted)[:600]
    res = dedup(convs)
    first_removed, first_kept = res.removed[0].row, res.kept_rows[0]
    over = apply_overrides(res, {first_removed: "keep", first_kept: "drop"})
    assert first_removed in over.kept_rows and first_kept not in over.kept_rows
    assert over.counts["manual"] == 1 and over.counts["kept"] + over.counts["removed"] == 600
    kept, removed = tmp_path / "k.jsonl", tmp_path / "r.jsonl"
    final = write_outputs(res, kept, removed, overrides={first_kept: "drop"})
    lines = kept.read_text().splitlines()
    assert len(lines) == final.counts["kept"] and json.loads(lines[0])["id"] == convs[final.kept_rows[0]].id
    rem = [json.loads(x) for x in removed.read_text().splitlines()]
    assert len(rem) == final.counts["removed"] and {r["removed"]["reason"] for r in rem} >= {"manual", "near", "exact"}
    assert all(set(r["removed"]) >= {"reason", "cluster", "kept_id", "similarity", "against_file", "against_item"} for r in rem)
    with pytest.raises(WorkbenchError, match="is the input"):
        write_outputs(res, kept, removed, protect=[kept])


def test_interrupted_write_leaves_earlier_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.dedup.engine as dd

    kept, removed = tmp_path / "k.jsonl", tmp_path / "r.jsonl"
    kept.write_text("old kept\n")
    removed.write_text("old removed\n")
    res = dedup([conv("same words here"), conv("same words here", line=2)])

    def boom(self):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(dd.Removed, "to_dict", boom)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(res, kept, removed)
    assert kept.read_text() == "old kept\n" and removed.read_text() == "old removed\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.jsonl", "r.jsonl"]


def test_bad_config_names_the_flag() -> None:
    from workbench.errors import UsageError

    with pytest.raises(UsageError, match="--bands/--rows"):
        dedup([], config=DedupConfig(bands=20, rows=8))
    with pytest.raises(UsageError, match="--on"):
        dedup([], config=DedupConfig(on="everything"))


# --- the CLI, through the entry point -------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "workbench", "dedup", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture()
def data_dir(tmp_path: Path, planted) -> Path:  # type: ignore[no-untyped-def]
    with open(tmp_path / "data.jsonl", "w", encoding="utf-8") as fh:
        for c in conversations(planted)[:800]:
            fh.write(json.dumps({"messages": [m.to_dict() for m in c.messages]}) + "\n")
        fh.write("{not json\n")  # a reject: counted, written to its own side file
    val = conversations(planted)[:3]
    with open(tmp_path / "val.jsonl", "w", encoding="utf-8") as fh:
        for c in val:
            fh.write(json.dumps({"messages": [m.to_dict() for m in c.messages]}) + "\n")
    return tmp_path


def test_cli_writes_outputs_and_json_adds_up(data_dir: Path) -> None:
    res = run_cli("data.jsonl", "--json", "--against", "val.jsonl", cwd=data_dir)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    c = out["counts"]
    assert c["rows_read"] == 801 and c["rejected"] == 1
    assert c["rows_read"] == c["kept"] + c["removed"] + c["rejected"]
    assert c["leaked"] >= 3 and c["exact"] + c["near"] > 0
    kept = (data_dir / "data.dedup.jsonl").read_text().splitlines()
    removed = (data_dir / "data.removed.jsonl").read_text().splitlines()
    assert len(kept) == c["kept"] and len(removed) == c["removed"]
    assert (data_dir / "data.dedup.rejects.jsonl").exists()
    assert out["outputs"]["kept"] == "data.dedup.jsonl"


def test_cli_dry_run_writes_only_the_report(data_dir: Path) -> None:
    res = run_cli("data.jsonl", "--dry-run", "--report", "report.json", "--keep", "longest", cwd=data_dir)
    assert res.returncode == 0, res.stderr
    assert "dry run" in res.stderr and "removed by reason" in res.stderr
    assert sorted(p.name for p in data_dir.iterdir()) == ["data.jsonl", "report.json", "val.jsonl"]
    assert json.loads((data_dir / "report.json").read_text())["outputs"]["dry_run"] is True


def test_cli_errors(data_dir: Path) -> None:
    res = run_cli("data.jsonl", "-o", "data.jsonl", cwd=data_dir)
    assert res.returncode == 2 and "is the input" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("data.jsonl", "--on", "everything", cwd=data_dir)
    assert res.returncode == 2 and "--on" in res.stderr
    res = run_cli("missing.jsonl", cwd=data_dir)
    assert res.returncode == 1 and "missing.jsonl" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in data_dir.iterdir()) == ["data.jsonl", "val.jsonl"]
