"""Step pictures, each uploaded to Telegram once and then sent again by its file_id."""

import hashlib
import logging
from pathlib import Path

from telegram import Bot, InlineKeyboardMarkup, Message
from telegram.error import BadRequest

from bot.storage.repository import Repository

logger = logging.getLogger(__name__)

_META_PREFIX = "photo:"


class PictureSender:
    """Sends a picture file as a photo, reusing Telegram's file_id after the first upload.

    The file_ids are stored (in `meta`, keyed by the picture's content), so a restart does not
    upload again, and a picture the firm replaces is uploaded anew.
    """

    def __init__(self, repository: Repository) -> None:
        self._repository = repository
        self._keys: dict[Path, str] = {}
        self._file_ids: dict[str, str] = {}

    async def send(
        self,
        bot: Bot,
        chat_id: int,
        picture: Path,
        caption: str,
        markup: InlineKeyboardMarkup | None = None,
    ) -> Message:
        """Send `picture` with an HTML caption and buttons."""
        key = self._key(picture)
        file_id = self._file_ids.get(key) or await self._repository.bookkeeping.meta(
            _META_PREFIX + key
        )
        if file_id is not None:
            self._file_ids[key] = file_id
            try:
                return await bot.send_photo(chat_id, file_id, caption=caption, reply_markup=markup)
            except BadRequest as exc:
                # Another bot's id (a new token), or Telegram forgot it: upload it again.
                logger.info("stored photo id for %s refused (%s); uploading", picture.name, exc)
                self._file_ids.pop(key, None)
        message = await bot.send_photo(
            chat_id,
            picture,
            caption=caption,
            reply_markup=markup,
        )
        if message.photo:
            self._file_ids[key] = message.photo[-1].file_id
            await self._repository.bookkeeping.set_meta(_META_PREFIX + key, self._file_ids[key])
        return message

    def _key(self, picture: Path) -> str:
        if picture not in self._keys:
            self._keys[picture] = hashlib.sha256(picture.read_bytes()).hexdigest()[:32]
        return self._keys[picture]
