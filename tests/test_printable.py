"""Terminal-safe text: control characters from data are shown as escapes, never sent raw."""

from __future__ import annotations

from workbench.printable import visible

HOSTILE = "a\x1b[2Jb\x1b]0;title\x07c\x1b]52;c;ZWNobw==\x07d\x9b31me\u202eevil\rX\x00\x7f"


def test_every_control_character_becomes_a_visible_escape() -> None:
    shown = visible(HOSTILE)
    assert shown == "a\\x1b[2Jb\\x1b]0;title\\x07c\\x1b]52;c;ZWNobw==\\x07d\\x9b31me\\u202eevil\\rX\\x00\\x7f"
    assert not any(ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F for ch in shown)


def test_ordinary_text_is_unchanged() -> None:
    text = "héllo wörld 你好 😀 [bold]not markup[/]\n\tindented"
    assert visible(text) is text or visible(text) == text


def test_one_line_mode_escapes_newlines_and_tabs() -> None:
    assert visible("a\nb\tc", newlines=False) == "a\\nb\\tc"


def test_undecodable_bytes_of_a_file_name_print_as_escapes() -> None:
    name = b"caf\xff.jsonl".decode("utf-8", "surrogateescape")
    assert visible(name) == "caf\\udcff.jsonl"
    visible(name).encode("utf-8")  # printable in any UTF-8 terminal
