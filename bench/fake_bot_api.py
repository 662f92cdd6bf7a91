"""A Bot API that answers at once, as Telegram would, for the benchmarks (no network).

Besides answering the calls a handler makes, it plays Telegram's side of long polling:
updates wait in `pending` until a getUpdates call's offset confirms them, getUpdates returns
up to `limit` (100 by default, as Telegram) of those not confirmed, at once if there are any,
else after waiting (at most its timeout) for new ones; getWebhookInfo tells how many wait.
Updates come from `feed(source)`, an iterator drawn lazily so that at most `backlog` are held
at a time (a 10,000-client run never holds all its raw updates in memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
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
# The calls a poller makes for itself, not for an update.
POLLING_METHODS = ("getUpdates", "getWebhookInfo")
TELEGRAM_LIMIT = 100

Raw = dict[str, Any]


@dataclass(frozen=True)
class Sent:
    """One sendMessage call, with when it reached the HTTP layer."""

    chat_id: int
    at: float  # time.perf_counter()


@dataclass
class InstantBotApi(BaseRequest):
    """Answers every call at once; counts calls by method; records messages if `record`.

    With `record=False` nothing grows with the number of calls but the per-method counts.
    """

    date: int = 0
    record: bool = True
    backlog: int = 1_000
    calls: Counter[str] = field(default_factory=Counter)
    sent: list[Sent] = field(default_factory=list)
    pending: deque[Raw] = field(default_factory=deque)
    # Every update below this id was confirmed by a getUpdates offset.
    confirmed_below: int = 0
    first_poll_at: float | None = None
    _source: Iterator[Raw] = field(default_factory=lambda: iter(()))
    _arrived: asyncio.Event | None = None
    _confirmed: asyncio.Event | None = None
    _closing: bool = False
    _exhausted: bool = True
    _message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(10_000))

    @property
    def read_timeout(self) -> float | None:
        """Return the default read timeout (unused: nothing goes over a network)."""
        return 1.0

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""

    # --- the bench's side of long polling ----------------------------------------------

    def feed(self, source: Iterable[Raw]) -> None:
        """Make `source`'s updates arrive (after those already arriving), in id order."""
        self._source = itertools.chain(self._source, source)
        self._closing = False
        self._exhausted = False
        self.first_poll_at = None
        self._top_up()
        self._wake()

    def close_polling(self) -> None:
        """Answer every getUpdates at once from now on (a poller being stopped)."""
        self._closing = True
        self._wake()

    @property
    def drained(self) -> bool:
        """Tell whether every update fed so far was delivered and confirmed."""
        return self._exhausted and not self.pending

    async def wait_drained(self, within: float) -> bool:
        """Wait until every update fed was confirmed by a getUpdates offset; False after
        `within` seconds."""
        deadline = time.perf_counter() + within
        while not self.drained:
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            self._confirmed = self._confirmed or asyncio.Event()
            self._confirmed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._confirmed.wait(), timeout=min(left, 0.5))
        return True

    def _wake(self) -> None:
        if self._arrived is not None:
            self._arrived.set()

    def _top_up(self) -> None:
        while len(self.pending) < self.backlog:
            item = next(self._source, None)
            if item is None:
                self._exhausted = True
                return
            self.pending.append(item)

    def _confirm(self, offset: Any) -> None:
        if not isinstance(offset, int) or offset <= self.confirmed_below:
            return
        self.confirmed_below = offset
        while self.pending and int(self.pending[0]["update_id"]) < offset:
            self.pending.popleft()
        self._top_up()
        if self._confirmed is not None:
            self._confirmed.set()

    async def _get_updates(self, params: dict[str, Any]) -> list[Raw]:
        if self.first_poll_at is None:
            self.first_poll_at = time.perf_counter()
        self._confirm(params.get("offset"))
        limit = int(params.get("limit") or TELEGRAM_LIMIT)
        if not self.pending and not self._closing:
            self._arrived = self._arrived or asyncio.Event()
            self._arrived.clear()
            wait = float(params.get("timeout") or 0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=wait)
        return list(itertools.islice(self.pending, min(limit, TELEGRAM_LIMIT)))

    # --- the HTTP layer ------------------------------------------------------------------

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
        if api_method == "getUpdates":
            result = await self._get_updates(dict(params))
        elif api_method == "getWebhookInfo":
            self._top_up()
            result = {
                "url": "",
                "has_custom_certificate": False,
                "pending_update_count": len(self.pending),
            }
        elif api_method == "getMe":
            result = {**BOT_USER, "can_join_groups": False, "can_read_all_group_messages": False}
        elif api_method in _MESSAGE_METHODS:
            chat_id = int(str(params.get("chat_id", 0)))
            if self.record and api_method in ("sendMessage", "sendPhoto"):
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
