"""The real `python -m bot` process, driven over HTTP through a loopback Bot API server."""

from __future__ import annotations

import html
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bot.guide.guide import load_guide
from bot.wiring.assembly import firm_facts
from tests.botapi import BotApiServer
from tests.support.harness import make_settings

CLIENT = 610_001
FIRM = 620_002
RUT = "76.086.428-5"
COMPACT_RUT = "76086428-5"
# The process runs with the default settings, so it speaks with the packaged guide.
GUIDE = load_guide(None, firm_facts(make_settings(Path("unused"))))


def shown(html_text: str) -> str:
    """The first line of a guide text as the client's app shows it (a substring to wait for)."""
    return html.unescape(re.sub(r"<[^>]+>", "", html_text)).split("\n")[0]


ASK_DEVICE = shown(GUIDE.message("ask_device"))
CONFIRM = shown(GUIDE.message("rut_confirm", company_rut=RUT))
DONE = shown(GUIDE.message("done", company_rut=RUT))
ALREADY = shown(GUIDE.message("already_completed", company_rut=RUT))


def step_shown(number: int) -> str:
    """How step `number`'s caption begins."""
    return shown(GUIDE.step(number, COMPACT_RUT))


# The firm notice's first line has no placeholder that varies.
NOTICE = {
    "company_rut": RUT,
    "client_name": "",
    "client_username": "",
    "client_id": "",
    "completed_at": "",
    "duration": "",
}


def reminder_shown(step: int) -> str:
    """How the reminder for an authorization left at `step` begins."""
    return shown(GUIDE.message("reminder_step", company_rut=RUT, step=step))


class BotProcess:
    """Starts, kills and restarts `python -m bot` against one server and one database."""

    def __init__(self, server: BotApiServer, tmp_path: Path, **env: str) -> None:
        self.server = server
        self.log_path = tmp_path / "bot.log"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            **server.bot_env(),
            "FIRM_CHAT_IDS": str(FIRM),
            "DATABASE_PATH": str(tmp_path / "data" / "bot.sqlite3"),
            "QUIET_HOURS": "",
            "REMINDER_SCHEDULE": "",
            "LOG_LEVEL": "INFO",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.cwd = tmp_path

    def start(self) -> None:
        """Start the bot and wait until it long-polls."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot"], env=self.env, cwd=self.cwd, stdout=log, stderr=log
        )
        self.server.wait_until_polling(timeout=20)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def terminate(self) -> float:
        """SIGTERM, and return how long the process took to exit."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=15)
        return time.monotonic() - started

    def log(self) -> str:
        """Everything the process wrote."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def bot_process(tmp_path: Path) -> Iterator[BotProcess]:
    """A Bot API server on loopback and the bot process talking to it."""
    with BotApiServer() as server:
        process = BotProcess(server, tmp_path)
        process.start()
        try:
            yield process
        finally:
            if process.process is not None and process.process.poll() is None:
                process.kill()


def _say(server: BotApiServer, text: str, expect: str) -> dict[str, Any]:
    mark = server.mark()
    server.send_text(CLIENT, text, first_name="Juana", username="juana_pyme")
    return server.wait_for(expect, CLIENT, after=mark, timeout=15)


def _press(server: BotApiServer, message: dict[str, Any], data: str, expect: str) -> dict[str, Any]:
    mark = server.mark()
    server.press_button(CLIENT, message["message_id"], data)
    return server.wait_for(expect, CLIENT, after=mark, timeout=15)


def test_whole_flow_survives_sigkill_at_every_step(bot_process: BotProcess) -> None:
    server = bot_process.server
    _say(server, "/start", ASK_DEVICE)
    bot_process.kill()
    bot_process.start()
    confirm = _say(server, RUT, CONFIRM)
    bot_process.kill()
    bot_process.start()
    step = _press(server, confirm, "rut:ok", step_shown(1))
    assert step.get("photo"), "each step is a picture of its screen"
    for number in range(1, 7):
        bot_process.kill()
        bot_process.start()
        action = "save" if number == 6 else "next"
        step = _press(server, step, f"g:{number}:{action}", step_shown(number + 1))
    bot_process.kill()
    bot_process.start()
    _press(server, step, "g:7:yes", DONE)
    notice = server.wait_for(shown(GUIDE.message("firm_completed", **NOTICE)), FIRM, timeout=15)
    assert "76.086.428-5" in notice["text"] and "@juana_pyme" in notice["text"]
    # "¡Listo!" goes out before the firm's notice: a kill between the notice reaching the
    # firm and its being recorded would send it once more (at least once). Kill once the
    # bot has recorded it, so no notice may repeat.
    _wait_until_recorded(bot_process)
    bot_process.kill()
    bot_process.start()
    # Pressing the final button again after a restart completes nothing twice.
    _press_stale(server, step, "g:7:yes")
    time.sleep(1)
    assert server.texts_to(FIRM).count(notice["text"]) == 1
    assert server.bot_env()["TELEGRAM_BOT_TOKEN"] not in bot_process.log()


def _wait_until_recorded(process: BotProcess, timeout: float = 10) -> None:
    """Wait until every firm notice in the bot's outbox is recorded as delivered."""
    database = process.cwd / "data" / "bot.sqlite3"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            if db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone() == (0,):
                return
        time.sleep(0.05)
    raise AssertionError("the firm's notice was never recorded as delivered")


