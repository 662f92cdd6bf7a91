"""What the client reads and sees: where they are, who can do it, pictures, RUT boxes, help.

Expected wording comes from the guide in effect (`bot.deps.guide`), never from copied Spanish.
"""

import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from telegram.error import BadRequest

from bot.guide.guide import DEFAULT_GUIDE_PATH, GuideError, load_guide, telegram_length
from tests.support.fake_telegram import Call, button_data, buttons
from tests.support.harness import (
    CLIENT,
    FIRM_CHAT,
    FIRM_MEMBER,
    RUT,
    FakeClock,
    Harness,
    make_settings,
)

NUMBER, CHECK_DIGIT = RUT.split("-")
REPRESENTATIVE_NUMBER, REPRESENTATIVE_DIGIT = "13322924", "8"
LINK = re.compile(r"https://t\.me/sii_test_bot\?start=([A-Za-z0-9_-]+)")

# Keys of texts only the firm reads; every other text is for clients and must say "usted".
FIRM_ONLY = re.compile(
    r"^(firm_|digest_|invite_(?!forward|invalid)|pending_|progress_|mark_|completed_|status_|"
    r"state_|event_|remind_|list_empty|export_|import_|summary_|alert_|group_chat_id|"
    r"the_client|no_company|problem_photo)"
)
# Buttons and labels only the firm sees (its buttons, its spreadsheets' and chart's titles).
FIRM_ONLY_BUTTONS = re.compile(r"^(verify|reject|previous_page|next_page|xlsx_(?!invit)|chart_)")
# Forms that only "tú" uses (a verb form shared with "él/ella", like "escribe", is left out).
TU_FORMS = re.compile(
    r"\b(tú|tu|tus|te|ti|contigo|tienes|puedes|quieres|necesitas|vas|sigues|empiezas|"
    r"quedaste|terminas|terminaste|estás|eres|sabes|haz|ten|cuéntame|cuéntanos|envíame|"
    r"escríbeme|identifícate|pídele|elige|presiona|intenta|toca|revísalo|escríbelo|ábrela|"
    r"avísame|dime|mira|guíate|fíjate)\b",
    re.IGNORECASE,
)


def guide_tables() -> dict[str, Any]:
    """The packaged guide file, as data."""
    return tomllib.loads(DEFAULT_GUIDE_PATH.read_text(encoding="utf-8"))


def new(bot: Harness, mark: int, chat: int = CLIENT) -> list[Call]:
    """Messages sent to `chat` since `mark` calls were recorded."""
    return [
        call
        for call in bot.request.calls[mark:]
        if call.method in ("sendMessage", "sendPhoto") and int(call.params["chat_id"]) == chat
    ]


def plain(html_text: str) -> str:
    """What a client reads of an HTML text."""
    return re.sub(r"<[^>]+>", "", html_text)


# --- where the client is reading ---------------------------------------------------------


