"""Purging personal data of unfinished authorizations nobody touched for too long."""

import logging
from datetime import datetime, timedelta

from bot.domain.clock import Clock
from bot.domain.settings import Settings
from bot.storage.repository import Repository

logger = logging.getLogger(__name__)

LAST_PURGE_KEY = "last_purge_at"
PURGE_EVERY = timedelta(days=1)


async def purge_if_due(settings: Settings, repository: Repository, clock: Clock) -> int:
    """Once a day, delete what DATA_RETENTION_DAYS says is kept no longer; return the count."""
    now = clock.now()
    stored = await repository.bookkeeping.meta(LAST_PURGE_KEY)
    if stored is not None and now - datetime.fromisoformat(stored) < PURGE_EVERY:
        return 0
    purged = await repository.privacy.purge_inactive(
        now - timedelta(days=settings.data_retention_days)
    )
    await repository.bookkeeping.set_meta(LAST_PURGE_KEY, now.isoformat())
    if purged:
        logger.info("purged %d inactive unfinished authorizations", purged)
    return purged
