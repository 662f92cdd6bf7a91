"""Decoding Bot API request parameters the way Telegram does.

Telegram accepts a method's parameters as a query string, as a JSON body, as
``application/x-www-form-urlencoded`` or as ``multipart/form-data``. python-telegram-bot 22
(``telegram/request/_httpxrequest.py``) always POSTs ``data=request_data.json_parameters``
through httpx, i.e. a urlencoded form whose string values are sent raw and every other value
JSON-encoded (``reply_markup={"inline_keyboard": ...}``, ``chat_id=123``, ``show_alert=true``);
when a file is uploaded the same fields become parts of a multipart body next to the file part
(named after the parameter, e.g. ``document``, or ``attached<hex>`` for ``attach://`` uploads).
Form values are therefore strings and are given their Bot API type here by field name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

__all__ = ["RequestError", "UploadedFile", "coerce_params", "parse_body"]


class RequestError(ValueError):
    """A body Telegram would refuse; ``str(error)`` is the Bot API description."""


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart request."""

    field: str
    filename: str
    content: bytes
    mime_type: str | None


# Fields whose form-encoded value is JSON (Telegram parses these as JSON objects/arrays).
JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "scope",
        "commands",
        "allowed_updates",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_parameters",
        "media",
        "menu_button",
        "rights",
        "results",
        "message_ids",
    }
)
INT_FIELDS = frozenset(
    {
        "chat_id",
        "from_chat_id",
        "message_id",
        "message_thread_id",
        "reply_to_message_id",
        "offset",
        "limit",
        "timeout",
        "user_id",
        "cache_time",
        "duration",
        "width",
        "height",
        "max_connections",
    }
)
BOOL_FIELDS = frozenset(
    {
        "show_alert",
        "disable_notification",
        "protect_content",
        "drop_pending_updates",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "has_spoiler",
        "disable_content_type_detection",
        "show_caption_above_media",
        "for_channels",
        "allow_paid_broadcast",
    }
)
_JSON_ERRORS = {
    "reply_markup": "Bad Request: can't parse reply keyboard markup JSON object",
    "entities": "Bad Request: can't parse entities JSON object",
    "caption_entities": "Bad Request: can't parse entities JSON object",
    "commands": "Bad Request: can't parse commands JSON object",
    "scope": "Bad Request: can't parse BotCommandScope JSON object",
    "allowed_updates": "Bad Request: can't parse allowed updates JSON object",
}
_INT_RE = re.compile(r"^-?[0-9]+$")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def coerce_params(params: dict[str, Any]) -> dict[str, Any]:
    """Give string-valued parameters their Bot API types (ints, booleans, JSON objects)."""
    result: dict[str, Any] = {}
    for name, value in params.items():
        if name in JSON_FIELDS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise RequestError(
                    _JSON_ERRORS.get(name, f"Bad Request: can't parse {name} JSON object")
                ) from None
        elif name in INT_FIELDS and isinstance(value, str) and _INT_RE.match(value.strip()):
            value = int(value.strip())
        elif name in BOOL_FIELDS and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _TRUE:
                value = True
            elif lowered in _FALSE:
                value = False
        result[name] = value
    return result


def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = content_type.partition(";")
    return kind.strip().lower(), _header_params(rest)


_PARAM_RE = re.compile(r';?\s*([A-Za-z0-9_*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def _header_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(text):
        name, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            # httpx (HTML5 form encoding) escapes '"' as %22 and control characters as %XX.
            raw = re.sub(r"%(22|0[0-9A-Fa-f]|1[0-9A-Fa-f])", lambda m: chr(int(m[1], 16)), raw)
        if name.endswith("*"):
            _, _, encoded = raw.partition("''")
            name, raw = name[:-1], unquote(encoded)
        params[name] = raw
    return params


def _parse_multipart(body: bytes, boundary: str) -> tuple[dict[str, Any], list[UploadedFile]]:
    if not boundary:
        raise RequestError("Bad Request: multipart boundary is missing")
    delimiter = b"--" + boundary.encode("latin-1")
    fields: dict[str, Any] = {}
    files: list[UploadedFile] = []
    chunks = body.split(delimiter)
    # chunks[0] is the preamble; the chunk starting with "--" is the epilogue.
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n").removesuffix(b"\r\n")
        head, separator, content = chunk.partition(b"\r\n\r\n")
        if not separator:
            raise RequestError("Bad Request: malformed multipart part")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = _header_params(headers.get("content-disposition", "").partition(";")[2])
        name = disposition.get("name")
        if name is None:
            continue
        if "filename" in disposition:
            files.append(
                UploadedFile(
                    field=name,
                    filename=disposition["filename"],
                    content=content,
                    mime_type=headers.get("content-type"),
                )
            )
        else:
            fields[name] = content.decode("utf-8")
    return fields, files


def parse_body(
    content_type: str | None, body: bytes, query: str
) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Decode a request into (typed parameters, uploaded files by part name)."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    files: dict[str, UploadedFile] = {}
    kind, ct_params = _media_type(content_type or "")
    if body:
        if kind == "application/json":
            try:
                decoded = json.loads(body)
            except ValueError:
                raise RequestError("Bad Request: can't parse JSON request body") from None
            if not isinstance(decoded, dict):
                raise RequestError("Bad Request: JSON request body must be an object")
            params.update(decoded)
        elif kind == "multipart/form-data":
            fields, uploaded = _parse_multipart(body, ct_params.get("boundary", ""))
            params.update(fields)
            files = {upload.field: upload for upload in uploaded}
        elif kind in ("application/x-www-form-urlencoded", ""):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise RequestError("Bad Request: request body is not UTF-8") from None
            params.update(parse_qsl(text, keep_blank_values=True))
        else:
            raise RequestError(f"Bad Request: unsupported Content-Type {kind!r}")
    return coerce_params(params), files