async def test_start_greets_and_asks_where_the_client_is_reading(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.say("/start")
    assert bot.texts() == [guide.message("welcome"), guide.message("ask_device")]
    assert button_data(bot.request.last(CLIENT)) == ["dev:pc", "dev:phone"]
    [conversation_state] = bot.db_rows("SELECT state FROM conversations")
    assert conversation_state == ("ask_device",)


async def test_on_the_phone_explains_how_to_open_the_chat_on_the_computer(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.say("/start")
    await bot.press("dev:phone")
    assert bot.last_text() == guide.message("on_phone")
    assert button_data(bot.request.last(CLIENT)) == ["dev:pc", "later:menu"]
    # Once on the computer, the RUT is asked.
    await bot.press("dev:pc")
    assert bot.last_text() == guide.message("ask_rut")
    [conversation_state] = bot.db_rows("SELECT state FROM conversations")
    assert conversation_state == ("ask_rut",)


async def test_a_rut_typed_instead_of_answering_is_taken(bot: Harness) -> None:
    await bot.say("/start")
    await bot.say("76.086.428-5")
    assert bot.last_text() == bot.deps.guide.message("rut_confirm", company_rut="76.086.428-5")


async def test_remind_me_later_from_the_phone_keeps_the_question(bot: Harness) -> None:
    await bot.say("/start")
    await bot.press("dev:phone")
    await bot.press("later:menu")
    await bot.press("later:tomorrow")
    [(due,)] = bot.db_rows("SELECT due_at FROM reminders WHERE chat_id = ?", (CLIENT,))
    assert due > bot.clock.now().timestamp()
    await bot.say("/ayuda")
    assert bot.last_text() == bot.deps.guide.message("ask_device")


async def test_an_invited_client_is_asked_too_and_then_confirms_the_company(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.feed(firm_command("/invitar 76.086.428-5 Ana"))
    [token] = LINK.findall(bot.texts(FIRM_CHAT)[-1])
    bot.request.clear()
    await bot.say(f"/start {token}")
    assert bot.texts() == [guide.message("welcome"), guide.message("ask_device")]
    await bot.press("dev:pc")
    assert bot.last_text() == guide.message("rut_confirm", company_rut="76.086.428-5")


def firm_command(text: str) -> dict[str, Any]:
    """A command typed in the firm's group."""
    from tests.support.fake_telegram import message_update

    return message_update(FIRM_MEMBER, text, chat_id=FIRM_CHAT, chat_type="group")


# --- who can do it, and passing it on ----------------------------------------------------


async def test_before_step_1_the_client_learns_who_can_do_it(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.say("/start")
    await bot.say(RUT)
    mark = len(bot.request.calls)
    await bot.press("rut:ok")
    who, step1 = new(bot, mark)
    assert who.text == guide.message("who_can", company_rut="76.086.428-5")
    assert button_data(who) == ["pass:on"]
    assert step1.method == "sendPhoto" and step1.text == guide.step(1, RUT)
    assert [b["url"] for b in buttons(step1) if "url" in b] == [guide.portal_url]


async def test_pass_on_gives_a_fresh_link_for_the_same_company(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.reach_step(2)
    mark = len(bot.request.calls)
    await bot.press("pass:on")
    intro, forward = new(bot, mark)
    [token] = LINK.findall(forward.text)
    link = f"https://t.me/sii_test_bot?start={token}"
    [(expires,)] = bot.db_rows("SELECT expires_at FROM invitations WHERE token = ?", (token,))
    expiry = datetime.fromtimestamp(expires, UTC).astimezone(bot.settings.timezone)
    values = {"company_rut": "76.086.428-5", "link": link, "expires": f"{expiry:%d-%m-%Y}"}
    assert intro.text == guide.message("pass_on_intro", **values)
    assert forward.text == guide.message("pass_on_forward", **values)
    # The person with the certificate opens it and lands on the same company.
    other = 880_002
    await bot.say(f"/start {token}", user=other)
    await bot.press("dev:pc", user=other)
    assert bot.last_text(other) == guide.message("rut_confirm", company_rut="76.086.428-5")
    kinds = [kind for (kind,) in bot.db_rows("SELECT kind FROM events ORDER BY id")]
    assert "passed_on" in kinds
    # The client who passed it on is still where they were.
    [(step,)] = bot.db_rows("SELECT step FROM authorizations WHERE company_rut = ?", (RUT,))
    assert step == 2


async def test_who_passed_it_on_is_not_reminded_and_hears_when_the_other_finishes(
    bot: Harness,
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(2)
    assert bot.db_rows("SELECT company_rut FROM reminders WHERE chat_id = ?", (CLIENT,)) == [(RUT,)]
    await bot.press("pass:on")
    [token] = LINK.findall(bot.last_text())
    assert bot.db_rows("SELECT * FROM reminders WHERE chat_id = ?", (CLIENT,)) == []

    other = 880_002
    await bot.say(f"/start {token}", user=other)
    await bot.press("dev:pc", user=other)
    await bot.press("rut:ok", user=other)
    await bot.steps_from(1, 7, user=other)
    mark = len(bot.request.calls)
    await bot.press("g:7:yes", user=other)
    assert [c.text for c in new(bot, mark, CLIENT)] == [
        guide.message("passed_on_done", company_rut="76.086.428-5")
    ]
    # Only the one who passed it on is told; the firm gets its usual notice.
    assert next(c.text for c in new(bot, mark, other)) == guide.message(
        "done", company_rut="76.086.428-5"
    )
    assert len(new(bot, mark, FIRM_CHAT)) == len(new(bot, mark, FIRM_MEMBER)) == 1


async def test_pass_on_without_a_company_changes_nothing(bot: Harness) -> None:
    await bot.say("/start")
    before = bot.db_snapshot()
    await bot.press("pass:on")
    assert bot.db_snapshot()["invitations"] == before["invitations"] == []
    answers = [c for c in bot.request.calls if c.method == "answerCallbackQuery"]
    assert answers  # the spinner stops


# --- pictures ----------------------------------------------------------------------------


async def test_every_step_is_a_picture_with_its_text_as_caption(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.reach_step(7)
    photos = [c for c in bot.request.calls if c.method == "sendPhoto"]
    assert [c.text for c in photos] == [guide.step(n, RUT) for n in range(1, 8)]
    for call in photos:
        assert call.params["parse_mode"] == "HTML"
        assert telegram_length(plain(call.text)) <= 1024


async def test_each_picture_is_uploaded_once_then_sent_by_file_id(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = make_settings(tmp_path)
    first = await Harness(settings, clock).boot()
    await first.reach_step(3)
    await first.say("/ayuda")  # shows step 3 again
    # An upload carries the file in the multipart body, not as a "photo" parameter.
    photos = [c.params.get("photo") for c in first.request.calls if c.method == "sendPhoto"]
    assert [p is None for p in photos] == [True, True, True, False]
    assert len(first.request.uploads) == 3
    reused = photos[-1]
    stored = first.db_rows("SELECT value FROM meta WHERE key LIKE 'photo:%' ORDER BY value")
    assert len(stored) == 3 and (reused,) in stored
    await first.close()
    # After a restart the stored file_id is used: nothing is uploaded again.
    second = await Harness(settings, clock).boot()
    await second.say("/ayuda")
    [again] = [c.params.get("photo") for c in second.request.calls if c.method == "sendPhoto"]
    assert again == reused
    assert second.request.uploads == []
    await second.close()


async def test_a_refused_file_id_is_uploaded_again(bot: Harness) -> None:
    await bot.reach_step(2)
    await bot.say("/ayuda")  # step 2 once more, now by its stored file_id
    uploads = len(bot.request.uploads)
    bot.request.fail_next("sendPhoto", BadRequest("Wrong file identifier/http url specified"))
    await bot.say("/ayuda")
    assert len(bot.request.uploads) == uploads + 1
    assert bot.last_text() == bot.deps.guide.step(2, RUT)


def test_the_packaged_pictures_are_small_enough_for_a_phone() -> None:
    guide = load_guide(None, _facts())
    for number in range(1, 8):
        picture = guide.step_image(number)
        assert picture is not None and picture.stat().st_size < 1_000_000


def _facts() -> Any:
    from bot.wiring.assembly import firm_facts

    return firm_facts(make_settings(Path("/nonexistent")))


def test_a_firm_screenshot_replaces_a_picture(tmp_path: Path) -> None:
    packaged = DEFAULT_GUIDE_PATH.parent / "screens" / "paso3.png"
    (tmp_path / "mine.png").write_bytes(packaged.read_bytes())
    text = DEFAULT_GUIDE_PATH.read_text(encoding="utf-8")
    (tmp_path / "guide.toml").write_text(
        text.replace('image = "screens/paso3.png"', 'image = "mine.png"'), encoding="utf-8"
    )
    guide = load_guide(tmp_path / "guide.toml", _facts())
    assert guide.step_image(3) == tmp_path / "mine.png"
    # The others still come from the packaged folder.
    assert guide.step_image(2) == DEFAULT_GUIDE_PATH.parent / "screens" / "paso2.png"


@pytest.mark.parametrize(
    ("replacement", "problem"),
    [
        ('image = "missing.png"', "not found"),
        ('image = "huge.png"', "at most 1 MB"),
        ('image = "notes.txt"', "not a PNG or JPEG"),
    ],
)
def test_an_unusable_picture_is_refused_in_one_line(
    tmp_path: Path, replacement: str, problem: str
) -> None:
    (tmp_path / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(1_100_000))
    (tmp_path / "notes.txt").write_text("hola", encoding="utf-8")
    text = DEFAULT_GUIDE_PATH.read_text(encoding="utf-8")
    (tmp_path / "guide.toml").write_text(
        text.replace('image = "screens/paso4.png"', replacement), encoding="utf-8"
    )
    with pytest.raises(GuideError, match=problem) as caught:
        load_guide(tmp_path / "guide.toml", _facts())
    assert "steps[4]" in str(caught.value) and "\n" not in str(caught.value)


def test_a_caption_over_telegrams_limit_is_refused(tmp_path: Path) -> None:
    text = DEFAULT_GUIDE_PATH.read_text(encoding="utf-8")
    long_step = 'text = """<b>Paso 4 de {total_steps}</b> ' + "🙂" * 600 + '"""'
    start = text.index('image = "screens/paso4.png"\ntext = """')
    end = text.index('"""', text.index('text = """', start) + 10) + 3
    (tmp_path / "guide.toml").write_text(
        text[:start] + 'image = "screens/paso4.png"\n' + long_step + text[end:], encoding="utf-8"
    )
    # 600 emoji are 1,200 UTF-16 units, as Telegram counts them.
    with pytest.raises(GuideError, match=r"steps\[4\]: longer than Telegram's 1024"):
        load_guide(tmp_path / "guide.toml", _facts())


# --- typing the RUTs ---------------------------------------------------------------------


async def test_steps_3_and_5_give_number_and_check_digit_separately(bot: Harness) -> None:
    await bot.reach_step(3)
    step3 = bot.last_text()
    assert f"<code>{NUMBER}</code>" in step3 and f"<code>{CHECK_DIGIT}</code>" in step3
    assert f"<code>{RUT}</code>" not in step3
    await bot.steps_from(3, 5)
    step5 = bot.last_text()
    assert f"<code>{REPRESENTATIVE_NUMBER}</code>" in step5
    assert f"<code>{REPRESENTATIVE_DIGIT}</code>" in step5
    # Number first, then the digit after the dash, as the SII's two boxes come.
    assert step5.index(REPRESENTATIVE_NUMBER) < step5.index(f"<code>{REPRESENTATIVE_DIGIT}")


async def test_step_6_checks_the_rut_first_then_the_name_then_the_permissions(
    bot: Harness,
) -> None:
    await bot.reach_step(6)
    text = plain(bot.last_text())
    rut = text.index("13322924-8")
    name = text.index(bot.settings.representative_full_name)
    permissions = [text.index(f"{p}: SI") for p in bot.settings.permissions]
    assert rut < name < min(permissions)


# --- problems: answers first, the firm only when asked ----------------------------------


async def test_an_answer_alone_does_not_bother_the_firm(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.reach_step(2)
    await bot.press("pb:2")
    await bot.press("pb:2:certpass")
    problem = guide.problem("certpass")
    assert problem is not None
    assert bot.last_text() == guide.problem_answer(problem, RUT, 2)
    assert button_data(bot.request.last(CLIENT)) == ["pb:2:certpass:firm", "st:keep"]
    assert bot.texts(FIRM_CHAT) == bot.texts(FIRM_MEMBER) == []
    assert bot.db_rows("SELECT COUNT(*) FROM handoffs") == [(0,)]


async def test_not_solved_opens_a_handoff_and_promises_a_realistic_time(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.reach_step(2)  # Tuesday 24-11-2026, 12:00 in Santiago: the firm is open
    await bot.press("pb:2:certpass")
    await bot.press("pb:2:certpass:firm")
    problem = guide.problem("certpass")
    assert problem is not None
    promise = guide.message(
        "reply_open",
        {"firm_hours": guide.message("firm_hours_label", opens="9:00", closes="18:00")},
    )
    assert bot.last_text() == guide.message("problem_notified", {"reply_when": promise})
    assert bot.db_rows("SELECT problem, step FROM handoffs") == [(problem.label, 2)]
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        assert problem.label in bot.last_text(chat)


@pytest.mark.parametrize(
    ("moment", "opening_key", "values"),
    [
        # Tuesday 20:00 in Santiago (UTC-3): tomorrow at 9.
        (datetime(2026, 11, 24, 23, 0, tzinfo=UTC), "opening_tomorrow", {"time": "9:00"}),
        # Tuesday 7:30: today at 9.
        (datetime(2026, 11, 24, 10, 30, tzinfo=UTC), "opening_today", {"time": "9:00"}),
        # Saturday noon: Monday.
        (
            datetime(2026, 11, 28, 15, 0, tzinfo=UTC),
            "opening_weekday",
            {"time": "9:00", "weekday": "lunes"},
        ),
    ],
)
async def test_outside_firm_hours_the_client_is_told_when_they_will_answer(
    tmp_path: Path, moment: datetime, opening_key: str, values: dict[str, str]
) -> None:
    clock = FakeClock(moment)
    bot = await Harness(make_settings(tmp_path, firm_hours="9-18"), clock).boot()
    try:
        guide = bot.deps.guide
        await bot.reach_step(3)
        await bot.press("pb:3:whichrut:firm")
        label = guide.message("firm_hours_label", opens="9:00", closes="18:00")
        promise = guide.message(
            "reply_closed", {"firm_hours": label, "opening": guide.message(opening_key, **values)}
        )
        assert bot.last_text() == guide.message("problem_notified", {"reply_when": promise})
    finally:
        await bot.close()


async def test_without_firm_hours_no_time_is_promised(tmp_path: Path, clock: FakeClock) -> None:
    bot = await Harness(make_settings(tmp_path, firm_hours=""), clock).boot()
    try:
        await bot.reach_step(3)
        await bot.press("pb:3:whichrut:firm")
        promise = bot.deps.guide.message("reply_anytime")
        assert bot.last_text() == bot.deps.guide.message(
            "problem_notified", {"reply_when": promise}
        )
    finally:
        await bot.close()


async def test_a_free_text_problem_warns_about_passwords_and_reaches_the_firm(
    bot: Harness,
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(4)
    await bot.press("pb:4:other")
    other = guide.problem("other")
    assert other is not None and other.ask_text
    assert bot.last_text() == guide.problem_answer(other, RUT, 4)
    assert bot.db_rows("SELECT COUNT(*) FROM handoffs WHERE closed_at IS NULL") == [(1,)]


async def test_listed_asks_for_a_screenshot_and_offers_no_way_to_count_it_done(
    bot: Harness,
) -> None:
    await bot.reach_step(4)
    await bot.press("pb:4:listed")
    offered = button_data(bot.request.last(CLIENT))
    assert "pb:4:listed:proof" in offered
    assert not [data for data in offered if data.startswith("g:")]
    await bot.press("pb:4:listed:proof")
    [(completed,)] = bot.db_rows(
        "SELECT completed_at FROM authorizations WHERE company_rut = ?", (RUT,)
    )
    assert completed is None
    assert len(bot.texts(FIRM_CHAT)) == 1  # the problem, for the firm to check


async def test_had_is_not_accepted_at_other_steps(bot: Harness) -> None:
    await bot.reach_step(6)
    before = bot.db_snapshot()
    await bot.press("g:6:had")
    assert bot.db_snapshot()["authorizations"] == before["authorizations"]


def test_no_answer_advises_more_permissions_than_the_configured_ones() -> None:
    extra = ("Solicitar Folio", "Anular Folio", "Enviar Doctos", "marque todas", "marque todos")
    for problem in guide_tables()["problems"]:
        for words in extra:
            assert words.lower() not in problem["answer"].lower(), (problem["key"], words)


# --- closing the loop --------------------------------------------------------------------


async def test_step_7_asks_for_an_optional_screenshot_and_done_offers_another_company(
    bot: Harness,
) -> None:
    guide = bot.deps.guide
    await bot.reach_step(7)
    await bot.send("photo")
    assert bot.last_text() == guide.step(7, RUT)  # the step again, after the thanks
    await bot.press("g:7:yes")
    done = bot.request.last(CLIENT)
    assert done.text == guide.message("done", company_rut="76.086.428-5")
    for permission in bot.settings.permissions:
        assert permission in done.text
    assert button_data(done) == ["st:another"]
    await bot.press("st:another")
    assert bot.last_text() == guide.message("ask_rut")
    await bot.say("77.777.777-7")
    assert bot.last_text() == guide.message("rut_confirm", company_rut="77.777.777-7")


# --- the words ---------------------------------------------------------------------------


def test_every_text_a_client_reads_says_usted() -> None:
    tables = guide_tables()
    texts = [(f"messages.{k}", v) for k, v in tables["messages"].items() if not FIRM_ONLY.match(k)]
    texts += [
        (f"buttons.{k}", v) for k, v in tables["buttons"].items() if not FIRM_ONLY_BUTTONS.match(k)
    ]
    texts += [(f"steps[{i}]", s["text"]) for i, s in enumerate(tables["steps"], start=1)]
    texts += [(f"problems.{p['key']}", p["answer"]) for p in tables["problems"]]
    texts += [(f"problems.{p['key']}.label", p["label"]) for p in tables["problems"]]
    offending = [(where, m.group(0)) for where, text in texts for m in TU_FORMS.finditer(text)]
    assert offending == []


def test_each_step_says_what_the_client_sees_before_what_to_press() -> None:
    for number, step in enumerate(guide_tables()["steps"], start=1):
        text = step["text"]
        if number == 1:
            continue  # the client is not on the SII's page yet
        seeing = min(i for i in (text.find("Verá"), text.find("¿Ve ")) if i >= 0)
        pressing = [i for i in (text.find("presione"), text.find("Presione")) if i >= 0]
        assert not pressing or seeing < min(pressing), number


async def test_a_guide_with_every_text_changed_still_walks_the_happy_path(
    tmp_path: Path, clock: FakeClock
) -> None:
    tables = DEFAULT_GUIDE_PATH.read_text(encoding="utf-8")
    # Prefix every text with a marker: the suite must not depend on the packaged wording.
    reworded = re.sub(r'= """', '= """[R] ', tables)
    reworded = re.sub(
        r'^(?!key |image |menu )(\w+) = "(?!")', r'\1 = "[R] ', reworded, flags=re.MULTILINE
    )
    path = tmp_path / "reworded.toml"
    path.write_text(reworded, encoding="utf-8")
    bot = await Harness(make_settings(tmp_path, guide_path=path), clock).boot()
    try:
        guide = bot.deps.guide
        await bot.say("/start")
        assert bot.texts() == [guide.message("welcome"), guide.message("ask_device")]
        assert all(text.startswith("[R] ") for text in bot.texts())
        await bot.press("dev:pc")
        await bot.say(RUT)
        await bot.press("rut:ok")
        await bot.steps_from(1, 7)
        assert bot.last_text() == guide.step(7, RUT)
        # Even the times offered by "Recordármelo después" are the guide's words.
        await bot.press("later:menu")
        labels = [b["text"] for b in buttons(bot.request.last(CLIENT))]
        assert labels and all(label.startswith("[R] ") for label in labels)
        await bot.press("g:7:yes")
        assert bot.last_text() == guide.message("done", company_rut="76.086.428-5")
        assert bot.last_text().startswith("[R] ")
        assert len(bot.texts(FIRM_CHAT)) == 1
    finally:
        await bot.close()