def _press_stale(server: BotApiServer, message: dict[str, Any], data: str) -> None:
    mark = server.mark()
    server.press_button(CLIENT, message["message_id"], data, validate=False)
    server.wait_for(ALREADY, CLIENT, after=mark, timeout=15)


def test_reminders_arrive_and_continue_resumes_across_sigkill(tmp_path: Path) -> None:
    with BotApiServer() as server:
        process = BotProcess(
            server, tmp_path, REMINDER_SCHEDULE="2s,4s", REMINDER_SWEEP_SECONDS="0.5"
        )
        process.start()
        try:
            _say(server, "/start", ASK_DEVICE)
            confirm = _say(server, RUT, CONFIRM)
            step = _press(server, confirm, "rut:ok", step_shown(1))
            step = _press(server, step, "g:1:next", step_shown(2))
            process.kill()
            process.start()
            reminder = server.wait_for(reminder_shown(2), CLIENT, timeout=15)
            process.kill()
            process.start()
            _press(server, reminder, "st:resume", step_shown(2))
            second = server.wait_for(reminder_shown(2), CLIENT, timeout=15, after=server.mark())
            mark = server.mark()
            server.press_button(CLIENT, second["message_id"], "rem:stop")
            server.wait_for(shown(GUIDE.message("opted_out")), CLIENT, after=mark, timeout=15)
            silence = server.mark()
            time.sleep(6)  # longer than the schedule's longest delay (4 s)
            later = [m for m in server.messages_to(CLIENT) if m["_seq"] > silence]
            assert later == []
        finally:
            process.kill()


def _answer_held(server: BotApiServer, method: str, send: Callable[[], int]) -> tuple[int, int]:
    """Have Telegram answer the next `method` with a 429 (wait 30 s) while `send()` is handled.

    Returns the update id `send` made and the message mark from before it, once the bot has
    committed the update and its answer is waiting: the moment to kill it.
    """
    server.fail_next(method, 429, retry_after=30)
    calls = server.call_mark()
    mark = server.mark()
    update_id = send()
    server.wait_for_call(method, lambda call: call["status"] == 429, after=calls)
    return update_id, mark


def test_a_message_sent_just_before_sigkill_is_answered_after_restart(
    bot_process: BotProcess,
) -> None:
    server = bot_process.server
    _say(server, "/start", ASK_DEVICE)
    # Telegram asks the bot to wait 30 s before answering: the RUT is fetched, its
    # processing is under way, and the process is killed right then.
    update_id, mark = _answer_held(server, "sendMessage", lambda: server.send_text(CLIENT, RUT))
    bot_process.kill()
    assert update_id not in server.acknowledged_update_ids

    bot_process.start()
    server.wait_for(CONFIRM, CLIENT, after=mark, timeout=20)
    server.wait_acknowledged(update_id, timeout=20)
    assert server.delivery_count(update_id) == 2


