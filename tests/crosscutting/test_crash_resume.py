"""A killed process resumes every client exactly where they were."""

import pytest
from telegram.error import NetworkError

from bot.domain.settings import Settings
from tests.support.harness import CLIENT, FIRM_CHAT, RUT, SHOWN, FakeClock, Harness


@pytest.mark.parametrize("step", range(1, 8))
async def test_second_process_continues_at_the_same_step(
    settings: Settings, clock: FakeClock, step: int
) -> None:
    first = await Harness(settings, clock).boot()
    await first.reach_step(step)
    # The first process is never shut down: as after SIGKILL, nothing gets flushed.
    second = await Harness(settings, clock).boot()
    try:
        await second.press("g:0:next")  # forged: must only say where the client is
        guide = second.deps.guide
        assert guide.step(step, RUT) in second.last_text()
        action = {6: "save", 7: "yes"}.get(step, "next")
        await second.press(f"g:{step}:{action}")
        if step < 7:
            assert guide.step(step + 1, RUT) in second.last_text()
        else:
            assert second.last_text() == guide.message("done", company_rut=SHOWN)
            assert len(second.texts(FIRM_CHAT)) == 1
    finally:
        await second.close()
        await first.abandon()


async def test_second_process_keeps_the_rut_waiting_for_confirmation(
    settings: Settings, clock: FakeClock
) -> None:
    first = await Harness(settings, clock).boot()
    await first.say("/start")
    await first.say("76.086.428-5")
    second = await Harness(settings, clock).boot()
    try:
        await second.press("rut:ok")
        assert second.deps.guide.step(1, RUT) in second.last_text()
        conversation = await second.repository.conversations.conversation(CLIENT, CLIENT)
        assert conversation is not None and conversation.company_rut == RUT
    finally:
        await second.close()
        await first.abandon()


async def test_notice_queued_before_a_crash_is_delivered_after_restart(
    settings: Settings, clock: FakeClock
) -> None:
    first = await Harness(settings, clock).boot()
    await first.reach_step(7)
    first.request.fail_next("sendMessage", NetworkError("connection reset"), times=3)
    await first.press("g:7:yes")  # completion committed; the client's and firm's sends fail
    assert first.texts(FIRM_CHAT) == []
    second = await Harness(settings, clock).boot()
    try:
        await second.app.job_queue.get_jobs_by_name("firm-outbox")[0].run(second.app)  # type: ignore[union-attr]
        assert len(second.texts(FIRM_CHAT)) == 1
        await second.press("g:7:yes")
        assert second.last_text(CLIENT) == second.deps.guide.message(
            "already_completed", company_rut=SHOWN
        )
        assert len(second.texts(FIRM_CHAT)) == 1
    finally:
        await second.close()
        await first.abandon()
