"""How one row looks in a table: id, source, sizes, cluster, decision and finding badges."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from workbench.records import Conversation
from workbench.tui.session import Session
from workbench.tui.widgets.virtual_table import Column

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
PENDING = Text("…", style="dim")

COLUMNS = [
    Column("row", "#", 7, right=True),
    Column("id", "id", 16),
    Column("source", "source", 18),
    Column("turns", "turns", 5, right=True),
    Column("chars", "chars", 7, right=True),
    Column("tokens", "tokens", 7, right=True),
    Column("trained", "trained", 7, right=True),
    Column("cluster", "dup", 5, right=True),
    Column("decision", "", 4),
    Column("findings", "findings", 0),
]


def short_source(session: Session, row: int) -> str:
    assert session.rows is not None
    src = session.rows.source(row)
    name = Path(src.file).name
    if src.line is not None:
        return f"{name}:{src.line}"
    if src.row is not None:
        return f"{name}[{src.row}]"
    return name


def badges(session: Session, row: int) -> Text:
    t = Text()
    for code in session.codes.get(row, ())[:6]:
        if t:
            t.append(" ")
        t.append(code, style=SEVERITY_STYLE.get(session.severity_of(code), ""))
    return t


def number(session: Session, name: str, row: int, *, ready: bool) -> Text | str:
    v = session.value(name, row)
    if v is None:
        return PENDING if ready else ""
    return f"{v:,}"


def decision_mark(session: Session, row: int) -> Text:
    d = session.decision(row)
    if d == "keep":
        return Text("keep", style="bold green")
    if d == "drop":
        return Text("drop", style="bold red")
    if not session.is_kept(row):
        return Text("out", style="dim red")
    return Text("")


def cells(session: Session, row: int) -> list[Text | str]:
    assert session.rows is not None
    item = session.rows.item(row)
    tok = session.options.model is not None
    if isinstance(item, Conversation):
        ident: Text | str = item.id
    else:
        ident = Text("rejected", style="red")
    cluster = int(session.cluster[row]) if row < len(session.cluster) else 0
    return [
        str(row),
        ident,
        short_source(session, row),
        number(session, "turns", row, ready=True),
        number(session, "chars", row, ready=True),
        number(session, "tokens", row, ready=tok),
        number(session, "trained", row, ready=tok),
        str(cluster) if cluster else "",
        decision_mark(session, row),
        badges(session, row),
    ]