def test_sigterm_stops_within_ten_seconds(bot_process: BotProcess) -> None:
    _say(bot_process.server, "/start", ASK_DEVICE)
    assert bot_process.terminate() < 10
    assert "Traceback" not in bot_process.log()


REFUSED = "Configuration error: TELEGRAM_BOT_TOKEN was refused by the Bot API\n"


def test_a_token_refused_at_start_ends_with_one_line_and_exit_2(tmp_path: Path) -> None:
    with BotApiServer() as server:
        process = BotProcess(server, tmp_path, TELEGRAM_BOT_TOKEN="987654321:" + "R" * 35)
        process.process = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            env=process.env,
            cwd=process.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, stderr = process.process.communicate(timeout=20)
    assert process.process.returncode == 2
    assert stderr.decode() == REFUSED


def test_a_token_revoked_while_running_ends_like_one_refused_at_start(
    bot_process: BotProcess,
) -> None:
    server = bot_process.server
    _say(server, "/start", ASK_DEVICE)
    assert bot_process.process is not None
    server.token = "987654321:" + "N" * 35  # Telegram forgot the old one
    assert bot_process.process.wait(timeout=20) == 2
    log = bot_process.log()
    # The same one line as a token refused at start, and an orderly shutdown: no traceback,
    # the Application stopped before it was shut down, the jobs with it.
    assert log.endswith(REFUSED)
    assert "Traceback" not in log
    assert "still running" not in log


OTHER = 610_003


def _events(process: BotProcess, kind: str) -> list[tuple[Any, ...]]:
    database = process.cwd / "data" / "bot.sqlite3"
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return db.execute(
            "SELECT company_rut, step FROM events WHERE kind = ? ORDER BY id", (kind,)
        ).fetchall()


def test_a_kill_between_the_handlers_commit_and_its_answer_applies_the_press_once(
    bot_process: BotProcess,
) -> None:
    server = bot_process.server
    _say(server, "/start", ASK_DEVICE)
    confirm = _say(server, RUT, CONFIRM)
    step = _press(server, confirm, "rut:ok", step_shown(1))
    step = _press(server, step, "g:1:next", step_shown(2))
    # The press is applied and committed (step 3, with its "processed" marker), then its
    # answer is held by Telegram's 429 and the process dies before it goes out.
    press = step["message_id"]
    _, mark = _answer_held(
        server, "sendPhoto", lambda: server.press_button(CLIENT, press, "g:2:next")
    )
    bot_process.kill()

    bot_process.start()
    # Delivered again: not applied a second time (still step 3, one event), but answered.
    shown_again = server.wait_for(step_shown(3), CLIENT, after=mark, timeout=20)
    assert shown_again.get("photo")
    assert _events(bot_process, "step") == [(COMPACT_RUT, 2), (COMPACT_RUT, 3)]
    _press(server, shown_again, "g:3:next", step_shown(4))


def test_a_kill_with_a_batch_half_processed_applies_each_update_once(
    bot_process: BotProcess,
) -> None:
    server = bot_process.server
    _say(server, "/start", ASK_DEVICE)
    # The client's RUT is committed but its answer hangs (429); meanwhile another client's
    # two updates are processed and answered. Telegram may not be told past the first one,
    # so all three come again after the kill.
    _, mark = _answer_held(server, "sendMessage", lambda: server.send_text(CLIENT, RUT))
    other = server.mark()
    server.send_text(OTHER, "/start", first_name="Pedro")
    server.wait_for(ASK_DEVICE, OTHER, after=other, timeout=15)
    server.send_text(OTHER, "96.543.210-8", first_name="Pedro")
    server.wait_for(shown(GUIDE.message("rut_confirm", company_rut="96.543.210-8")), OTHER)
    bot_process.kill()

    bot_process.start()
    server.wait_for(CONFIRM, CLIENT, after=mark, timeout=20)
    texts = server.texts_to(OTHER)
    # The other client's /start was answered and noted so by the next commit: it is neither
    # applied nor shown again (one welcome, one question); only the last answer before the
    # kill may be shown once more.
    assert texts.count(texts[0]) == 1
    assert sum(ASK_DEVICE in t for t in texts) == 1
