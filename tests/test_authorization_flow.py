"""The guided authorization, driven end to end through the real Application."""

from tests.conftest import CLIENT, FIRM_CHAT, FIRM_MEMBER, Harness
from tests.fake_telegram import button_data, buttons

RUT = "76086428-5"


async def test_happy_path_records_completion_and_tells_the_firm(bot: Harness) -> None:
    await bot.say("/start")
    welcome = "\n".join(bot.texts())
    assert "pymecontadores.tk" in welcome
    assert "5 minutos" in welcome
    assert "computador" in welcome and "certificado digital" in welcome
    assert "RUT de la empresa" in bot.last_text()

    await bot.say("76.086.428-5")
    assert "<b>76.086.428-5</b>" in bot.last_text()
    assert button_data(bot.request.last(CLIENT)) == ["rut:ok", "rut:edit"]

    await bot.press("rut:ok")
    step1 = bot.request.last(CLIENT)
    assert "Paso 1 de 7" in step1.params["text"]
    urls = [b.get("url") for b in buttons(step1) if "url" in b]
    assert urls == ["https://palena.sii.cl/cvc_cgi/dte/eu_enrola_usuarios"]

    for step in range(1, 6):
        await bot.press(f"g:{step}:next")
        assert f"Paso {step + 1} de 7" in bot.last_text()
        if step + 1 == 3:
            assert "<code>76086428-5</code>" in bot.last_text()
        if step + 1 == 5:
            text = bot.last_text()
            assert "<code>13322924-8</code>" in text and "ALEX BRITO MARDONES" in text
            for permission in ("Usuario Administrador", "Firmar Documentos", "Registro"):
                assert permission in text
    step6 = bot.last_text()
    assert "CONFIRMACION USUARIO AUTORIZADO" in step6
    assert "ALEX PATRICIO BRITO MARDONES" in step6 and "Grabar Usuario" in step6

    await bot.press("g:6:save")
    assert "Paso 7 de 7" in bot.last_text()
    bot.clock.advance(minutes=7)
    await bot.press("g:7:yes")
    assert "¡Listo!" in bot.last_text()

    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.completed_at == bot.clock.now()
    for chat in (FIRM_CHAT, FIRM_MEMBER):
        notice = bot.last_text(chat)
        assert "<code>76.086.428-5</code>" in notice
        assert "Juana" in notice and "@juana_pyme" in notice and str(CLIENT) in notice
        assert "24-11-2026 12:07 (hora de Chile)" in notice
        assert "Duración: 7 min" in notice
    assert await bot.repository.conversation(CLIENT, CLIENT) is None


async def test_pressed_buttons_are_removed_and_answered(bot: Harness) -> None:
    await bot.say("/start")
    await bot.say(RUT)
    await bot.press("rut:ok", message_id=55)
    methods = [call.method for call in bot.request.calls]
    assert "answerCallbackQuery" in methods
    edits = [c for c in bot.request.calls if c.method == "editMessageReplyMarkup"]
    assert edits and edits[-1].params["message_id"] == 55


async def test_data_mismatch_at_step_6_returns_to_step_5(bot: Harness) -> None:
    await bot.reach_step(6)
    await bot.press("g:6:mismatch")
    texts = bot.texts()
    assert "Modificar Datos" in texts[-2]
    assert "Paso 5 de 7" in texts[-1]
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.step == 5


async def test_not_saved_at_step_7_guides_and_offers_the_way_back(bot: Harness) -> None:
    await bot.reach_step(7)
    await bot.press("g:7:no")
    assert "Grabar Usuario" in bot.last_text()
    assert button_data(bot.request.last(CLIENT)) == ["g:7:back5", "g:7:yes"]
    await bot.press("g:7:back5")
    assert "Paso 5 de 7" in bot.last_text()


async def test_back_buttons_move_one_step_back(bot: Harness) -> None:
    await bot.reach_step(3)
    await bot.press("g:3:back")
    assert "Paso 2 de 7" in bot.last_text()
    await bot.press("g:2:back")
    await bot.press("g:1:back")
    assert "76.086.428-5" in bot.last_text()
    assert button_data(bot.request.last(CLIENT)) == ["rut:ok", "rut:edit"]


