"""A recording stand-in for Telegram's HTTP API, and raw updates as Telegram sends them."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from telegram.error import TelegramError
from telegram.request import BaseRequest, RequestData

BOT_ID = 999_000_111
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Asistente SII", "username": "sii_test_bot"}


@dataclass
class Call:
    """One Bot API call the bot made."""

    method: str
    params: dict[str, Any]

    @property
    def text(self) -> str:
        """Return the message's text, or a photo's caption."""
        return str(self.params.get("text", self.params.get("caption", "")))


@dataclass
class RecordingRequest(BaseRequest):
    """Answers Bot API calls like Telegram would and records each one.

    Faults are injected per method: `fail_next("sendMessage", SomeTelegramError(...))`.
    Calls keep only 'attach://…' for a file; `uploads` keeps the files themselves.
    `files` are the files users sent (file_id → bytes): getFile answers for them, and their
    download URL serves them (each download's file_path is kept in `downloads`).
    """

    calls: list[Call] = field(default_factory=list)
    uploads: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    downloads: list[str] = field(default_factory=list)
    faults: dict[str, list[TelegramError]] = field(default_factory=dict)
    _message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    @property
    def read_timeout(self) -> float | None:
        """Return the default read timeout (unused: nothing goes over a network)."""
        return 1.0

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""

    def fail_next(self, method: str, error: TelegramError, times: int = 1) -> None:
        """Make the next `times` calls of `method` raise `error`."""
        self.faults.setdefault(method, []).extend([error] * times)

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        """Record the call and return Telegram's answer for it."""
        if method == "GET" and "/file/bot" in url:
            return self._download(url)
        api_method = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data else {}
        if self.faults.get(api_method):
            raise self.faults[api_method].pop(0)
        self.calls.append(Call(api_method, params))
        if api_method == "getFile":
            return self._get_file(str(params.get("file_id")))
        if request_data is not None and request_data.contains_files:
            self.uploads.append((api_method, request_data.multipart_data))
        return 200, json.dumps({"ok": True, "result": self._result(api_method, params)}).encode()

    def _get_file(self, file_id: str) -> tuple[int, bytes]:
        """Answer getFile for a file a user sent, as Telegram does (unknown: Bad Request)."""
        if file_id not in self.files:
            error = {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}
            return 400, json.dumps(error).encode()
        result = {
            "file_id": file_id,
            "file_unique_id": file_id[-16:],
            "file_size": len(self.files[file_id]),
            "file_path": f"documents/{file_id}",
        }
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _download(self, url: str) -> tuple[int, bytes]:
        """Serve a file getFile pointed to ({base_file_url}/{file_path})."""
        file_path = url.split("/file/bot", 1)[1].split("/", 1)[1]
        self.downloads.append(file_path)
        file_id = file_path.removeprefix("documents/")
        if file_id not in self.files:
            return 404, b"Not Found"
        return 200, self.files[file_id]

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return {**BOT_USER, "can_join_groups": False, "can_read_all_group_messages": False}
        if method == "getUpdates":
            return []
        if method == "getWebhookInfo":
            return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
        if method in (
            "sendMessage",
            "sendPhoto",
            "sendDocument",
            "editMessageText",
            "editMessageCaption",
            "editMessageReplyMarkup",
        ):
            chat_id = params.get("chat_id", 0)
            message = {
                "message_id": params.get("message_id") or next(self._message_ids),
                "date": int(datetime.now(UTC).timestamp()),
                "chat": {"id": chat_id, "type": "private" if int(chat_id) > 0 else "group"},
                "from": BOT_USER,
            }
            if "text" in params:
                message["text"] = params["text"]
            if method == "sendPhoto":
                photo = params.get("photo")
                # An upload gets a new file_id; a file_id sent again stays what it was.
                reused = isinstance(photo, str) and not photo.startswith("attach://")
                file_id = str(photo) if reused else f"uploaded-{message['message_id']}"
                message["photo"] = [
                    {
                        "file_id": file_id,
                        "file_unique_id": file_id[-16:],
                        "width": 800,
                        "height": 600,
                    }
                ]
                message["caption"] = params.get("caption", "")
            if "reply_markup" in params:
                message["reply_markup"] = params["reply_markup"]
            return message
        return True

    # --- reading what was sent ----------------------------------------------------------

    def sent(self, chat_id: int | None = None) -> list[Call]:
        """Return the messages sent (texts and photos), optionally only to one chat."""
        return [
            call
            for call in self.calls
            if call.method in ("sendMessage", "sendPhoto")
            and (chat_id is None or int(call.params["chat_id"]) == chat_id)
        ]

    def texts(self, chat_id: int | None = None) -> list[str]:
        """Return the texts of sent messages (a photo's caption), in order."""
        return [call.text for call in self.sent(chat_id)]

    def last(self, chat_id: int) -> Call:
        """Return the last message sent to a chat."""
        return self.sent(chat_id)[-1]

    def clear(self) -> None:
        """Forget the calls recorded so far."""
        self.calls.clear()


def buttons(call: Call) -> list[dict[str, Any]]:
    """Return the inline buttons of a sent message, flattened."""
    markup = call.params.get("reply_markup")
    if not markup:
        return []
    if isinstance(markup, str):
        markup = json.loads(markup)
    return [button for row in markup["inline_keyboard"] for button in row]


def button_data(call: Call) -> list[str]:
    """Return the callback data of a sent message's buttons."""
    return [b["callback_data"] for b in buttons(call) if "callback_data" in b]


# --- raw updates ----------------------------------------------------------------------

_update_ids = itertools.count(1)
_EPOCH = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def _user(user_id: int, first_name: str, username: str | None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if username:
        user["username"] = username
    return user


def message_update(
    user_id: int,
    text: str | None = None,
    *,
    first_name: str = "Juana",
    username: str | None = "juana_pyme",
    chat_id: int | None = None,
    chat_type: str = "private",
    kind: str = "text",
    edited: bool = False,
    update_id: int | None = None,
    reply_to: int | None = None,
    replied_from: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a message update; `kind` is text, sticker, photo, voice or document.

    With `reply_to`, the message is a reply to that message id (by default one of the bot's).
    """
    chat = {"id": chat_id if chat_id is not None else user_id, "type": chat_type}
    if chat_type == "private":
        chat["first_name"] = first_name
    message: dict[str, Any] = {
        "message_id": next(_update_ids) + 50_000,
        "date": int((_EPOCH + timedelta(seconds=1)).timestamp()),
        "chat": chat,
        "from": _user(user_id, first_name, username),
    }
    if kind == "text":
        message["text"] = text or ""
        if message["text"].startswith("/"):
            command = message["text"].split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    elif kind == "sticker":
        message["sticker"] = {
            "file_id": "sticker1",
            "file_unique_id": "s1",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
    elif kind == "photo":
        message["photo"] = [
            {"file_id": "photo1", "file_unique_id": "p1", "width": 90, "height": 90}
        ]
        if text:
            message["caption"] = text
    elif kind == "voice":
        message["voice"] = {"file_id": "voice1", "file_unique_id": "v1", "duration": 3}
    elif kind == "document":
        message["document"] = {"file_id": "doc1", "file_unique_id": "d1", "file_name": "x.pdf"}
    else:
        raise ValueError(kind)
    if reply_to is not None:
        message["reply_to_message"] = {
            "message_id": reply_to,
            "date": 0,
            "chat": chat,
            "from": replied_from or BOT_USER,
            "text": "…",
        }
    key = "edited_message" if edited else "message"
    if edited:
        message["edit_date"] = message["date"] + 5
    return {"update_id": update_id or next(_update_ids), key: message}


def callback_update(
    user_id: int,
    data: str,
    *,
    message_id: int = 1,
    first_name: str = "Juana",
    username: str | None = "juana_pyme",
    update_id: int | None = None,
) -> dict[str, Any]:
    """Build a callback query update: `user_id` pressed a button carrying `data`."""
    return {
        "update_id": update_id or next(_update_ids),
        "callback_query": {
            "id": f"cq{next(_update_ids)}",
            "from": _user(user_id, first_name, username),
            "chat_instance": f"ci{user_id}",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(_EPOCH.timestamp()),
                "chat": {"id": user_id, "type": "private", "first_name": first_name},
                "from": BOT_USER,
                "text": "…",
            },
        },
    }
