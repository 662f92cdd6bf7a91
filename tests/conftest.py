"""The fixtures every suite shares; the helpers behind them live in tests/support."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.domain.settings import Settings
from tests.support.harness import FakeClock, Harness, make_settings


@pytest.fixture
def clock() -> FakeClock:
    """A controllable clock."""
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default test settings with a database in a temp dir."""
    return make_settings(tmp_path)


@pytest.fixture
async def bot(settings: Settings, clock: FakeClock) -> AsyncIterator[Harness]:
    """A booted bot, shut down after the test."""
    harness = await Harness(settings, clock).boot()
    yield harness
    await harness.close()
