"""`workbench dedup` on files: the user's own rows kept byte for byte, removed rows naming their kept row,
worker processes agreeing with one process, conflicts found before removal, and original columns kept."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import numpy as np
import pytest

from tests.dedup_gen import conversations, corpus, templated
from workbench.dedup import DedupConfig, dedup, run_files
from workbench.dedup import rows as rd
from workbench.records import Conversation, Message, Source


def row(user: str, assistant: str, **extra: object) -> dict[str, object]:
    return {**extra, "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


LONG = " ".join(f"word{i}" for i in range(60))


def test_kept_rows_are_the_input_lines_byte_for_byte(tmp_path: Path) -> None:
    lines = [
        json.dumps(row("Café question one", "answer one", id="u-1", extra={"k": [1, 2]}), ensure_ascii=True),
        '{"id": "u-2",   "messages": [{"content": "second", "role": "user"}, {"content": "two", "role": "assistant"}], "z": null}',
        json.dumps(row("CAFÉ   question ONE", "answer one", id="u-3"), ensure_ascii=False),  # exact copy of line 1
        json.dumps(row(LONG, "x", id="u-4")),
        json.dumps(row(LONG.replace("word30", "other"), "x", id="u-5")),  # near copy of line 4
        "",
        "{broken",
        json.dumps(row("last one", "no newline at the end", id="u-6")),
    ]
    data = codecs.BOM_UTF8 + "\r\n".join(lines[:4]).encode() + b"\r\n" + "\n".join(lines[4:]).encode()
    (tmp_path / "data.jsonl").write_bytes(data)
    run = run_files([tmp_path / "data.jsonl"])
    assert run.counts["rows_read"] == 7 and run.counts["rejected"] == 1
    kept = (tmp_path / "data.dedup.jsonl").read_bytes()
    want = [lines[0], lines[1], lines[3], lines[7]]
    assert kept == (want[0] + "\r\n" + want[1] + "\r\n" + want[2] + "\r\n" + want[3] + "\n").encode()
    removed = [json.loads(x) for x in (tmp_path / "data.removed.jsonl").read_text().splitlines()]
    assert [r["id"] for r in removed] == ["u-3", "u-5"]  # the user's fields, as they were
    exact, near = removed[0]["removed"], removed[1]["removed"]
    assert (exact["reason"], exact["kept_id"], exact["kept_source"], exact["source"]) == ("exact", "u-1", f"{tmp_path / 'data.jsonl'}:1", f"{tmp_path / 'data.jsonl'}:3")
    assert (near["reason"], near["kept_id"], near["kept_source"]) == ("near", "u-4", f"{tmp_path / 'data.jsonl'}:4")
    rejects = [json.loads(x) for x in (tmp_path / "data.dedup.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [(7, "malformed_json")]


def test_canonical_writes_canonical_messages(tmp_path: Path) -> None:
    rows = [row("q one", "a", id="mine"), row("Q  ONE", "a", id="mine-too")]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_files([tmp_path / "d.jsonl"], canonical=True)
    (kept,) = [json.loads(x) for x in (tmp_path / "d.dedup.jsonl").read_text().splitlines()]
    conv = Conversation.make([Message("user", "q one"), Message("assistant", "a")], Source("x"))
    assert kept["id"] == conv.id and kept["source"].endswith("d.jsonl:1") and set(kept) == {"messages", "id", "source"}
    (gone,) = [json.loads(x) for x in (tmp_path / "d.removed.jsonl").read_text().splitlines()]
    assert gone["removed"]["kept_id"] == conv.id and gone["removed"]["kept_source"].endswith("d.jsonl:1")


def test_other_formats_keep_their_columns(tmp_path: Path) -> None:
    import csv

    with open(tmp_path / "d.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["instruction", "output", "category"])
        w.writerows([["Name a colour", "Blue", "easy"], ["name a  COLOUR", "Blue", "easy"], ["Add 2 and 2", "4", "math"]])
    run = run_files([tmp_path / "d.csv"])
    assert run.counts["kept"] == 2 and run.formats == {str(tmp_path / "d.csv"): "alpaca"}
    kept = [json.loads(x) for x in (tmp_path / "d.dedup.jsonl").read_text().splitlines()]
    assert kept == [{"instruction": "Name a colour", "output": "Blue", "category": "easy"},
                    {"instruction": "Add 2 and 2", "output": "4", "category": "math"}]  # fmt: skip
    (gone,) = [json.loads(x) for x in (tmp_path / "d.removed.jsonl").read_text().splitlines()]
    assert gone["category"] == "easy" and gone["removed"]["kept_source"] == f"{tmp_path / 'd.csv'}:2"


@pytest.fixture(scope="module")
def planted_file(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    p = corpus(3000, seed=5)
    convs = conversations(p)
    path = tmp_path_factory.mktemp("planted") / "planted.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i, c in enumerate(convs):
            fh.write(json.dumps({"messages": [m.to_dict() for m in c.messages]}) + "\n")
            if i % 500 == 7:
                fh.write("not json at all\n")
    return path, convs


@pytest.mark.parametrize("keep", ["first", "longest"])
def test_workers_and_byte_ranges_agree_with_the_library(planted_file, keep: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    path, convs = planted_file
    cfg = DedupConfig(keep=keep)
    want = dedup(convs, config=cfg)
    monkeypatch.setattr(rd, "CHUNK_BYTES", 64 << 10)  # many byte ranges, boundaries mid-file
    monkeypatch.setattr(rd, "POOL_BYTES", 0)  # worker processes even for a small file
    run = run_files([path], output=tmp_path / "k.jsonl", removed=tmp_path / "r.jsonl", config=cfg, workers=2)
    assert run.stats["workers"] == 2
    assert run.counts["rejected"] == 6 and run.counts["rows_read"] == len(convs) + 6
    assert {k: run.counts[k] for k in want.counts} == want.counts
    assert [f.data["rows"] for f in run.findings] == [f.data["rows"] for f in want.findings]
    assert want.findings and len(want.findings[0].data["rows"]) > 20  # the planted near copies share prompts
    removed = [json.loads(x)["removed"] for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["row"] for r in removed] == [r.row for r in want.removed]
    assert [r["kept_source"].rsplit(":", 1)[1] for r in removed if r["kept_source"]] == \
        [str(r.kept_row + 1 + (r.kept_row + 492) // 500) for r in want.removed if r.kept_row is not None]  # fmt: skip
    rejects = [json.loads(x) for x in (tmp_path / "k.rejects.jsonl").read_text().splitlines()]
    lines = path.read_text().splitlines()
    assert all(lines[r["line"] - 1] == "not json at all" for r in rejects)


def test_conflicting_answers_survive_near_duplicate_removal(tmp_path: Path) -> None:
    q = " ".join(f"q{i}" for i in range(40))
    rows = [row(q, "The answer is forty two."), row("other", "x"), row(q, "It is seventeen, without doubt.")]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # at 0.6 the two rows are near duplicates as conversations: one is removed, the conflict stays reported
    run = run_files([tmp_path / "d.jsonl"], config=DedupConfig(threshold=0.6))
    assert run.counts["near"] == 1
    (f,) = run.findings
    assert f.code == "conflicting_answers" and f.data["rows"] == [0, 2] and len(f.data["groups"][0]) == 2
    (gone,) = [json.loads(x) for x in (tmp_path / "d.removed.jsonl").read_text().splitlines()]
    assert gone["removed"]["conflict"] == 1
    # the library API reports it the same way, whichever row is kept
    convs = [Conversation.make([Message("user", r["messages"][0]["content"]), Message("assistant", r["messages"][1]["content"])],
                               Source("d", i + 1)) for i, r in enumerate(rows)]  # fmt: skip
    for keep in ("first", "longest", "shortest"):
        res = dedup(convs, config=DedupConfig(threshold=0.6, keep=keep))
        assert [f.data["rows"] for f in res.findings] == [[0, 2]]
        assert [r.conflict for r in res.removed] == [1]


def test_removed_rows_point_at_their_kept_row() -> None:
    convs = [Conversation.make([Message("user", "same words here"), Message("assistant", "a")], Source("f.jsonl", 1)),
             Conversation.make([Message("user", "Same   words here"), Message("assistant", "a")], Source("f.jsonl", 2)),
             Conversation.make([Message("user", "same words here"), Message("assistant", "a")], Source("f.jsonl", 3))]  # fmt: skip
    res = dedup(convs)
    assert [(r.row, r.kept_row, r.kept_source) for r in res.removed] == [(1, 0, "f.jsonl:1"), (2, 0, "f.jsonl:1")]
    assert res.removed[1].to_dict()["removed"]["source"] == "f.jsonl:3"


def test_templated_rows_stay_linear_and_planted_pairs_are_found() -> None:
    p = templated(4000, seed=3, templates=8)
    convs = conversations(p)
    res = dedup(convs, config=DedupConfig(bucket_cap=16))
    assert res.stats["big_buckets"] > 0  # the fallback ran
    assert res.stats["verified_pairs"] < 60 * len(convs)
    got = {r.row for r in res.removed}
    groups: dict[int, list[int]] = {}
    for i, (g, k) in enumerate(zip(p.group, p.kind)):
        if g >= 0 and (k in ("base", "exact") or p.jaccard[i] >= 0.8):
            groups.setdefault(g, []).append(i)
    pairs = [(v[0], w) for v in groups.values() for w in v[1:]]
    found = sum(1 for a, b in pairs if a in got or b in got)
    assert found / len(pairs) >= 0.97, (found, len(pairs))
    kept = set(res.kept_rows)
    assert all(r.kept_row in kept and r.similarity >= 0.8 for r in res.removed)


def test_a_crowded_bucket_of_copies_is_claimed_by_its_first_row() -> None:
    base = [f"w{i}" for i in range(120)]
    rng = np.random.default_rng(0)
    texts = [" ".join(base)]
    for _ in range(300):  # 300 near copies: one substituted word each, all in one big bucket
        w = list(base)
        w[int(rng.integers(5, 115))] = f"x{int(rng.integers(1e9))}"
        texts.append(" ".join(w))
    convs = [Conversation.make([Message("user", t), Message("assistant", "a")], Source("f", i + 1)) for i, t in enumerate(texts)]
    res = dedup(convs, config=DedupConfig(bucket_cap=16))
    assert res.stats["big_buckets"] > 0 and res.kept_rows == [0]


def test_kept_id_is_the_users_own_id_as_typed(tmp_path: Path) -> None:
    rows = [row("q one", "a", id=7), row("Q ONE", "a", id=8), row("q two", "b"), row("Q  two", "b")]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_files([tmp_path / "d.jsonl"])
    gone = [json.loads(x)["removed"] for x in (tmp_path / "d.removed.jsonl").read_text().splitlines()]
    conv = Conversation.make([Message("user", "q two"), Message("assistant", "b")], Source("x"))
    assert [g["kept_id"] for g in gone] == [7, conv.id]  # an int stays an int; no id field: the content hash
