"""How one row looks in a table: number, line and file, id, sizes, cluster, decision and finding badges."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from workbench.records import Conversation
from workbench.tui.session import Session
from workbench.tui.widgets.virtual_table import Column

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
PENDING = Text("…", style="dim")
TOKEN_COLUMNS = {"tokens", "trained"}

COLUMNS = [
    Column("row", "#", 7, right=True, keep=9),
    Column("source", "line file", 16, keep=8),
    Column("id", "id", 16, keep=4),
    Column("turns", "turns", 5, right=True, keep=1),
    Column("chars", "chars", 7, right=True, keep=3),
    Column("tokens", "tokens", 7, right=True, keep=6),
    Column("trained", "trained", 7, right=True, keep=5),
    Column("cluster", "dup", 5, right=True, keep=2),
    Column("decision", "", 4, keep=7),
    Column("findings", "findings", 0),
]


def short_source(session: Session, row: int) -> str:
    """The line number first, then the file name: a narrow column trims the name, never the number."""
    assert session.rows is not None
    src = session.rows.source(row)
    name = Path(src.file).name
    if src.line is not None:
        return f"{src.line} {name}"
    if src.row is not None:
        return f"[{src.row}] {name}"
    return name


def full_source(session: Session, row: int) -> str:
    assert session.rows is not None
    return str(session.rows.source(row))


def badges(session: Session, row: int) -> Text:
    t = Text()
    for code in session.codes_of(row)[:6]:
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


def ident(session: Session, row: int) -> Text | str:
    """The row's own id when the data has one, else workbench's content id (dim)."""
    assert session.rows is not None
    own = session.rows.own_id(row)
    if own is not None:
        return own
    item = session.item(row)
    if isinstance(item, Conversation):
        return Text(item.id, style="dim")
    return Text("rejected", style="red")


def cells(session: Session, row: int) -> list[Text | str]:
    tok = session.options.model is not None
    cluster = int(session.cluster[row]) if row < len(session.cluster) else 0
    return [
        str(row),
        short_source(session, row),
        ident(session, row),
        number(session, "turns", row, ready=True),
        number(session, "chars", row, ready=True),
        number(session, "tokens", row, ready=tok),
        number(session, "trained", row, ready=tok),
        str(cluster) if cluster else "",
        decision_mark(session, row),
        badges(session, row),
    ]
