"""Settings from the environment, and how the process fails on bad configuration."""

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.domain.schedule import QuietHours
from bot.domain.settings import Settings, SettingsError, load_settings
from bot.wiring.logging_setup import configure_logging

VALID_TOKEN = "123456789:AAHvalidLOOKINGtoken_for-tests_abcd"

# Every variable Settings reads; removed so the machine's environment cannot leak in.
VARIABLES = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_URL",
    "FIRM_CHAT_IDS",
    "DATABASE_PATH",
    "REMINDER_SCHEDULE",
    "QUIET_HOURS",
    "TIMEZONE",
    "REMINDER_SWEEP_SECONDS",
    "REMINDER_RATE",
    "DIGEST_TIME",
    "FIRM_NAME",
    "REPRESENTATIVE_NAME",
    "REPRESENTATIVE_FULL_NAME",
    "REPRESENTATIVE_RUT",
    "PERMISSIONS",
    "PORTAL_URL",
    "GUIDE_PATH",
    "LOG_LEVEL",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment with only a valid token, in an empty directory (no .env)."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", VALID_TOKEN)
    return monkeypatch


# --- load_settings ----------------------------------------------------------------------


def test_defaults(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.token == VALID_TOKEN
    assert VALID_TOKEN not in repr(settings) and VALID_TOKEN not in str(settings)
    assert settings.firm_name == "pymecontadores.tk"
    assert settings.representative_name == "ALEX BRITO MARDONES"
    assert settings.representative_full_name == "ALEX PATRICIO BRITO MARDONES"
    assert settings.representative_rut == "13322924-8"
    assert settings.permissions == ("Usuario Administrador", "Firmar Documentos", "Registro")
    assert settings.portal_url == "https://palena.sii.cl/cvc_cgi/dte/eu_enrola_usuarios"
    assert settings.database_path == Path("data/authorizations.sqlite3")
    assert settings.reminder_schedule == (timedelta(days=1), timedelta(days=3), timedelta(days=7))
    assert settings.quiet_hours == QuietHours(21, 9)
    assert settings.timezone.key == "America/Santiago"
    assert settings.reminder_sweep_seconds == 60
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert settings.firm_chat_ids == ()
    assert settings.guide_path is None
    assert settings.log_level == "INFO"


def test_representative_rut_is_normalized(env: pytest.MonkeyPatch) -> None:
    env.setenv("REPRESENTATIVE_RUT", "13.322.924-8")
    assert load_settings().representative_rut == "13322924-8"
    env.setenv("REPRESENTATIVE_RUT", "rut 10.000.013-k")
    assert load_settings().representative_rut == "10000013-K"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("-100123, 456", (-100123, 456)),
        ("-100123,456", (-100123, 456)),
        (" 42 ", (42,)),
        ("", ()),
        ("1,,2,", (1, 2)),
    ],
)
def test_firm_chat_ids_are_parsed(
    env: pytest.MonkeyPatch, raw: str, expected: tuple[int, ...]
) -> None:
    env.setenv("FIRM_CHAT_IDS", raw)
    assert load_settings().firm_chat_ids == expected


@pytest.mark.parametrize("raw", ["abc", "12,abc", "1.5", "-", "@firm_group"])
def test_firm_chat_ids_that_are_not_ids_are_refused(env: pytest.MonkeyPatch, raw: str) -> None:
    env.setenv("FIRM_CHAT_IDS", raw)
    with pytest.raises(SettingsError, match=r"^FIRM_CHAT_IDS: "):
        load_settings()


@pytest.mark.parametrize("raw", ["", "  "])
def test_empty_quiet_hours_mean_none(env: pytest.MonkeyPatch, raw: str) -> None:
    env.setenv("QUIET_HOURS", raw)
    assert load_settings().quiet_hours is None


def test_other_values_are_parsed(env: pytest.MonkeyPatch) -> None:
    env.setenv("QUIET_HOURS", " 22 - 8 ")
    env.setenv("REMINDER_SCHEDULE", "30s, 2m,1h")
    env.setenv("TIMEZONE", "UTC")
    env.setenv("TELEGRAM_API_URL", "http://127.0.0.1:8081/")
    env.setenv("PERMISSIONS", "Uno, Dos")
    env.setenv("LOG_LEVEL", "debug")
    env.setenv("TELEGRAM_BOT_TOKEN", f"  {VALID_TOKEN}\n")
    settings = load_settings()
    assert settings.quiet_hours == QuietHours(22, 8)
    assert settings.reminder_schedule == (
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(hours=1),
    )
    assert settings.timezone.key == "UTC"
    assert settings.telegram_api_url == "http://127.0.0.1:8081"
    assert settings.permissions == ("Uno", "Dos")
    assert settings.log_level == "DEBUG"
    assert settings.token == VALID_TOKEN


