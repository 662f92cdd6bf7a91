"""A Bot API that answers at once, as Telegram would, for the benchmarks (no network)."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from telegram.request import BaseRequest, RequestData

BOT_USER: dict[str, Any] = {
    "id": 999_000_111,
    "is_bot": True,
    "first_name": "Asistente SII",
    "username": "sii_bench_bot",
}
# The methods answered with the message they sent or edited.
_MESSAGE_METHODS = ("sendMessage", "sendPhoto", "editMessageText", "editMessageReplyMarkup")


@dataclass(frozen=True)
class Sent:
    """One sendMessage call, with when it reached the HTTP layer."""

    chat_id: int
    at: float  # time.perf_counter()


@dataclass
class InstantBotApi(BaseRequest):
    """Answers every call at once; counts calls by method and records each message sent."""

    date: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    sent: list[Sent] = field(default_factory=list)
    _message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(10_000))

    @property
    def read_timeout(self) -> float | None:
        """Return the default read timeout (unused: nothing goes over a network)."""
        return 1.0

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""

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
        """Answer one Bot API call; sent and edited messages come back as Telegram echoes them."""
        api_method = url.rsplit("/", 1)[-1]
        self.calls[api_method] += 1
        params = request_data.parameters if request_data else {}
        result: Any = True
        if api_method == "getMe":
            result = {**BOT_USER, "can_join_groups": False, "can_read_all_group_messages": False}
        elif api_method in _MESSAGE_METHODS:
            chat_id = int(str(params.get("chat_id", 0)))
            if api_method in ("sendMessage", "sendPhoto"):
                self.sent.append(Sent(chat_id, time.perf_counter()))
            result = {
                "message_id": params.get("message_id") or next(self._message_ids),
                "date": self.date,
                "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
                "from": BOT_USER,
            }
            if "text" in params:
                result["text"] = params["text"]
            if "reply_markup" in params:
                result["reply_markup"] = params["reply_markup"]
            if api_method == "sendPhoto":
                # An upload gets a file_id; one sent again by its file_id keeps it.
                photo = params.get("photo")
                file_id = photo if isinstance(photo, str) else f"photo-{result['message_id']}"
                result["photo"] = [
                    {"file_id": file_id, "file_unique_id": file_id, "width": 800, "height": 600}
                ]
        return 200, json.dumps({"ok": True, "result": result}).encode()