async def test_stale_and_forged_buttons_never_move_the_state(bot: Harness) -> None:
    await bot.reach_step(4)
    for data in ("g:2:next", "g:4:save", "g:7:yes", "g:9:next", "rut:ok", "zz", "g:4:x" * 10):
        bot.request.clear()
        await bot.press(data)
        answers = [c for c in bot.request.calls if c.method == "answerCallbackQuery"]
        assert answers and "paso 4 de 7" in answers[0].params["text"]
        assert "Paso 4 de 7" in bot.last_text()
        authorization = await bot.repository.authorization(RUT)
        assert authorization is not None and authorization.step == 4
        assert authorization.completed_at is None


async def test_a_stranger_cannot_press_someone_elses_buttons(bot: Harness) -> None:
    await bot.reach_step(7)
    await bot.press("g:7:yes", user=31337)
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.completed_at is None
    assert bot.texts(FIRM_CHAT) == []


async def test_duplicate_final_update_completes_once(bot: Harness) -> None:
    await bot.reach_step(7)
    await bot.press("g:7:yes", update_id=900_001)
    await bot.press("g:7:yes", update_id=900_001)
    await bot.press("g:7:yes")
    assert len(bot.texts(FIRM_CHAT)) == 1
    assert "ya quedó registrada" in bot.last_text()
    [completions] = bot.db_rows("SELECT COUNT(*) FROM events WHERE kind = 'completed'")
    [notices] = bot.db_rows("SELECT COUNT(*) FROM outbox")
    assert completions == (1,)
    assert notices == (2,)  # one per firm chat


async def test_completed_company_is_not_started_again_unless_insisted(bot: Harness) -> None:
    await bot.reach_step(7)
    await bot.press("g:7:yes")
    await bot.say("/start")
    await bot.say(RUT)
    await bot.press("rut:ok")
    assert "ya autorizó" in bot.last_text() and "24-11-2026" in bot.last_text()
    assert button_data(bot.request.last(CLIENT)) == ["rep:no", "rep:yes"]
    await bot.press("rep:yes")
    assert "Paso 1 de 7" in bot.last_text()
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.completed_at is None


async def test_cancel_ends_politely_and_start_offers_to_resume(bot: Harness) -> None:
    await bot.reach_step(3)
    await bot.say("/cancelar")
    assert "/start" in bot.last_text()
    assert await bot.repository.conversation(CLIENT, CLIENT) is None
    await bot.say("/start")
    assert any("paso 3 de 7" in text for text in bot.texts()[-3:])
    await bot.press("st:resume")
    assert "Paso 3 de 7" in bot.last_text()


async def test_start_mid_step_offers_to_continue_or_start_over(bot: Harness) -> None:
    await bot.reach_step(4)
    await bot.say("/start")
    assert "paso 4 de 7" in bot.last_text()
    assert button_data(bot.request.last(CLIENT)) == ["st:keep", "st:over"]
    await bot.press("st:keep")
    assert "Paso 4 de 7" in bot.last_text()
    await bot.say("/start")
    await bot.press("st:over")
    assert "RUT de la empresa" in bot.last_text()


async def test_help_mid_step_explains_and_repeats_the_step(bot: Harness) -> None:
    await bot.reach_step(2)
    await bot.say("/ayuda")
    texts = bot.texts()
    assert "/cancelar" in texts[-2]
    assert "Paso 2 de 7" in texts[-1]


async def test_a_press_delivered_again_shows_the_current_step_without_a_warning(
    bot: Harness,
) -> None:
    # As after a crash between the committed step and its message: the press comes again.
    await bot.reach_step(4)
    bot.request.clear()
    await bot.press("g:3:next")
    answers = [c for c in bot.request.calls if c.method == "answerCallbackQuery"]
    assert answers and "text" not in answers[0].params  # no "ese botón ya no corresponde"
    assert bot.texts() == [bot.deps.guide.step(4, RUT)]
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.step == 4


async def test_repeating_a_completed_authorization_drops_the_old_proof(bot: Harness) -> None:
    await bot.reach_step(7)
    await bot.send("photo")
    await bot.press("g:7:yes")
    await bot.say("/start")
    await bot.say(RUT)
    await bot.press("rut:ok")
    await bot.press("rep:yes")
    authorization = await bot.repository.authorization(RUT)
    assert authorization is not None and authorization.proof_file_id is None
