"""Decontamination task files: templates from a task YAML render sandboxed; bad task data is one clean error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.dedup.decontam import load_against
from workbench.errors import WorkbenchError

PAYLOADS = [
    "{{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }}",
    "{{ joiner.__init__.__globals__.os.system('touch PWNED') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ lipsum.__globals__['os'].popen('touch PWNED').read() }}",
    "{% set x = [] %}{{ x.append(1) }}",  # the immutable sandbox refuses changing a list, as transformers' does
    "{{ 'a' * 100000000 }}",
    "{{ 10 ** 100000 }}",
]


def _task(tmp_path: Path, doc_to_text: str, rows: str = '{"question": "q1", "answer": "a1"}\n') -> Path:
    (tmp_path / "test.jsonl").write_text(rows)
    task = tmp_path / "task.yaml"
    task.write_text(
        "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: " + str(tmp_path / "test.jsonl") + "\n"
        "test_split: test\ndoc_to_text: " + json.dumps(doc_to_text) + "\ndoc_to_target: '{{answer}}'\n"
    )
    return task


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_task_template_cannot_run_code(tmp_path: Path, payload: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkbenchError, match="cannot render") as e:
        load_against(_task(tmp_path, payload))
    assert "test.jsonl:1" in e.value.message
    assert not (tmp_path / "PWNED").exists()


def test_ordinary_task_templates_still_render(tmp_path: Path) -> None:
    s = load_against(_task(tmp_path, "Question: {{question | upper}}\n{% for c in ['x', 'y'] %}{{ c }}{% endfor %}"))
    assert [(i.prompt, i.response) for i in s.items] == [("Question: Q1\nxy", "a1")]


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ('{"question": "q1", "answer": "a1"}\n{"question": oops}\n', "test.jsonl:2: malformed JSON"),
        ('["not", "an", "object"]\n', "must be an object"),
        ("[" * 5000 + "]" * 5000 + "\n", "test.jsonl:1"),
        (b"\xff\xfe{}\n".decode("latin-1"), "test.jsonl"),
    ],
    ids=["malformed", "not-object", "deep", "bad-utf8"],
)
def test_bad_task_data_is_one_error_naming_the_line(tmp_path: Path, rows: str, words: str) -> None:
    task = _task(tmp_path, "{{question}}")
    (tmp_path / "test.jsonl").write_bytes(rows.encode("latin-1") if "\xff" in rows else rows.encode())
    with pytest.raises(WorkbenchError, match="cannot read eval data") as e:
        load_against(task)
    assert words in e.value.message
