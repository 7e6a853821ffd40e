"""Held-out metrics beside the benchmark: loss and perplexity on assistant tokens, and sample generations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.eval.results import Generation, Heldout

LOSS_ON = "assistant tokens (workbench.template.mask, end-of-turn included)"


def read(path: str | Path) -> list[Any]:
    """Conversations with an assistant turn from a held-out file (anything `ingest` reads)."""
    from workbench.data import ingest

    if not Path(path).exists():
        raise WorkbenchError(f"held-out data {path} not found", "a messages JSONL, e.g. the run's heldout.jsonl")
    got = ingest.load([path])
    convs = [c for c in got.conversations if any(m.role == "assistant" for m in c.messages)]
    if not convs:
        raise WorkbenchError(f"{path}: no conversation with an assistant turn to evaluate")
    return convs


def split_last(messages: Sequence[Any]) -> tuple[list[dict[str, str]], str]:
    """(turns before the last assistant turn, that turn's content)."""
    msgs = [{"role": m.role, "content": m.content} if hasattr(m, "role") else dict(m) for m in messages]
    last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    return msgs[:last], msgs[last]["content"]


def loss(model: Any, tokenizer: Any, conversations: Sequence[Any], *, path: str = "", max_length: int | None = None,
         batch_size: int = 1) -> Heldout:  # fmt: skip
    """Mean cross-entropy per trained token (assistant turns, as workbench.template.mask labels them) and its exp.

    Rows go through the model ``batch_size`` at a time, right-padded with the attention mask off on the
    padding (whose labels are -100), so batching changes the speed, not what is scored.
    """
    import torch
    import torch.nn.functional as F

    from workbench.template.mask import render_and_mask

    device = next(model.parameters()).device
    rendered, skipped = [], 0
    for conv in conversations:
        res = render_and_mask(tokenizer, conv, strategy="assistant", train_eot=True, max_length=max_length, check=False)
        if res.rendered is None or res.rendered.trained_count == 0:
            skipped += 1
        else:
            rendered.append(res.rendered)
    total, tokens = 0.0, 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = sorted(range(len(rendered)), key=lambda i: len(rendered[i].input_ids))  # similar lengths share a batch: less padding
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), max(1, batch_size)):
            rows = [rendered[i] for i in order[start : start + max(1, batch_size)]]
            width = max(len(r.input_ids) for r in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            labels = torch.full((len(rows), width), -100, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for k, r in enumerate(rows):
                n = len(r.input_ids)
                ids[k, :n], labels[k, :n], mask[k, :n] = torch.tensor(r.input_ids), torch.tensor(r.labels), 1
            ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
            total += float(nll)
            tokens += int((labels[:, 1:] != -100).sum())
    if tokens == 0:
        raise WorkbenchError(f"held-out data {path}: no row could be rendered with the chat template")
    loss = total / tokens
    return Heldout(path=path, rows=len(rendered), skipped=skipped, tokens=tokens, loss=loss, perplexity=math.exp(min(loss, 700.0)), loss_on=LOSS_ON)


def generate(model: Any, tokenizer: Any, conversations: Sequence[Any], *, chat: bool = True, max_new_tokens: int = 128, seed: int = 1234,
             template_kwargs: dict[str, Any] | None = None) -> list[Generation]:  # fmt: skip
    """Greedy answers to each conversation's last prompt, decoded without special tokens (the raw text, reasoning included)."""
    import torch

    device = next(model.parameters()).device
    out: list[Generation] = []
    for conv in conversations:
        context, target = split_last(conv.messages)
        if chat:
            text = tokenizer.apply_chat_template(context, tokenize=False, add_generation_prompt=True, **(template_kwargs or {}))
            special = not (tokenizer.bos_token and text.startswith(tokenizer.bos_token))
        else:
            text = "\n\n".join(f"{m['role']}: {m['content']}" for m in context) + "\n\nassistant:"
            special = True
        ids = tokenizer(text, add_special_tokens=special, return_tensors="pt")["input_ids"].to(device)
        torch.manual_seed(seed)
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)  # fmt: skip
        answer = tokenizer.decode(gen[0, ids.shape[1] :], skip_special_tokens=True).strip()
        prompt = context[-1]["content"] if context else ""
        out.append(Generation(id=conv.id, prompt=prompt, target=target, output=answer))
    return out
