"""The guided authorization, driven end to end through the real Application.

Expected wording comes from the guide in effect (`bot.deps.guide`), never from copied Spanish.
"""

from datetime import timedelta

from bot.services.notifications import describe_duration
from tests.support.fake_telegram import button_data, buttons, message_update
from tests.support.harness import CLIENT, FIRM_CHAT, FIRM_MEMBER, Harness

RUT = "76086428-5"
SHOWN = "76.086.428-5"


def step_text(bot: Harness, number: int) -> str:
    """Step `number` for the company, as the client must read it."""
    return bot.deps.guide.step(number, RUT)


async def test_happy_path_records_completion_and_tells_the_firm(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.say("/start")
    assert bot.texts() == [guide.message("welcome"), guide.message("ask_device")]
    # The configured firm and representative, not placeholders, are what the client reads.
    assert bot.settings.firm_name in bot.texts()[0]
    assert bot.settings.representative_name in bot.texts()[0]
    assert button_data(bot.request.last(CLIENT)) == ["dev:pc", "dev:phone"]

    await bot.press("dev:pc")
    assert bot.last_text() == guide.message("ask_rut")

    await bot.say("76.086.428-5")
    assert bot.last_text() == guide.message("rut_confirm", company_rut=SHOWN)
    assert button_data(bot.request.last(CLIENT)) == ["rut:ok", "rut:edit"]

    before = len(bot.texts())
    await bot.press("rut:ok")
    assert bot.texts()[before:] == [
        guide.message("who_can", company_rut=SHOWN),
        step_text(bot, 1),
    ]
    step1 = bot.request.last(CLIENT)
    assert step1.method == "sendPhoto"
    urls = [b.get("url") for b in buttons(step1) if "url" in b]
    assert urls == [guide.portal_url] == [bot.settings.portal_url]

    for step in range(1, 6):
        await bot.press(f"g:{step}:next")
        assert bot.last_text() == step_text(bot, step + 1)
        assert bot.request.last(CLIENT).method == "sendPhoto"
    for permission in bot.settings.permissions:  # step 6 lists the boxes ticked at step 5
        assert permission in bot.last_text()
    assert bot.settings.representative_full_name in bot.last_text()
    await bot.press("g:6:save")
    assert bot.last_text() == step_text(bot, 7)
    bot.clock.advance(minutes=7)
    await bot.press("g:7:yes")
    done = bot.request.last(CLIENT)
    assert done.text == guide.message("done", company_rut=SHOWN)
    assert button_data(done) == ["st:another"]

    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.completed_at == bot.clock.now()
    notice = guide.message(
        "firm_completed",
        company_rut=SHOWN,
        client_name="Juana",
        client_username="@juana_pyme",
        client_id=CLIENT,
        completed_at="24-11-2026 12:07",  # Santiago's time
        duration=describe_duration(timedelta(minutes=7)),
    )
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        assert bot.texts(chat) == [notice]
    assert await bot.repository.conversations.conversation(CLIENT, CLIENT) is None


async def test_a_step_press_is_one_commit_three_round_trips_and_two_api_calls(
    bot: Harness,
) -> None:
    await bot.reach_step(4)
    await bot.press("g:4:back")  # every picture involved is on Telegram already
    counts = bot.repository.database.counts
    commits, round_trips = counts.commits, counts.round_trips
    bot.request.clear()
    await bot.press("g:3:next")
    # Answered and moved on: the spinner stopped, the next step sent; the pressed message
    # is left as it is (no third call to take its buttons off).
    assert [call.method for call in bot.request.calls] == ["answerCallbackQuery", "sendPhoto"]
    assert bot.last_text() == step_text(bot, 4)
    # Everything the press changed (the step, its event, the client's activity, the
    # "processed" marker) is one commit, reached in two hops to the database (one read, one write).
    assert counts.commits - commits == 1
    assert counts.round_trips - round_trips <= 2
    assert bot.db_rows("SELECT COUNT(*) FROM processed_updates") != [(0,)]


async def test_data_mismatch_at_step_6_returns_to_step_5(bot: Harness) -> None:
    await bot.reach_step(6)
    await bot.press("g:6:mismatch")
    assert bot.texts()[-2:] == [bot.deps.guide.message("mismatch"), step_text(bot, 5)]
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.step == 5


async def test_not_saved_at_step_7_guides_and_offers_the_way_back(bot: Harness) -> None:
    await bot.reach_step(7)
    await bot.press("g:7:no")
    assert bot.last_text() == bot.deps.guide.message("not_saved")
    assert button_data(bot.request.last(CLIENT)) == ["g:7:back5", "g:7:yes", "pb:7"]
    await bot.press("g:7:back5")
    assert bot.last_text() == step_text(bot, 5)


async def test_back_buttons_move_one_step_back(bot: Harness) -> None:
    await bot.reach_step(3)
    await bot.press("g:3:back")
    assert bot.last_text() == step_text(bot, 2)
    await bot.press("g:2:back")
    await bot.press("g:1:back")
    assert bot.last_text() == bot.deps.guide.message("rut_confirm", company_rut=SHOWN)
    assert button_data(bot.request.last(CLIENT)) == ["rut:ok", "rut:edit"]


async def test_stale_and_forged_buttons_never_move_the_state(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.reach_step(4)
    for data in ("g:2:next", "g:4:save", "g:7:yes", "g:9:next", "rut:ok", "zz", "g:4:x" * 10):
        bot.request.clear()
        await bot.press(data)
        answers = [c for c in bot.request.calls if c.method == "answerCallbackQuery"]
        assert answers and answers[0].params["text"] == guide.message("stale_button", step=4)
        assert bot.last_text() == step_text(bot, 4)
        authorization = await bot.repository.authorizations.authorization(RUT)
        assert authorization is not None and authorization.step == 4
        assert authorization.completed_at is None


async def test_a_stranger_cannot_press_someone_elses_buttons(bot: Harness) -> None:
    await bot.reach_step(7)
    await bot.press("g:7:yes", user=31337)
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.completed_at is None
    assert bot.texts(FIRM_CHAT) == []


async def test_duplicate_final_update_completes_once(bot: Harness) -> None:
    await bot.reach_step(7)
    await bot.press("g:7:yes", update_id=900_001)
    await bot.press("g:7:yes", update_id=900_001)
    await bot.press("g:7:yes")
    assert len(bot.texts(FIRM_CHAT)) == 1
    assert bot.last_text() == bot.deps.guide.message("already_completed", company_rut=SHOWN)
    [completions] = bot.db_rows("SELECT COUNT(*) FROM events WHERE kind = 'completed'")
    [notices] = bot.db_rows("SELECT COUNT(*) FROM outbox")
    assert completions == (1,)
    assert notices == (2,)  # one per firm chat


async def test_completed_company_is_not_started_again_unless_insisted(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.reach_step(7)
    await bot.press("g:7:yes")
    await bot.say("/start")
    await bot.say(RUT)
    await bot.press("rut:ok")
    assert bot.last_text() == guide.message(
        "already_done", company_rut=SHOWN, completed_date="24-11-2026"
    )
    assert button_data(bot.request.last(CLIENT)) == ["rep:no", "rep:yes"]
    await bot.press("rep:yes")
    assert bot.texts()[-2:] == [guide.message("who_can", company_rut=SHOWN), step_text(bot, 1)]
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.completed_at is None


async def test_cancel_ends_politely_and_start_offers_to_resume(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.reach_step(3)
    await bot.say("/cancelar")
    assert bot.last_text() == guide.message("cancelled")
    assert await bot.repository.conversations.conversation(CLIENT, CLIENT) is None
    before = len(bot.texts())
    await bot.say("/start")
    assert bot.texts()[before:] == [
        guide.message("welcome"),
        guide.message("resume_offer", company_rut=SHOWN, step=3),
        guide.message("ask_device"),
    ]
    await bot.press("st:resume")
    assert bot.last_text() == step_text(bot, 3)


async def test_start_mid_step_offers_to_continue_or_start_over(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.reach_step(4)
    await bot.say("/start")
    assert bot.last_text() == guide.message("restart_offer", step=4)
    assert button_data(bot.request.last(CLIENT)) == ["st:keep", "st:over"]
    await bot.press("st:keep")
    assert bot.last_text() == step_text(bot, 4)
    await bot.say("/start")
    before = len(bot.texts())
    await bot.press("st:over")
    # Starting over is starting afresh, with the unfinished one still offered.
    assert bot.texts()[before:] == [
        guide.message("welcome"),
        guide.message("resume_offer", company_rut=SHOWN, step=4),
        guide.message("ask_device"),
    ]
    [(state,)] = bot.db_rows("SELECT state FROM conversations")
    assert state == "ask_device"


async def test_help_mid_step_explains_and_repeats_the_step(bot: Harness) -> None:
    await bot.reach_step(2)
    await bot.say("/ayuda")
    assert bot.texts()[-2:] == [bot.deps.guide.message("help"), step_text(bot, 2)]


async def test_a_press_delivered_again_shows_the_current_step_without_a_warning(
    bot: Harness,
) -> None:
    # As after a crash between the committed step and its message: the press comes again.
    await bot.reach_step(4)
    bot.request.clear()
    await bot.press("g:3:next")
    answers = [c for c in bot.request.calls if c.method == "answerCallbackQuery"]
    assert answers and "text" not in answers[0].params  # no "ese botón ya no corresponde"
    assert bot.texts() == [step_text(bot, 4)]
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.step == 4


async def test_repeating_a_completed_authorization_drops_the_old_proof(bot: Harness) -> None:
    await bot.reach_step(7)
    await bot.send("photo")
    await bot.press("g:7:yes")
    await bot.say("/start")
    await bot.say(RUT)
    await bot.press("rut:ok")
    await bot.press("rep:yes")
    authorization = await bot.repository.authorizations.authorization(RUT)
    assert authorization is not None and authorization.proof_file_id is None


async def test_a_start_delivered_again_welcomes_a_new_client_again(bot: Harness) -> None:
    # After a crash right after /start, Telegram delivers it once more: a first-time client
    # must see the welcome and the question again, not "carry on or start over?".
    guide = bot.deps.guide
    raw = message_update(CLIENT, "/start", update_id=880_001)
    await bot.feed(raw)
    first = bot.texts()
    await bot.feed(raw)
    assert first == [guide.message("welcome"), guide.message("ask_device")]
    assert bot.texts() == first + first
