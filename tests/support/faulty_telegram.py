"""A fake Telegram that serves updates and misbehaves on demand, and a Harness that uses it.

Shared by the fault suites, test_faults_serving and test_faults_clients.
"""

import asyncio
import html
import json
import re
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from tests.support.fake_telegram import Call, RecordingRequest
from tests.support.harness import Harness

# --- a fake Telegram that serves updates and misbehaves on demand --------------------------


@dataclass
class FaultyTelegram(RecordingRequest):
    """The recording fake, serving updates as getUpdates does and misbehaving on demand."""

    # getUpdates serves queued raw updates with Telegram's offset semantics (an offset
    # confirms what is below it; nothing to deliver waits like a long poll) and
    # getWebhookInfo counts them; `hold` makes the calls to one chat wait; `answer_error`
    # answers with an HTTP error status (PTB then raises as it would for Telegram);
    # `check_lengths` refuses texts and captions over Telegram's limits, counted in UTF-16
    # code units after HTML parsing.

    pending_updates: list[dict[str, Any]] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)
    # The last offset a getUpdates carried: every update below it Telegram forgets.
    told_offset: int | None = None
    refused: list[Call] = field(default_factory=list)
    check_lengths: bool = False
    _long_poll: bool = False
    _new_updates: asyncio.Event | None = None
    _holds: dict[tuple[str, int], asyncio.Event] = field(default_factory=dict)
    _held: dict[tuple[str, int], int] = field(default_factory=dict)
    _errors: list[tuple[str, int | None, int, str]] = field(default_factory=list)

    def queue_update(self, raw: dict[str, Any]) -> int:
        """Make getUpdates deliver a raw update (until an offset confirms it); return its id."""
        self._long_poll = True
        self.pending_updates.append(raw)
        if self._new_updates is not None:
            self._new_updates.set()
        return int(raw["update_id"])

    def hold(self, method: str, chat_id: int) -> asyncio.Event:
        """Make calls of `method` to `chat_id` wait until the returned event is set."""
        gate = asyncio.Event()
        self._holds[(method, chat_id)] = gate
        return gate

    def held(self, method: str, chat_id: int) -> int:
        """Return how many calls of `method` to `chat_id` reached a hold so far."""
        return self._held.get((method, chat_id), 0)

    def answer_error(
        self,
        method: str,
        status: int,
        description: str,
        *,
        chat_id: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` calls of `method` (to `chat_id`, if given) with an error."""
        self._errors.extend([(method, chat_id, status, description)] * times)

    def stop_errors(self) -> None:
        """Forget the error answers still pending."""
        self._errors.clear()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: Any = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        """Answer as Telegram would, with the faults asked for."""
        name = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data else {}
        if not self.faults.get(name):
            answer = await self._misbehave(name, params)
            if answer is not None:
                return answer
        return await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )

    async def _misbehave(self, name: str, params: dict[str, Any]) -> tuple[int, bytes] | None:
        chat = _int_or_none(params.get("chat_id"))
        gate = self._holds.get((name, chat)) if chat is not None else None
        if gate is not None and chat is not None:
            self._held[(name, chat)] = self._held.get((name, chat), 0) + 1
            await gate.wait()
        for index, (method, target, status, description) in enumerate(self._errors):
            if method == name and target in (None, chat):
                del self._errors[index]
                self.refused.append(Call(name, params))
                return status, _error_body(status, description)
        if self.check_lengths and (refusal := _too_long(params)) is not None:
            self.refused.append(Call(name, params))
            return 400, _error_body(400, refusal)
        if name == "getUpdates":
            return 200, json.dumps({"ok": True, "result": await self._updates(params)}).encode()
        if name == "getWebhookInfo" and self._long_poll:
            self.calls.append(Call(name, params))
            info = {"url": "", "has_custom_certificate": False}
            info["pending_update_count"] = len(self.pending_updates)
            return 200, json.dumps({"ok": True, "result": info}).encode()
        return None

    async def _updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Answer getUpdates: confirm below the offset, then deliver what is left."""
        self.calls.append(Call("getUpdates", params))
        offset = _int_or_none(params.get("offset"))
        if offset is not None:
            self.told_offset = offset
            self.acknowledged.extend(
                int(u["update_id"]) for u in self.pending_updates if u["update_id"] < offset
            )
            self.pending_updates = [u for u in self.pending_updates if u["update_id"] >= offset]
        timeout = float(params.get("timeout") or 0)
        if not self.pending_updates and self._long_poll and timeout > 0:
            self._new_updates = asyncio.Event()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._new_updates.wait(), timeout=min(timeout, 1.0))
            self._new_updates = None
        batch = self.pending_updates[: int(params.get("limit") or 100)]
        return list(json.loads(json.dumps(batch)))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _error_body(status: int, description: str) -> bytes:
    return json.dumps({"ok": False, "error_code": status, "description": description}).encode()


def telegram_units(text: str) -> int:
    """Return how long Telegram counts a text: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def visible_units(text: str, parse_mode: Any = "HTML") -> int:
    """Return the UTF-16 length of what a text shows once its HTML is parsed."""
    if parse_mode == "HTML":
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return telegram_units(text)


def _too_long(params: dict[str, Any]) -> str | None:
    """Say why Telegram would refuse a text or caption as too long (None if it fits)."""
    mode = params.get("parse_mode")
    if "text" in params and visible_units(str(params["text"]), mode) > 4096:
        return "Bad Request: message is too long"
    if "caption" in params and visible_units(str(params["caption"]), mode) > 1024:
        return "Bad Request: message caption is too long"
    return None


class FaultyHarness(Harness):
    """A Harness whose fake Telegram is a FaultyTelegram."""

    request: FaultyTelegram
