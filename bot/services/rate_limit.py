"""Telegram's flood limits, applied so that one chat asked to wait never holds the others."""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram._utils.types import JSONDict
from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter

logger = logging.getLogger(__name__)


class PerChatRateLimiter(AIORateLimiter):
    """PTB's AIORateLimiter (30 messages/s overall, 20/min per group), except on a 429.

    PTB answers a RetryAfter by holding every request until it is over. A 429 on a message to
    one chat (a group's pace, one client's flood) only concerns that chat: here only that
    request waits and retries, and other chats' replies go on. A 429 on a request to no chat
    still holds everything, as PTB does.
    """

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        """Send one request within the limits; a 429 for one chat delays only that chat."""
        chat_id = data.get("chat_id")
        if chat_id is None:
            return await super().process_request(
                callback, args, kwargs, endpoint, data, rate_limit_args
            )
        with contextlib.suppress(ValueError, TypeError):
            chat_id = int(chat_id)
        group: int | str | bool = (
            chat_id
            if (isinstance(chat_id, int) and chat_id < 0) or isinstance(chat_id, str)
            else False
        )
        max_retries = rate_limit_args or self._max_retries
        for attempt in range(max_retries + 1):
            try:
                # PTB's own pacing (overall and per group), without its global hold.
                return await self._run_request(
                    chat=True,
                    group=group,
                    allow_paid_broadcast=bool(data.get("allow_paid_broadcast", False)),
                    callback=callback,
                    args=args,
                    kwargs=kwargs,
                )
            except RetryAfter as exc:
                if attempt == max_retries:
                    raise
                # As PTB's own limiter reads it (the public attribute is changing type).
                seconds = exc._retry_after.total_seconds()
                logger.info("chat %s asked to wait %.1f s; others go on", chat_id, seconds)
                await asyncio.sleep(seconds + 0.1)
        raise AssertionError("unreachable")
