"""An in-process Telegram Bot API server for end-to-end tests.

``BotApiServer`` listens on 127.0.0.1 (a free port) in background threads of the test
process and answers ``/bot<token>/<method>`` like api.telegram.org: ``{"ok": true,
"result": ...}`` or ``{"ok": false, "error_code": ..., "description": ...}``. A bot process
started with ``TELEGRAM_API_URL=server.url`` talks to it through its normal HTTP client; the
test plays the Telegram users (``send_text``, ``press_button``, ...) and observes what the bot
did (``messages_to``, ``wait_for``, ``calls``). All state lives in this object, so it survives
the bot process being SIGKILLed and restarted.

Telegram behaviour worth knowing when writing tests:

* ``getUpdates`` confirms every update with ``update_id < offset`` for good (a negative
  offset keeps only the last ``-offset`` updates). Updates returned without such a later
  offset are delivered again on the next call, e.g. to a restarted bot. A new ``getUpdates``
  ends a still-waiting older one with ``409 Conflict: terminated by other getUpdates request``
  (what a restarted bot causes for the poll of its killed predecessor).
* ``deleteWebhook(drop_pending_updates=True)`` drops unconfirmed updates.
* Bot-sent message ids are per chat and shared with the user's messages in that chat.
* ``parse_mode`` text is stored as Telegram stores it: plain text plus ``entities``; markup
  Telegram refuses gives 400 ``Bad Request: can't parse entities: ...``.
* ``editMessageText`` without ``reply_markup`` removes the inline keyboard; an edit that
  changes nothing gives 400 ``Bad Request: message is not modified: ...``.
* A callback query can be answered once; a second ``answerCallbackQuery`` (e.g. by a bot
  restarted before it confirmed the update) gives 400 ``query is too old ...``.
* Texts longer than 4096 characters, captions longer than 1024 and ``callback_data`` longer
  than 64 bytes are refused.

Every blocking call takes a timeout; waiting uses one condition variable, never polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from .formatting import EntityParseError, parse_formatted, utf16_len
from .params import RequestError, UploadedFile, parse_body

__all__ = ["DEFAULT_TOKEN", "ApiError", "BotApiServer", "BotApiTimeout", "Matcher"]

DEFAULT_TOKEN = "123456789:TEST-emulated-bot-token_01234567890"

Matcher = str | re.Pattern[str] | Callable[[dict[str, Any]], bool] | None

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_BODY = 64 * 1024 * 1024
# What getUpdates delivers when allowed_updates was never set or set to [].
_DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
_BUTTON_DECORATIONS = frozenset({"text", "style", "icon_custom_emoji_id"})
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


class ApiError(Exception):
    """An error answer: HTTP status ``error_code`` with the Bot API ``description``."""

    def __init__(
        self, error_code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{error_code} {description}")
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


class BotApiTimeout(AssertionError):
    """A ``wait_*`` helper ran out of time; the message says what was seen instead."""


class _DropConnection(Exception):
    """Close the HTTP connection without answering (a lost response)."""


@dataclass
class _Fault:
    error: ApiError | None  # None: drop the connection
    remaining: int
    after_effect: bool


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def _default_fault_description(error_code: int, retry_after: int | None) -> str:
    if error_code == 429:
        return f"Too Many Requests: retry after {retry_after or 1}"
    return {
        400: "Bad Request: injected failure",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        404: "Not Found",
        409: "Conflict: injected failure",
        500: "Internal Server Error",
        502: "Bad Gateway",
    }.get(error_code, f"Error {error_code}: injected failure")


def button_data(message: dict[str, Any]) -> list[str]:
    """The ``callback_data`` of every inline keyboard button of ``message``, row by row."""
    markup = message.get("reply_markup") or {}
    return [
        button["callback_data"]
        for row in markup.get("inline_keyboard", [])
        for button in row
        if "callback_data" in button
    ]


def button_labels(message: dict[str, Any]) -> list[str]:
    """The text of every inline keyboard button of ``message``, row by row."""
    markup = message.get("reply_markup") or {}
    return [button["text"] for row in markup.get("inline_keyboard", []) for button in row]


def find_button(message: dict[str, Any], label: str) -> str:
    """The ``callback_data`` of the inline button whose text contains ``label``."""
    markup = message.get("reply_markup") or {}
    for row in markup.get("inline_keyboard", []):
        for button in row:
            if label in button.get("text", "") and "callback_data" in button:
                return str(button["callback_data"])
    raise LookupError(f"no inline button labelled {label!r} in {button_labels(message)!r}")


def _describe(match: Matcher) -> str:
    if match is None:
        return "any message"
    if isinstance(match, str):
        return f"text containing {match!r}"
    if isinstance(match, re.Pattern):
        return f"text matching /{match.pattern}/"
    return f"a message satisfying {getattr(match, '__name__', repr(match))}"


def _matches(match: Matcher, message: dict[str, Any]) -> bool:
    if match is None:
        return True
    body = message.get("text") or message.get("caption") or ""
    if isinstance(match, str):
        return match in body
    if isinstance(match, re.Pattern):
        return match.search(body) is not None
    return bool(match(message))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BotApiEmulator/1.0"
    timeout = 120  # idle keep-alive connections end after this
    # Headers and body are written apart: without TCP_NODELAY each answer would wait ~40 ms
    # for the client's delayed ACK, slowing every call of the end-to-end tests.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise RequestError("Request Entity Too Large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise RequestError("Request Entity Too Large")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _serve(self) -> None:
        emulator = self.server.emulator
        split = urlsplit(self.path)
        try:
            body = self._read_body()
        except (RequestError, ValueError, OSError):
            self.close_connection = True
            self._send(
                413, json.dumps(ApiError(413, "Request Entity Too Large").payload()).encode()
            )
            return
        path = unquote(split.path)
        file_match = re.fullmatch(r"/file/bot([^/]+)/(.+)", path)
        if file_match and self.command == "GET":
            content = emulator._download(file_match[1], file_match[2])
            if content is None:
                self._send(404, json.dumps(ApiError(404, "Not Found").payload()).encode())
            else:
                self._send(200, content, "application/octet-stream")
            return
        match = re.fullmatch(r"/bot([^/]*)/([^/]*)", path)
        if match is None:
            self._send(404, json.dumps(ApiError(404, "Not Found").payload()).encode())
            return
        try:
            status, payload = emulator._dispatch(
                match[1], match[2], self.headers.get("Content-Type"), body, split.query
            )
        except _DropConnection:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, emulator: BotApiServer, address: tuple[str, int]) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)


class BotApiServer:
    """A Telegram Bot API emulator on loopback; use as a context manager or start()/stop().

    Observation helpers return deep copies; every method is thread-safe. Blocking helpers
    (``wait_for``, ...) have ``*_async`` twins that wait in a worker thread so an event loop
    running the bot in-process keeps going.
    """

    _METHODS: ClassVar[dict[str, str]] = {
        "getMe": "_m_get_me",
        "logOut": "_m_true",
        "close": "_m_true",
        "getUpdates": "_m_get_updates",
        "setWebhook": "_m_set_webhook",
        "deleteWebhook": "_m_delete_webhook",
        "getWebhookInfo": "_m_get_webhook_info",
        "sendMessage": "_m_send_message",
        "sendDocument": "_m_send_document",
        "sendPhoto": "_m_send_photo",
        "sendChatAction": "_m_send_chat_action",
        "editMessageText": "_m_edit_message_text",
        "editMessageCaption": "_m_edit_message_caption",
        "editMessageReplyMarkup": "_m_edit_message_reply_markup",
        "deleteMessage": "_m_delete_message",
        "answerCallbackQuery": "_m_answer_callback_query",
        "setMyCommands": "_m_set_my_commands",
        "getMyCommands": "_m_get_my_commands",
        "deleteMyCommands": "_m_delete_my_commands",
        "getFile": "_m_get_file",
        "setMyDescription": "_m_true",
        "setMyShortDescription": "_m_true",
        "setMyName": "_m_true",
        "setChatMenuButton": "_m_true",
    }

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "sii_test_bot",
        bot_first_name: str = "SII Test Bot",
        first_update_id: int = 500_000_000,
        strict_chats: bool = False,
        max_poll_timeout: float = 50.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_user: dict[str, Any] = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self.strict_chats = strict_chats
        self.max_poll_timeout = max_poll_timeout
        self._address = (host, port)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition(threading.RLock())
        self._methods = {name.lower(): name for name in self._METHODS}
        self._stopping = False
        # updates
        self._next_update_id = first_update_id
        self._pending: list[dict[str, Any]] = []
        self._acknowledged: list[int] = []
        self._dropped: list[int] = []
        self._deliveries: dict[int, int] = {}
        self._poll_generation = 0
        self._active_polls = 0
        self._allowed_updates: list[str] = []
        self._webhook_url = ""
        # chats, messages, files
        self._users: dict[int, dict[str, Any]] = {}
        self._chats: dict[int, dict[str, Any]] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._next_message_id: dict[int, int] = {}
        self._events: list[dict[str, Any]] = []
        self._seq = 0
        self._files: dict[str, dict[str, Any]] = {}
        self._uploads: list[dict[str, Any]] = []
        self._callback_queries: dict[str, dict[str, Any]] = {}
        self._callback_answers: list[dict[str, Any]] = []
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._calls: list[dict[str, Any]] = []
        self._blocked: set[int] = set()
        self._faults: dict[str, list[_Fault]] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> BotApiServer:
        """Bind a free loopback port and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        self._stopping = False
        self._httpd = _HTTPServer(self, self._address)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="botapi-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake pending long polls, stop serving and close every open connection."""
        httpd = self._httpd
        if httpd is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        httpd.shutdown()
        httpd.server_close()
        for connection in list(httpd.connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> BotApiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("BotApiServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for TELEGRAM_API_URL, e.g. ``http://127.0.0.1:41234`` (no trailing /)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """``{url}/bot``: what python-telegram-bot's ``base_url`` expects."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    def bot_env(self) -> dict[str, str]:
        """Environment variables pointing a ``python -m bot`` process at this server."""
        return {"TELEGRAM_API_URL": self.url, "TELEGRAM_BOT_TOKEN": self.token}

    # ------------------------------------------------------------------ users act

    def user(
        self,
        user_id: int,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> dict[str, Any]:
        """Create or update the Telegram user ``user_id`` (and its private chat)."""
        with self._cond:
            profile = self._users.setdefault(
                user_id,
                {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"},
            )
            for key, value in (
                ("first_name", first_name),
                ("last_name", last_name),
                ("username", username),
                ("language_code", language_code),
            ):
                if value is not None:
                    profile[key] = value
            chat = {"id": user_id, "type": "private", "first_name": profile["first_name"]}
            for key in ("last_name", "username"):
                if key in profile:
                    chat[key] = profile[key]
            self._chats[user_id] = chat
            return copy.deepcopy(profile)

    def add_chat(
        self, chat_id: int, *, type: str = "group", title: str | None = None
    ) -> dict[str, Any]:
        """Register a group/supergroup/channel chat the bot is a member of."""
        with self._cond:
            chat = {"id": chat_id, "type": type, "title": title or f"Chat {chat_id}"}
            self._chats[chat_id] = chat
            return copy.deepcopy(chat)

    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> int:
        """The user sends ``text`` (to the bot's private chat unless ``chat_id``); update_id."""
        fields: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split()[0] if text.split() else text
            fields["entities"] = [
                {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
            ]
        return self._user_message(
            user_id, fields, chat_id, first_name, last_name, username, language_code
        )

    def send_sticker(self, user_id: int, *, chat_id: int | None = None, emoji: str = "👍") -> int:
        """The user sends a sticker; returns the update_id."""
        file = self._new_file(b"RIFF-sticker-webp", "sticker.webp", "image/webp", "stickers")
        sticker = {
            "file_id": file["file_id"],
            "file_unique_id": file["file_unique_id"],
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "file_size": file["file_size"],
        }
        return self._user_message(user_id, {"sticker": sticker}, chat_id)

    def send_photo(
        self,
        user_id: int,
        caption: str | None = None,
        *,
        chat_id: int | None = None,
        content: bytes = b"\x89PNG\r\n\x1a\n emulated photo",
    ) -> int:
        """The user sends a photo (two sizes), optionally captioned; returns the update_id."""
        small = self._new_file(content, "photo_s.jpg", "image/jpeg", "photos")
        large = self._new_file(content, "photo_m.jpg", "image/jpeg", "photos")
        fields: dict[str, Any] = {
            "photo": [
                {**self._file_ref(small), "width": 90, "height": 67},
                {**self._file_ref(large), "width": 800, "height": 600},
            ]
        }
        if caption is not None:
            fields["caption"] = caption
        return self._user_message(user_id, fields, chat_id)

    def send_voice(self, user_id: int, *, chat_id: int | None = None, duration: int = 3) -> int:
        """The user sends a voice note; returns the update_id."""
        file = self._new_file(b"OggS emulated voice", "voice.oga", "audio/ogg", "voice")
        voice = {**self._file_ref(file), "duration": duration, "mime_type": "audio/ogg"}
        return self._user_message(user_id, {"voice": voice}, chat_id)

    def send_document(
        self,
        user_id: int,
        filename: str = "document.pdf",
        content: bytes = b"%PDF-1.4 emulated",
        *,
        mime_type: str = "application/pdf",
        caption: str | None = None,
        chat_id: int | None = None,
    ) -> int:
        """The user sends a file; returns the update_id."""
        file = self._new_file(content, filename, mime_type, "documents")
        document = {**self._file_ref(file), "file_name": filename, "mime_type": mime_type}
        fields: dict[str, Any] = {"document": document}
        if caption is not None:
            fields["caption"] = caption
        return self._user_message(user_id, fields, chat_id)

    def press_button(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        chat_id: int | None = None,
        validate: bool = True,
    ) -> int:
        """The user presses the inline button carrying ``data`` under the bot's message.

        The callback query carries the message as it is now (after edits). With ``validate``
        the message must exist and currently show a button with that ``callback_data``
        (ValueError otherwise), as a real client only offers visible buttons.
        """
        with self._cond:
            profile = self.user(user_id)
            chat = chat_id if chat_id is not None else user_id
            message = self._messages.get((chat, message_id))
            if validate:
                if message is None:
                    raise ValueError(f"chat {chat} has no message {message_id}")
                if data not in button_data(message):
                    raise ValueError(
                        f"message {message_id} has no button {data!r}; it shows "
                        f"{button_data(message)!r}"
                    )
            if message is None:
                message = {"message_id": message_id, "chat": self._chat(chat), "date": 0}
            query_id = str(next(self._ids) * 7919 + self.bot_id % 100000)
            query = {
                "id": query_id,
                "from": profile,
                "message": copy.deepcopy(message),
                "chat_instance": str(-(abs(chat) * 31 + 17)),
                "data": data,
            }
            self._callback_queries[query_id] = {"answered": False, "query": query}
            return self._enqueue({"callback_query": query})

    def enqueue_update(self, update: dict[str, Any]) -> int:
        """Queue a raw update (without ``update_id``, which is assigned); returns it."""
        with self._cond:
            return self._enqueue(copy.deepcopy(update))

    def block_chat(self, chat_id: int, *, notify: bool = False) -> None:
        """The user blocks the bot: every method aimed at ``chat_id`` answers 403.

        With ``notify`` a ``my_chat_member`` update (member -> kicked) is queued, as Telegram
        does.
        """
        with self._cond:
            self._blocked.add(chat_id)
            if notify:
                self._queue_member_change(chat_id, "member", "kicked")

    def unblock_chat(self, chat_id: int, *, notify: bool = False) -> None:
        with self._cond:
            self._blocked.discard(chat_id)
            if notify:
                self._queue_member_change(chat_id, "kicked", "member")

    def fail_next(
        self,
        method: str,
        error_code: int = 400,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        count: int = 1,
        after_effect: bool = False,
    ) -> None:
        """Answer the next ``count`` calls of ``method`` with an error.

        ``retry_after`` adds ``parameters.retry_after`` (use with 429). By default the call
        has no effect; with ``after_effect`` it takes effect (message stored, update
        confirmed, ...) and only the answer is the error. The description defaults to
        Telegram's wording for the code.
        """
        if retry_after is not None and description is None and error_code != 429:
            raise ValueError("retry_after goes with error_code=429")
        parameters = {"retry_after": retry_after} if retry_after is not None else None
        error = ApiError(
            error_code,
            description or _default_fault_description(error_code, retry_after),
            parameters,
        )
        self._add_fault(method, _Fault(error, count, after_effect))

    def drop_next(self, method: str, *, count: int = 1, after_effect: bool = True) -> None:
        """Close the connection instead of answering the next ``count`` calls of ``method``.

        With ``after_effect`` (default) the call takes effect first: a message the bot never
        learns it sent.
        """
        self._add_fault(method, _Fault(None, count, after_effect))

    def clear_faults(self, method: str | None = None) -> None:
        """Forget pending ``fail_next``/``drop_next`` faults (of ``method``, or all)."""
        with self._cond:
            if method is None:
                self._faults.clear()
            else:
                self._faults.pop(method.lower(), None)

    def _add_fault(self, method: str, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("count must be at least 1")
        with self._cond:
            self._faults.setdefault(method.lower(), []).append(fault)

    # ------------------------------------------------------------------ observe

    def mark(self, chat_id: int | None = None) -> int:
        """A watermark: pass it as ``after=`` to wait only for later messages (any chat)."""
        with self._cond:
            return self._seq

    def messages_to(self, chat_id: int) -> list[dict[str, Any]]:
        """What the bot sent or edited in ``chat_id``, in order.

        Each entry is the Message as Telegram returned it at that moment (``message_id``,
        ``text``/``caption``, ``entities``, ``document``, ...), plus ``_method`` (e.g.
        ``"sendMessage"``, ``"editMessageText"``), ``_seq`` (compare with ``mark()``) and
        ``reply_markup`` as the bot sent it (reply keyboards included, which Telegram does not
        echo in the Message).
        """
        with self._cond:
            return [copy.deepcopy(e) for e in self._events if e["chat"]["id"] == chat_id]

    def texts_to(self, chat_id: int) -> list[str]:
        """The ``text`` or ``caption`` of each entry of ``messages_to(chat_id)``."""
        return [m.get("text") or m.get("caption") or "" for m in self.messages_to(chat_id)]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The message's current state (None if unknown or deleted)."""
        with self._cond:
            found = self._messages.get((chat_id, message_id))
            return copy.deepcopy(found) if found is not None else None

    def wait_for(
        self,
        match: Matcher,
        chat_id: int,
        *,
        after: int | None = None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Block until the bot sent/edited a message in ``chat_id`` matching ``match``.

        ``match`` is a substring of the text or caption, a compiled regex, a predicate on the
        ``messages_to`` entry, or None (any). Only entries newer than ``after`` (a
        ``mark()``) count; ``after=None`` means all. Returns the first match; raises
        BotApiTimeout listing what the chat received.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self._events:
                    if (
                        event["chat"]["id"] == chat_id
                        and (after is None or event["_seq"] > after)
                        and _matches(match, event)
                    ):
                        return copy.deepcopy(event)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [
                        (e["_seq"], e["_method"], e.get("text") or e.get("caption"))
                        for e in self._events
                        if e["chat"]["id"] == chat_id and (after is None or e["_seq"] > after)
                    ]
                    raise BotApiTimeout(
                        f"no {_describe(match)} in chat {chat_id} within {timeout}s "
                        f"(after={after}); received: {seen!r}"
                    )
                self._cond.wait(remaining)

    async def wait_for_async(
        self,
        match: Matcher,
        chat_id: int,
        *,
        after: int | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - bounds a wait in a thread
    ) -> dict[str, Any]:
        return await asyncio.to_thread(self.wait_for, match, chat_id, after=after, timeout=timeout)

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """Finished requests, in completion order: ``{"method", "params", "files",
        "status", "response", "time"}``. ``files`` maps part name to ``{"filename",
        "mime_type", "size"}``. ``method`` filters (case-insensitive)."""
        with self._cond:
            return [
                copy.deepcopy(call)
                for call in self._calls
                if method is None or call["method"].lower() == method.lower()
            ]

    def call_mark(self) -> int:
        """A watermark for ``wait_for_call(after=...)``."""
        with self._cond:
            return len(self._calls)

    def wait_for_call(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        *,
        after: int = 0,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Block until a call of ``method`` (newer than ``after``, see ``call_mark``)
        finished and satisfies ``predicate``; returns its record."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for call in self._calls[after:]:
                    if call["method"].lower() == method.lower() and (
                        predicate is None or predicate(call)
                    ):
                        return copy.deepcopy(call)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BotApiTimeout(f"no matching {method} call within {timeout}s")
                self._cond.wait(remaining)

    async def wait_for_call_async(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        *,
        after: int = 0,
        timeout: float = 10.0,  # noqa: ASYNC109 - bounds a wait in a thread
    ) -> dict[str, Any]:
        return await asyncio.to_thread(
            self.wait_for_call, method, predicate, after=after, timeout=timeout
        )

    @property
    def acknowledged_update_ids(self) -> list[int]:
        """Update ids the bot confirmed with a higher getUpdates ``offset``, ascending."""
        with self._cond:
            return sorted(self._acknowledged)

    @property
    def dropped_update_ids(self) -> list[int]:
        """Update ids dropped unconfirmed (``drop_pending_updates``, ``allowed_updates``)."""
        with self._cond:
            return sorted(self._dropped)

    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed (whether or not already delivered), oldest first."""
        with self._cond:
            return copy.deepcopy(self._pending)

    def delivery_count(self, update_id: int) -> int:
        """How many getUpdates answers contained ``update_id``."""
        with self._cond:
            return self._deliveries.get(update_id, 0)

    def wait_acknowledged(self, update_id: int, *, timeout: float = 10.0) -> None:
        """Block until the bot confirmed ``update_id`` (asked for a higher offset)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while update_id not in self._acknowledged:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BotApiTimeout(
                        f"update {update_id} not acknowledged within {timeout}s; pending: "
                        f"{[u['update_id'] for u in self._pending]}"
                    )
                self._cond.wait(remaining)

    async def wait_acknowledged_async(
        self,
        update_id: int,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - bounds a wait in a thread
    ) -> None:
        await asyncio.to_thread(self.wait_acknowledged, update_id, timeout=timeout)

    @property
    def polling(self) -> bool:
        """Whether a getUpdates long poll is waiting right now."""
        with self._cond:
            return self._active_polls > 0

    def wait_until_polling(self, *, timeout: float = 10.0) -> None:
        """Block until some getUpdates long poll is waiting (the bot is up and idle)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._active_polls == 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BotApiTimeout(f"no getUpdates long poll within {timeout}s")
                self._cond.wait(remaining)

    async def wait_until_polling_async(
        self,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - bounds a wait in a thread
    ) -> None:
        await asyncio.to_thread(self.wait_until_polling, timeout=timeout)

    def uploads(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Files the bot sent: ``{"method", "chat_id", "message_id", "field", "filename",
        "content" (bytes, None for URL/file_id), "mime_type", "caption", "file_id"}``."""
        with self._cond:
            return [
                copy.deepcopy(u)
                for u in self._uploads
                if chat_id is None or u["chat_id"] == chat_id
            ]

    def file_content(self, file_id: str) -> bytes | None:
        with self._cond:
            file = self._files.get(file_id)
            return None if file is None else file["content"]

    def callback_answers(self) -> list[dict[str, Any]]:
        """Accepted answerCallbackQuery calls (their parameters), in order."""
        with self._cond:
            return copy.deepcopy(self._callback_answers)

    def my_commands(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, Any]] | None:
        """The command list set for ``scope`` (default scope if None); None if never set."""
        with self._cond:
            found = self._commands.get(self._scope_key(scope, language_code))
            return copy.deepcopy(found)

    button_data = staticmethod(button_data)
    button_labels = staticmethod(button_labels)
    find_button = staticmethod(find_button)

    # ------------------------------------------------------------------ internals

    def _user_message(
        self,
        user_id: int,
        fields: dict[str, Any],
        chat_id: int | None,
        first_name: str | None = None,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> int:
        with self._cond:
            profile = self.user(
                user_id,
                first_name=first_name,
                last_name=last_name,
                username=username,
                language_code=language_code,
            )
            chat = self._chat(chat_id if chat_id is not None else user_id)
            message = {
                "message_id": self._new_message_id(chat["id"]),
                "from": profile,
                "chat": chat,
                "date": int(time.time()),
                **fields,
            }
            self._messages[(chat["id"], message["message_id"])] = message
            return self._enqueue({"message": copy.deepcopy(message)})

    def _queue_member_change(self, chat_id: int, old: str, new: str) -> None:
        profile = self.user(chat_id) if chat_id > 0 else None
        update = {
            "my_chat_member": {
                "chat": self._chat(chat_id),
                "from": profile or {"id": 1, "is_bot": False, "first_name": "Admin"},
                "date": int(time.time()),
                "old_chat_member": {"status": old, "user": self.bot_user},
                "new_chat_member": {"status": new, "user": self.bot_user}
                | ({"until_date": 0} if new == "kicked" else {}),
            }
        }
        self._enqueue(update)

    def _enqueue(self, update: dict[str, Any]) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        self._pending.append({"update_id": update_id, **update})
        self._cond.notify_all()
        return update_id

    def _chat(self, chat_id: int) -> dict[str, Any]:
        chat = self._chats.get(chat_id)
        if chat is None:
            if self.strict_chats:
                raise _bad("chat not found")
            if chat_id > 0:
                self.user(chat_id)
                chat = self._chats[chat_id]
            else:
                chat = {"id": chat_id, "type": "group", "title": f"Chat {chat_id}"}
                self._chats[chat_id] = chat
        return copy.deepcopy(chat)

    def _new_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _new_file(
        self, content: bytes | None, filename: str, mime_type: str | None, folder: str
    ) -> dict[str, Any]:
        number = next(self._ids)
        file_id = f"BQACAgEAAx0{number:08d}{self.bot_id % 10_000:04d}emulated"
        suffix = filename.rsplit(".", 1)[-1] if "." in filename else "bin"
        file = {
            "file_id": file_id,
            "file_unique_id": f"AgAD{number:08d}",
            "file_size": len(content) if content is not None else 0,
            "file_path": f"{folder}/file_{number}.{suffix}",
            "content": content,
            "filename": filename,
            "mime_type": mime_type,
        }
        self._files[file_id] = file
        return file

    @staticmethod
    def _file_ref(file: dict[str, Any]) -> dict[str, Any]:
        return {
            "file_id": file["file_id"],
            "file_unique_id": file["file_unique_id"],
            "file_size": file["file_size"],
        }

    def _download(self, token: str, file_path: str) -> bytes | None:
        if token != self.token:
            return None
        with self._cond:
            for file in self._files.values():
                if file["file_path"] == file_path and file["content"] is not None:
                    return bytes(file["content"])
        return None

    @staticmethod
    def _scope_key(scope: dict[str, Any] | None, language_code: str | None) -> tuple[str, str]:
        scope = scope or {"type": "default"}
        return json.dumps(scope, sort_keys=True), language_code or ""

    def _dispatch(
        self, token: str, method: str, content_type: str | None, body: bytes, query: str
    ) -> tuple[int, dict[str, Any]]:
        started = time.time()
        params: dict[str, Any] = {}
        files: dict[str, UploadedFile] = {}
        canonical = self._methods.get(method.lower(), method)
        try:
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            if method.lower() not in self._methods:
                raise ApiError(404, "Not Found")
            params, files = parse_body(content_type, body, query)
            with self._cond:
                result = self._invoke(canonical, params, files)
            status, payload = 200, {"ok": True, "result": result}
        except RequestError as exc:
            status, payload = 400, ApiError(400, str(exc)).payload()
        except ApiError as exc:
            status, payload = exc.error_code, exc.payload()
        except _DropConnection:
            self._record(canonical, params, files, None, None, started)
            raise
        self._record(canonical, params, files, status, payload, started)
        return status, payload

    def _record(
        self,
        method: str,
        params: dict[str, Any],
        files: dict[str, UploadedFile],
        status: int | None,
        payload: dict[str, Any] | None,
        started: float,
    ) -> None:
        with self._cond:
            self._calls.append(
                {
                    "method": method,
                    "params": copy.deepcopy(params),
                    "files": {
                        name: {
                            "filename": f.filename,
                            "mime_type": f.mime_type,
                            "size": len(f.content),
                        }
                        for name, f in files.items()
                    },
                    "status": status,
                    "response": copy.deepcopy(payload),
                    "time": started,
                }
            )
            self._cond.notify_all()

    def _invoke(self, method: str, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        fault = self._take_fault(method)
        if fault is not None and not fault.after_effect:
            if fault.error is None:
                raise _DropConnection
            raise fault.error
        chat_id = params.get("chat_id")
        if isinstance(chat_id, int) and chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        handler: Callable[[dict[str, Any], dict[str, UploadedFile]], Any] = getattr(
            self, self._METHODS[method]
        )
        result = handler(params, files)
        if fault is not None:
            if fault.error is None:
                raise _DropConnection
            raise fault.error
        return result

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method.lower())
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        return fault

    # ------------------------------------------------------------------ validation helpers

    def _target_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        if not isinstance(chat_id, int):
            raise _bad("chat not found")
        return self._chat(chat_id)

    @staticmethod
    def _check_markup(markup: Any) -> dict[str, Any] | None:
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
            for row in rows:
                for button in row:
                    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                        raise _bad("can't parse inline keyboard button: Text must be non-empty")
                    actions = [k for k in button if k not in _BUTTON_DECORATIONS]
                    if len(actions) != 1:
                        raise _bad(
                            "can't parse inline keyboard button: InlineKeyboardButton must "
                            "have exactly one of the optional fields"
                        )
                    data = button.get("callback_data")
                    if data is not None and (
                        not isinstance(data, str)
                        or not data
                        or len(data.encode("utf-8")) > MAX_CALLBACK_DATA
                    ):
                        raise _bad("BUTTON_DATA_INVALID")
        elif not any(k in markup for k in ("keyboard", "remove_keyboard", "force_reply")):
            raise _bad("can't parse reply keyboard markup JSON object")
        return markup

    @staticmethod
    def _formatted(
        params: dict[str, Any], field: str, entities_field: str
    ) -> tuple[str, list[dict[str, Any]] | None]:
        raw = params.get(field)
        text = raw if isinstance(raw, str) else ("" if raw is None else str(raw))
        given = params.get(entities_field)
        try:
            plain, entities = parse_formatted(text, params.get("parse_mode"))
        except EntityParseError as exc:
            raise _bad(f"can't parse entities: {exc}") from None
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        if given:
            entities = given
        return plain, entities or None

    def _store(
        self, method: str, chat: dict[str, Any], fields: dict[str, Any], markup: Any
    ) -> dict[str, Any]:
        """Create a bot message, log it, and return the Message Telegram would."""
        message: dict[str, Any] = {
            "message_id": self._new_message_id(chat["id"]),
            "from": dict(self.bot_user),
            "chat": chat,
            "date": int(time.time()),
            **fields,
        }
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        self._messages[(chat["id"], message["message_id"])] = message
        self._log_event(method, message, markup)
        return copy.deepcopy(message)

    def _log_event(self, method: str, message: dict[str, Any], markup: Any) -> None:
        self._seq += 1
        event = copy.deepcopy(message)
        event.pop("reply_markup", None)
        if markup is not None:
            event["reply_markup"] = copy.deepcopy(markup)
        event["_method"] = method
        event["_seq"] = self._seq
        self._events.append(event)
        self._cond.notify_all()

    def _reply_fields(self, chat_id: int, params: dict[str, Any]) -> dict[str, Any]:
        reply = params.get("reply_parameters") or {}
        target = reply.get("message_id") if isinstance(reply, dict) else None
        target = target or params.get("reply_to_message_id")
        if not target:
            return {}
        original = self._messages.get((chat_id, target))
        if original is None:
            allow = reply.get("allow_sending_without_reply") if isinstance(reply, dict) else None
            if allow or params.get("allow_sending_without_reply"):
                return {}
            raise _bad("message to be replied not found")
        quoted = copy.deepcopy(original)
        quoted.pop("reply_to_message", None)
        return {"reply_to_message": quoted}

    def _editable(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("inline_message_id"):
            raise _bad("inline messages are not supported by the emulator")
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise _bad("message identifier is not specified")
        message = self._messages.get((chat["id"], message_id))
        if message is None:
            raise _bad("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_id:
            raise _bad("message can't be edited")
        return message

    # ------------------------------------------------------------------ Bot API methods

    def _m_true(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> bool:
        return True

    def _m_get_me(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_set_webhook(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        self._webhook_url = str(params.get("url") or "")
        if params.get("drop_pending_updates"):
            self._drop_pending()
        self._cond.notify_all()
        return True

    def _m_delete_webhook(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        self._webhook_url = ""
        if params.get("drop_pending_updates"):
            self._drop_pending()
        return True

    def _drop_pending(self) -> None:
        self._dropped.extend(u["update_id"] for u in self._pending)
        self._pending.clear()

    def _m_get_webhook_info(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            keep = [u for u in self._pending if u["update_id"] >= offset]
        elif offset < 0:
            keep = self._pending[offset:]
        else:
            return
        kept = {u["update_id"] for u in keep}
        self._acknowledged.extend(
            u["update_id"] for u in self._pending if u["update_id"] not in kept
        )
        self._pending = keep
        self._cond.notify_all()

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        allowed = set(self._allowed_updates)
        batch = []
        for update in list(self._pending):
            kind = next(k for k in update if k != "update_id")
            wanted = kind in allowed if allowed else kind not in _DEFAULT_EXCLUDED_UPDATES
            if not wanted:
                self._pending.remove(update)
                self._dropped.append(update["update_id"])
                continue
            batch.append(update)
            if len(batch) >= limit:
                break
        return batch

    def _m_get_updates(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        if self._webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = params.get("offset") or 0
        limit = params.get("limit") or 100
        timeout = params.get("timeout") or 0
        if isinstance(timeout, str):
            try:
                timeout = float(timeout)
            except ValueError:
                raise _bad("wrong parameter timeout") from None
        if not isinstance(offset, int) or not isinstance(limit, int):
            raise _bad("wrong parameter type")
        if not isinstance(timeout, int | float):
            raise _bad("wrong parameter type")
        limit = max(1, min(100, limit))
        timeout = max(0.0, min(float(timeout), self.max_poll_timeout))
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(a) for a in allowed]
        self._poll_generation += 1
        generation = self._poll_generation
        self._confirm(offset)
        self._cond.notify_all()  # ends an older poll with 409, wakes acknowledgement waiters
        deadline = time.monotonic() + timeout
        self._active_polls += 1
        self._cond.notify_all()
        try:
            while True:
                if self._stopping:
                    return []
                if generation != self._poll_generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; make sure that "
                        "only one bot instance is running",
                    )
                batch = self._deliverable(limit)
                remaining = deadline - time.monotonic()
                if batch or remaining <= 0:
                    break
                self._cond.wait(remaining)
        finally:
            self._active_polls -= 1
        for update in batch:
            self._deliveries[update["update_id"]] = self._deliveries.get(update["update_id"], 0) + 1
        return copy.deepcopy(batch)

    def _m_send_message(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        chat = self._target_chat(params)
        text, entities = self._formatted(params, "text", "entities")
        if not text.strip():
            raise _bad("message text is empty")
        if len(text) > MAX_TEXT:
            raise _bad("message is too long")
        markup = self._check_markup(params.get("reply_markup"))
        fields: dict[str, Any] = self._reply_fields(chat["id"], params)
        fields["text"] = text
        if entities:
            fields["entities"] = entities
        return self._store("sendMessage", chat, fields, markup)

    def _media(
        self, method: str, field: str, params: dict[str, Any], files: dict[str, UploadedFile]
    ) -> tuple[dict[str, Any], UploadedFile | None]:
        value = params.get(field)
        upload: UploadedFile | None = None
        if field in files:
            upload = files[field]
        elif isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
            if upload is None:
                raise _bad(f"file {value} not found in the request")
        if upload is not None:
            return self._new_file(upload.content, upload.filename, upload.mime_type, field), upload
        if not value:
            raise _bad(f"there is no {field} in the request")
        if not isinstance(value, str):
            raise _bad(f"wrong type of the {field}")
        if value in self._files:
            return self._files[value], None
        if re.match(r"^https?://", value):
            name = value.rstrip("/").rsplit("/", 1)[-1] or "file"
            return self._new_file(None, name, None, field), None
        raise _bad("wrong file identifier/HTTP URL specified")

    def _send_media(
        self,
        method: str,
        field: str,
        params: dict[str, Any],
        files: dict[str, UploadedFile],
        describe: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> Any:
        chat = self._target_chat(params)
        file, upload = self._media(method, field, params, files)
        caption, entities = self._formatted(params, "caption", "caption_entities")
        if len(caption) > MAX_CAPTION:
            raise _bad("message caption is too long")
        markup = self._check_markup(params.get("reply_markup"))
        fields = self._reply_fields(chat["id"], params)
        fields.update(describe(file))
        if caption:
            fields["caption"] = caption
        if entities:
            fields["caption_entities"] = entities
        message = self._store(method, chat, fields, markup)
        self._uploads.append(
            {
                "method": method,
                "chat_id": chat["id"],
                "message_id": message["message_id"],
                "field": field,
                "filename": file["filename"],
                "content": file["content"],
                "mime_type": file["mime_type"],
                "caption": caption or None,
                "file_id": file["file_id"],
                "uploaded": upload is not None,
            }
        )
        return message

    def _m_send_document(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        def describe(file: dict[str, Any]) -> dict[str, Any]:
            document = {**self._file_ref(file), "file_name": file["filename"]}
            if file["mime_type"]:
                document["mime_type"] = file["mime_type"]
            return {"document": document}

        return self._send_media("sendDocument", "document", params, files, describe)

    def _m_send_photo(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        def describe(file: dict[str, Any]) -> dict[str, Any]:
            return {"photo": [{**self._file_ref(file), "width": 800, "height": 600}]}

        return self._send_media("sendPhoto", "photo", params, files, describe)

    def _m_send_chat_action(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        self._target_chat(params)
        if not params.get("action"):
            raise _bad("wrong parameter action in request")
        return True

    def _m_edit_message_text(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        message = self._editable(params)
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        text, entities = self._formatted(params, "text", "entities")
        if not text.strip():
            raise _bad("message text is empty")
        if len(text) > MAX_TEXT:
            raise _bad("MESSAGE_TOO_LONG")
        markup = self._check_markup(params.get("reply_markup"))
        inline = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        if (
            text == message.get("text")
            and entities == message.get("entities")
            and inline == message.get("reply_markup")
        ):
            raise _bad(_NOT_MODIFIED.removeprefix("Bad Request: "))
        message["text"] = text
        self._set_optional(message, "entities", entities)
        self._set_optional(message, "reply_markup", inline)
        message["edit_date"] = int(time.time())
        self._log_event("editMessageText", message, markup)
        return copy.deepcopy(message)

    def _m_edit_message_caption(
        self, params: dict[str, Any], files: dict[str, UploadedFile]
    ) -> Any:
        message = self._editable(params)
        if "text" in message:
            raise _bad("there is no caption in the message to edit")
        caption, entities = self._formatted(params, "caption", "caption_entities")
        if len(caption) > MAX_CAPTION:
            raise _bad("message caption is too long")
        markup = self._check_markup(params.get("reply_markup"))
        inline = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        if (
            (caption or None) == message.get("caption")
            and entities == message.get("caption_entities")
            and inline == message.get("reply_markup")
        ):
            raise _bad(_NOT_MODIFIED.removeprefix("Bad Request: "))
        self._set_optional(message, "caption", caption or None)
        self._set_optional(message, "caption_entities", entities)
        self._set_optional(message, "reply_markup", inline)
        message["edit_date"] = int(time.time())
        self._log_event("editMessageCaption", message, markup)
        return copy.deepcopy(message)

    def _m_edit_message_reply_markup(
        self, params: dict[str, Any], files: dict[str, UploadedFile]
    ) -> Any:
        message = self._editable(params)
        markup = self._check_markup(params.get("reply_markup"))
        inline = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        if inline == message.get("reply_markup"):
            raise _bad(_NOT_MODIFIED.removeprefix("Bad Request: "))
        self._set_optional(message, "reply_markup", inline)
        message["edit_date"] = int(time.time())
        self._log_event("editMessageReplyMarkup", message, markup)
        return copy.deepcopy(message)

    @staticmethod
    def _set_optional(message: dict[str, Any], key: str, value: Any) -> None:
        if value is None:
            message.pop(key, None)
        else:
            message[key] = copy.deepcopy(value)

    def _m_delete_message(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        chat = self._target_chat(params)
        message_id = params.get("message_id")
        if self._messages.pop((chat["id"], message_id), None) is None:
            raise _bad("message to delete not found")
        return True

    def _m_answer_callback_query(
        self, params: dict[str, Any], files: dict[str, UploadedFile]
    ) -> Any:
        query_id = str(params.get("callback_query_id") or "")
        query = self._callback_queries.get(query_id)
        if query is None or query["answered"]:
            raise ApiError(400, _QUERY_INVALID)
        text = params.get("text")
        if isinstance(text, str) and len(text) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        query["answered"] = True
        self._callback_answers.append(copy.deepcopy(params))
        return True

    def _commands_key(self, params: dict[str, Any]) -> tuple[str, str]:
        scope = params.get("scope")
        if scope is not None and (not isinstance(scope, dict) or "type" not in scope):
            raise _bad("can't parse BotCommandScope JSON object")
        return self._scope_key(scope, params.get("language_code"))

    def _m_set_my_commands(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_RE.match(
                str(command.get("command", ""))
            ):
                raise _bad("BOT_COMMAND_INVALID")
            description = command.get("description")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    def _m_get_my_commands(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return copy.deepcopy(self._commands.get(self._commands_key(params), []))

    def _m_delete_my_commands(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        self._commands.pop(self._commands_key(params), None)
        return True

    def _m_get_file(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        file = self._files.get(str(params.get("file_id") or ""))
        if file is None:
            raise _bad("invalid file_id")
        return {**self._file_ref(file), "file_path": file["file_path"]}
