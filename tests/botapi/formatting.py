"""Telegram's ``parse_mode`` handling: formatted text in, plain text plus entities out.

Telegram never stores markup: a message sent with ``parse_mode="HTML"`` comes back with the
tags stripped, the character references decoded and ``entities`` describing the formatting
(offsets and lengths in UTF-16 code units). Markup Telegram cannot parse is refused with
``400 Bad Request: can't parse entities: ...``, a frequent bug in bots, so the emulator
refuses it too. HTML and MarkdownV2 follow the Bot API's documented rules; legacy
``Markdown`` is handled leniently (entities only, no escape checks beyond balance).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

__all__ = ["EntityParseError", "parse_formatted", "utf16_len"]


class EntityParseError(ValueError):
    """Markup Telegram would refuse; the message is the part after "can't parse entities: "."""


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


class _TelegramHTML(HTMLParser):
    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.line_starts = [0]
        for match in re.finditer("\n", source):
            self.line_starts.append(match.end())
        self.parts: list[str] = []
        self.length = 0  # UTF-16 units emitted so far
        self.stack: list[tuple[str, dict[str, Any]]] = []
        self.entities: list[dict[str, Any]] = []

    def _byte_offset(self) -> int:
        line, column = self.getpos()
        index = self.line_starts[line - 1] + column
        return len(self.source[:index].encode("utf-8"))

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self.length += utf16_len(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        kind = _HTML_TAGS.get(tag)
        values = dict(attrs)
        if kind is None or (tag == "span" and values.get("class") != "tg-spoiler"):
            raise EntityParseError(
                f'Unsupported start tag "{tag}" at byte offset {self._byte_offset()}'
            )
        entity: dict[str, Any] = {"type": kind, "offset": self.length}
        if tag == "a":
            href = values.get("href") or ""
            if href.startswith("tg://user?id="):
                entity = {"type": "text_mention", "offset": self.length}
            else:
                entity["url"] = href
        elif tag == "code" and self.stack and self.stack[-1][0] == "pre":
            language = (values.get("class") or "").removeprefix("language-")
            if language:
                self.stack[-1][1]["language"] = language
            entity["_merged_into_pre"] = True
        elif tag == "blockquote" and "expandable" in values:
            entity["type"] = "expandable_blockquote"
        elif tag == "tg-emoji":
            entity["custom_emoji_id"] = values.get("emoji-id") or ""
        self.stack.append((tag, entity))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise EntityParseError(
            f'Unsupported start tag "{tag}" at byte offset {self._byte_offset()}'
        )

    def handle_endtag(self, tag: str) -> None:
        if not self.stack:
            raise EntityParseError(f"Unexpected end tag at byte offset {self._byte_offset()}")
        open_tag, entity = self.stack.pop()
        if open_tag != tag:
            raise EntityParseError(
                f"Unmatched end tag at byte offset {self._byte_offset()}, "
                f'expected "</{open_tag}>", found "</{tag}>"'
            )
        if entity.pop("_merged_into_pre", False):
            return
        entity["length"] = self.length - entity["offset"]
        if entity["length"] > 0:
            self.entities.append(entity)

    def finish(self) -> tuple[str, list[dict[str, Any]]]:
        self.close()
        if self.stack:
            raise EntityParseError(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1][0]}"'
            )
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.parts), self.entities


def _parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    parser = _TelegramHTML(text)
    parser.feed(text)
    return parser.finish()


_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MDV2_MARKERS = {
    "*": "bold",
    "_": "italic",
    "__": "underline",
    "~": "strikethrough",
    "||": "spoiler",
}


def _parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    out: list[str] = []
    length = 0
    entities: list[dict[str, Any]] = []
    open_marks: list[tuple[str, int, int]] = []  # (marker, utf16 offset, byte offset)
    link_starts: list[int] = []
    i = 0

    def byte_offset(index: int) -> int:
        return len(text[:index].encode("utf-8"))

    def emit(chunk: str) -> None:
        nonlocal length
        out.append(chunk)
        length += utf16_len(chunk)

    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 < len(text):
                emit(text[i + 1])
                i += 2
                continue
            raise EntityParseError(f"Character '\\' at byte offset {byte_offset(i)} is reserved")
        if text.startswith("```", i):
            end = text.find("```", i + 3)
            if end < 0:
                raise EntityParseError(
                    f"Can't find end of Pre entity at byte offset {byte_offset(i)}"
                )
            body = text[i + 3 : end]
            language = ""
            if "\n" in body:
                first, rest = body.split("\n", 1)
                if first and " " not in first:
                    language, body = first, rest
            body = re.sub(r"\\([`\\])", r"\1", body)
            entity: dict[str, Any] = {"type": "pre", "offset": length, "length": utf16_len(body)}
            if language:
                entity["language"] = language
            emit(body)
            entities.append(entity)
            i = end + 3
            continue
        if char == "`":
            end = i + 1
            while end < len(text) and text[end] != "`":
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise EntityParseError(
                    f"Can't find end of Code entity at byte offset {byte_offset(i)}"
                )
            body = re.sub(r"\\([`\\])", r"\1", text[i + 1 : end])
            entities.append({"type": "code", "offset": length, "length": utf16_len(body)})
            emit(body)
            i = end + 1
            continue
        if char == "[":
            link_starts.append(length)
            i += 1
            continue
        if char == "]" and link_starts:
            start = link_starts.pop()
            if not text.startswith("(", i + 1):
                raise EntityParseError(
                    "Character ']' is reserved and must be escaped with the preceding '\\'"
                )
            end = i + 2
            while end < len(text) and text[end] != ")":
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise EntityParseError(
                    f"Can't find end of a URL at byte offset {byte_offset(i + 1)}"
                )
            url = re.sub(r"\\([)\\])", r"\1", text[i + 2 : end])
            entities.append(
                {"type": "text_link", "offset": start, "length": length - start, "url": url}
            )
            i = end + 1
            continue
        marker = None
        if text.startswith("__", i) or text.startswith("||", i):
            marker = text[i : i + 2]
        elif char in "*_~":
            marker = char
        if marker is not None:
            if open_marks and open_marks[-1][0] == marker:
                _, start, _ = open_marks.pop()
                if length > start:
                    entities.append(
                        {"type": _MDV2_MARKERS[marker], "offset": start, "length": length - start}
                    )
            else:
                open_marks.append((marker, length, byte_offset(i)))
            i += len(marker)
            continue
        if char == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1  # block quote marker; the quote entity itself is not modelled
            continue
        if char in _MDV2_RESERVED:
            raise EntityParseError(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        emit(char)
        i += 1
    if open_marks:
        marker, _, offset = open_marks[-1]
        name = _MDV2_MARKERS[marker]
        raise EntityParseError(
            f"Can't find end of {name.capitalize()} entity at byte offset {offset}"
        )
    if link_starts:
        raise EntityParseError("Can't find end of a TextUrl entity")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    out: list[str] = []
    length = 0
    entities: list[dict[str, Any]] = []
    pattern = re.compile(r"\*(.+?)\*|_(.+?)_|```(.+?)```|`(.+?)`|\[(.+?)\]\((.+?)\)", re.S)
    position = 0
    for match in pattern.finditer(text):
        before = text[position : match.start()]
        stray = [before.find(c) for c in "*_`[" if c in before]
        if stray:
            index = position + min(stray)
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {len(text[:index].encode())}"
            )
        out.append(before)
        length += utf16_len(before)
        bold, italic, pre, code, link_text, url = match.groups()
        body = next(g for g in (bold, italic, pre, code, link_text) if g is not None)
        kind = (
            "bold"
            if bold is not None
            else "italic"
            if italic is not None
            else "pre"
            if pre is not None
            else "code"
            if code is not None
            else "text_link"
        )
        entity: dict[str, Any] = {"type": kind, "offset": length, "length": utf16_len(body)}
        if url is not None:
            entity["url"] = url
        entities.append(entity)
        out.append(body)
        length += utf16_len(body)
        position = match.end()
    rest = text[position:]
    for c in "*_`[":
        if c in rest:
            index = position + rest.index(c)
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {len(text[:index].encode())}"
            )
    out.append(rest)
    return "".join(out), entities


def parse_formatted(text: str, parse_mode: str | None) -> tuple[str, list[dict[str, Any]] | None]:
    """Return ``(plain_text, entities)`` for ``text`` sent with ``parse_mode``.

    ``entities`` is None when no parse mode was given. Raises EntityParseError for markup
    Telegram refuses, and ValueError for an unknown parse mode.
    """
    if not parse_mode:
        return text, None
    mode = parse_mode.lower()
    if mode == "html":
        return _parse_html(text)
    if mode == "markdownv2":
        return _parse_markdown_v2(text)
    if mode == "markdown":
        return _parse_markdown(text)
    raise ValueError(f"Bad Request: unsupported parse_mode {parse_mode!r}")