def test_a_dotenv_file_in_the_working_directory_is_read(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.delenv("TELEGRAM_BOT_TOKEN")
    (tmp_path / ".env").write_text(
        f"TELEGRAM_BOT_TOKEN={VALID_TOKEN}\n"
        "FIRM_NAME=Contadores Ltda\n"
        "FIRM_CHAT_IDS=-100123, 456\n",
        encoding="utf-8",
    )
    settings = load_settings()
    assert settings.token == VALID_TOKEN
    assert settings.firm_name == "Contadores Ltda"
    assert settings.firm_chat_ids == (-100123, 456)


def test_environment_wins_over_the_dotenv_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("FIRM_NAME=From file\n", encoding="utf-8")
    env.setenv("FIRM_NAME", "From env")
    assert load_settings().firm_name == "From env"


def test_settings_are_frozen(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    with pytest.raises(ValueError):
        settings.firm_name = "other"  # type: ignore[misc]
    assert isinstance(settings, Settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TELEGRAM_BOT_TOKEN", "abc"),
        ("REMINDER_SCHEDULE", "abc"),
        ("QUIET_HOURS", "25-3"),
        ("TIMEZONE", "Mars/Olympus"),
        ("REPRESENTATIVE_RUT", "1-2"),
        ("TELEGRAM_API_URL", "ftp://example.org"),
        ("LOG_LEVEL", "loud"),
    ],
)
def test_load_settings_names_the_bad_variable(
    env: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    env.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(f"{variable}")
    assert "\n" not in message


@pytest.mark.parametrize("given", [None, "", "   ", "\n"])
def test_missing_or_blank_token_is_reported_as_not_set(
    env: pytest.MonkeyPatch, given: str | None
) -> None:
    if given is None:
        env.delenv("TELEGRAM_BOT_TOKEN")
    else:
        env.setenv("TELEGRAM_BOT_TOKEN", given)
    with pytest.raises(SettingsError, match=r"^TELEGRAM_BOT_TOKEN is required but not set$"):
        load_settings()
    # What needs no Telegram reads the same settings without it.
    settings = load_settings(token_required=False)
    assert settings.telegram_bot_token is None
    with pytest.raises(SettingsError, match="not set"):
        _ = settings.token


# --- the process: exit code 2 and one line ---------------------------------------------

SECRET_LOOKING = "98765:SuperSecretValue with space"


@dataclass(frozen=True)
class BadStart:
    """A configuration `python -m bot` must refuse, naming `variable`."""

    variable: str
    given: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)  # written in the working directory

    @property
    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in VARIABLES and not key.startswith("PYTHON")
        }
        if self.variable != "TELEGRAM_BOT_TOKEN":
            env["TELEGRAM_BOT_TOKEN"] = VALID_TOKEN
        env.update(self.given)
        return env


BAD_STARTS = {
    "missing token": BadStart("TELEGRAM_BOT_TOKEN", {}),
    "empty token": BadStart("TELEGRAM_BOT_TOKEN", {"TELEGRAM_BOT_TOKEN": ""}),
    "token abc": BadStart("TELEGRAM_BOT_TOKEN", {"TELEGRAM_BOT_TOKEN": "abc"}),
    "token 123:": BadStart("TELEGRAM_BOT_TOKEN", {"TELEGRAM_BOT_TOKEN": "123:"}),
    "token with space": BadStart("TELEGRAM_BOT_TOKEN", {"TELEGRAM_BOT_TOKEN": "with space:xx"}),
    "token secret-looking": BadStart("TELEGRAM_BOT_TOKEN", {"TELEGRAM_BOT_TOKEN": SECRET_LOOKING}),
    "schedule": BadStart("REMINDER_SCHEDULE", {"REMINDER_SCHEDULE": "abc"}),
    "quiet hours": BadStart("QUIET_HOURS", {"QUIET_HOURS": "25-3"}),
    "time zone": BadStart("TIMEZONE", {"TIMEZONE": "Mars/Olympus"}),
    "firm chats": BadStart("FIRM_CHAT_IDS", {"FIRM_CHAT_IDS": "abc"}),
    "representative rut": BadStart("REPRESENTATIVE_RUT", {"REPRESENTATIVE_RUT": "1-2"}),
    "guide missing": BadStart("GUIDE_PATH", {"GUIDE_PATH": "missing/guide.toml"}),
    "guide not toml": BadStart(
        "GUIDE_PATH", {"GUIDE_PATH": "guide.toml"}, {"guide.toml": "[messages\n"}
    ),
    "bad value in .env": BadStart(
        "QUIET_HOURS", {}, {".env": f"TELEGRAM_BOT_TOKEN={VALID_TOKEN}\nQUIET_HOURS=7\n"}
    ),
    "database path unusable": BadStart(
        "DATABASE_PATH",
        {
            "DATABASE_PATH": "not-a-directory/authorizations.sqlite3",
            "TELEGRAM_API_URL": "http://127.0.0.1:9",
        },
        {"not-a-directory": ""},
    ),
}


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int | None, str, str]]:
    """Run `python -m bot` once per bad configuration, all at the same time (it is faster)."""
    processes = {}
    for name, case in BAD_STARTS.items():
        cwd = tmp_path_factory.mktemp("start")
        for relative, content in case.files.items():
            (cwd / relative).write_text(content, encoding="utf-8")
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            env=case.environment,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results: dict[str, tuple[int | None, str, str]] = {}
    for name, process in processes.items():
        try:
            out, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            results[name] = (None, out, err)  # still running after 20 s: it did not refuse
            continue
        results[name] = (process.returncode, out, err)
    return results


