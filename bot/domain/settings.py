"""Configuration read from the environment (and an optional .env file)."""

import re
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.domain.rut import RutError, parse_rut
from bot.domain.schedule import (
    FirmHours,
    QuietHours,
    parse_delays,
    parse_firm_hours,
    parse_local_time,
    parse_quiet_hours,
)

# Telegram tokens are "<bot id>:<secret>" as @BotFather issues them: digits (8 to 10 today),
# and a secret of letters, digits, "_" or "-" (35 today). Only the shape is checked, not those
# lengths, which Telegram may change: a secret of at least 20 still catches a cut-off paste.
_TOKEN_PATTERN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,}$")
MALFORMED_TOKEN = "malformed token: expected '<digits>:<secret>' as given by @BotFather"
TOKEN_NOT_SET = "TELEGRAM_BOT_TOKEN is required but not set"

DEFAULT_PORTAL_URL = "https://palena.sii.cl/cvc_cgi/dte/eu_enrola_usuarios"
DEFAULT_PERMISSIONS = ("Usuario Administrador", "Firmar Documentos", "Registro")


class SettingsError(Exception):
    """Settings that cannot be used, described in one line naming the variable."""


class Settings(BaseSettings):
    """Everything the bot can be configured with; built once in main()."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # None: not set (or blank). Only running the bot needs it; backup, restore, --check,
    # preview and the health check do not (load_settings(token_required=False)).
    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    firm_chat_ids: Annotated[tuple[int, ...], NoDecode] = ()
    database_path: Path = Path("data/authorizations.sqlite3")
    reminder_schedule: Annotated[tuple[timedelta, ...], NoDecode] = parse_delays("1d,3d,7d")
    quiet_hours: Annotated[QuietHours | None, NoDecode] = parse_quiet_hours("21-9")
    timezone: Annotated[ZoneInfo, NoDecode] = ZoneInfo("America/Santiago")
    # When the firm answers clients who asked for help (Monday to Friday, in TIMEZONE).
    firm_hours: Annotated[FirmHours | None, NoDecode] = parse_firm_hours("9-18")
    reminder_sweep_seconds: float = Field(default=60.0, gt=0, le=86_400, allow_inf_nan=False)
    # Reminders are paced below Telegram's ~30 messages/s so replies to clients keep room.
    reminder_rate: float = Field(default=20.0, gt=0, le=30)
    digest_time: Annotated[time, NoDecode] = time(9, 0)
    invitation_ttl: Annotated[timedelta, NoDecode] = timedelta(days=14)
    # Personal data of unfinished, inactive authorizations is purged after this many days.
    data_retention_days: int = Field(default=180, ge=1, le=3650)
    # Daily backups kept in backups/ beside the database; older ones are deleted.
    backup_keep: int = Field(default=14, ge=1, le=365)
    firm_name: str = Field(default="pymecontadores.tk", min_length=1)
    representative_name: str = Field(default="ALEX BRITO MARDONES", min_length=1)
    representative_full_name: str = Field(default="ALEX PATRICIO BRITO MARDONES", min_length=1)
    representative_rut: str = "13322924-8"
    permissions: Annotated[tuple[str, ...], NoDecode] = DEFAULT_PERMISSIONS
    portal_url: str = DEFAULT_PORTAL_URL
    guide_path: Path | None = None
    log_level: str = "INFO"

    @field_validator("telegram_bot_token", mode="before")
    @classmethod
    def _token_shape(cls, value: Any) -> Any:
        if value is None:
            return None
        token = (value.get_secret_value() if isinstance(value, SecretStr) else str(value)).strip()
        if not token:
            return None
        if not _TOKEN_PATTERN.match(token):
            raise ValueError(MALFORMED_TOKEN)
        return SecretStr(token)

    @field_validator("telegram_api_url", "portal_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value

    @field_validator("firm_chat_ids", mode="before")
    @classmethod
    def _chat_ids(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            if not re.fullmatch(r"-?[0-9]{1,18}", item):
                raise ValueError(f"not a Telegram chat id: {item!r}")
        return tuple(int(item) for item in items)

    @field_validator("reminder_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> Any:
        return parse_delays(value) if isinstance(value, str) else value

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _quiet_hours(cls, value: Any) -> Any:
        return parse_quiet_hours(value) if isinstance(value, str) else value

    @field_validator("firm_hours", mode="before")
    @classmethod
    def _firm_hours(cls, value: Any) -> Any:
        return parse_firm_hours(value) if isinstance(value, str) else value

    @field_validator("invitation_ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        delays = parse_delays(value)
        if len(delays) != 1:
            raise ValueError("give one duration, like '14d' or '12h'")
        return delays[0]

    @field_validator("digest_time", mode="before")
    @classmethod
    def _digest_time(cls, value: Any) -> Any:
        return parse_local_time(value.strip()) if isinstance(value, str) else value

    @field_validator("timezone", mode="before")
    @classmethod
    def _zone(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None

    @field_validator("representative_rut")
    @classmethod
    def _rut(cls, value: str) -> str:
        try:
            return parse_rut(value)
        except RutError:
            raise ValueError(f"not a valid RUT: {value!r}") from None

    @field_validator("permissions", mode="before")
    @classmethod
    def _permissions(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(item.strip() for item in value.split(",") if item.strip())
            if not value:
                raise ValueError("at least one permission is needed")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return value

    @property
    def token(self) -> str:
        """Return the bot token (keep it out of logs); SettingsError if it is not set."""
        if self.telegram_bot_token is None:
            raise SettingsError(TOKEN_NOT_SET)
        return self.telegram_bot_token.get_secret_value()


def load_settings(*, token_required: bool = True, **overrides: Any) -> Settings:
    """Build Settings from the environment, raising SettingsError with one clear line.

    With `token_required` (running the bot), a TELEGRAM_BOT_TOKEN not set is an error too.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
    if token_required and settings.telegram_bot_token is None:
        raise SettingsError(TOKEN_NOT_SET)
    return settings


def describe_validation_error(exc: ValidationError) -> str:
    """Summarize a settings ValidationError on one line, never echoing the values given."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = str(error["loc"][0]).upper() if error["loc"] else "settings"
        if error["type"] == "missing":
            problems.append(f"{name} is required but not set")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {message}")
    return "; ".join(problems)