def _assert_one_line_failure(name: str, started: dict[str, tuple[int | None, str, str]]) -> None:
    case = BAD_STARTS[name]
    returncode, stdout, stderr = started[name]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert returncode == 2, stderr
    assert len(lines) == 1, stderr
    assert case.variable in lines[0]
    assert "Traceback" not in stderr
    assert stdout == ""
    token = case.environment.get("TELEGRAM_BOT_TOKEN")
    if token:
        assert token not in stderr
        secret = token.split(":")[-1]
        assert not secret or secret not in stderr


@pytest.mark.parametrize("name", [name for name in BAD_STARTS if not name.startswith("database")])
def test_bad_configuration_exits_2_with_one_line(
    started: dict[str, tuple[int | None, str, str]], name: str
) -> None:
    _assert_one_line_failure(name, started)


def test_the_token_line_says_not_set_or_the_shape_expected(
    started: dict[str, tuple[int | None, str, str]],
) -> None:
    for name in ("missing token", "empty token"):
        assert started[name][2] == (
            "Configuration error: TELEGRAM_BOT_TOKEN is required but not set\n"
        )
    for name in ("token abc", "token 123:", "token with space", "token secret-looking"):
        assert started[name][2] == (
            "Configuration error: TELEGRAM_BOT_TOKEN: malformed token: expected "
            "'<digits>:<secret>' as given by @BotFather\n"
        )


def test_unusable_database_path_exits_2_with_one_line(
    started: dict[str, tuple[int | None, str, str]],
) -> None:
    _assert_one_line_failure("database path unusable", started)


# --- logging never shows the token ------------------------------------------------------


@contextmanager
def _configured_logging(level: str, token: str, tz: ZoneInfo | None = None) -> Iterator[None]:
    """Run configure_logging, then put back the handlers and levels it replaced."""
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "apscheduler")}
    configure_logging(level, token, tz)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        for name, saved in levels.items():
            logging.getLogger(name).setLevel(saved)


def test_logs_never_show_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("bot.test_redaction")
    with _configured_logging("INFO", VALID_TOKEN):
        logger.info("token is %s", VALID_TOKEN)
        logger.warning("calling https://api.telegram.org/bot%s/getUpdates", VALID_TOKEN)
        logger.info("another bot: https://api.telegram.org/bot555:OtherSecret_x-y/sendMessage")
        try:
            raise RuntimeError(f"request to /bot{VALID_TOKEN}/sendMessage failed ({VALID_TOKEN})")
        except RuntimeError:
            logger.exception("while sending")
    err = capsys.readouterr().err
    assert "Traceback" in err and "while sending" in err
    assert VALID_TOKEN not in err
    assert VALID_TOKEN.split(":")[1] not in err
    assert "OtherSecret_x-y" not in err
    assert err.count("[REDACTED]") >= 5
    assert "https://api.telegram.org/bot[REDACTED]/getUpdates" in err


def test_log_lines_are_stamped_in_timezone_with_their_utc_offset(
    capsys: pytest.CaptureFixture[str],
) -> None:
    santiago = ZoneInfo("America/Santiago")
    with _configured_logging("INFO", VALID_TOKEN, santiago):
        before = datetime.now(santiago)
        logging.getLogger("bot.test_stamp").warning("hello")
    [line] = capsys.readouterr().err.splitlines()
    stamp, rest = line.split(" ", 1)
    assert rest == "WARNING bot.test_stamp: hello"
    moment = datetime.fromisoformat(stamp)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", stamp)
    assert moment.utcoffset() == before.utcoffset()  # -03:00 or -04:00, as Santiago is now
    assert abs((moment - before).total_seconds()) < 5


def test_noisy_http_loggers_are_quietened() -> None:
    with _configured_logging("DEBUG", VALID_TOKEN):
        assert logging.getLogger().level == logging.DEBUG
        for name in ("httpx", "httpcore"):
            assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING
            assert not logging.getLogger(name).isEnabledFor(logging.INFO)
