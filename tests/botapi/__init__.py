"""A Telegram Bot API emulator for end-to-end tests of the bot (``python -m bot``).

Usage::

    from tests.botapi import BotApiServer

    with BotApiServer() as server:
        env = {**os.environ, **server.bot_env()}   # TELEGRAM_API_URL, TELEGRAM_BOT_TOKEN
        bot = subprocess.Popen([sys.executable, "-m", "bot"], env=env)
        server.send_text(42, "/start")
        reply = server.wait_for("Hola", chat_id=42)
        server.press_button(42, reply["message_id"], server.button_data(reply)[0])

See ``server.py`` for the Telegram behaviours it reproduces.

Why not an existing package (checked on PyPI, Python 3.11, python-telegram-bot 22.8):

* ``telemelya`` 0.2.2 (mock Telegram Bot API for BDD): a FastAPI service that needs Redis
  and MinIO (S3) and delivers updates by webhook only; it has no ``getUpdates`` long polling
  with offset acknowledgement, so a polling bot cannot use it, and it cannot run inside the
  test process.
* ``telegram-bot-unittest`` 0.4 (last release 2023): a Flask/waitress app whose
  ``getUpdates`` ignores ``offset``/``timeout`` (no long polling, no acknowledgement), a
  handful of methods, no callback queries, no fault injection; unmaintained.
* ``tg-auto-test`` 1.3.x: every release requires Python >= 3.12 (not installable here), and
  it is "serverless": it drives the bot in-process instead of speaking HTTP to a separate bot
  process that can be killed and restarted.
* ``lo-bot-api-emulator`` 0.3.6: an emulator of the request contract of a different
  messenger's ("LO") bot API, which says storage and identity need a live LO server; it
  needs aiohttp >= 3.14 (not installed) and offers no pytest-side driving of users, messages
  or faults.

So this is a small stdlib implementation (``http.server.ThreadingHTTPServer`` in a daemon
thread, one lock and condition variable); it adds no dependency.
"""

from .formatting import EntityParseError, parse_formatted
from .server import (
    DEFAULT_TOKEN,
    ApiError,
    BotApiServer,
    BotApiTimeout,
    Matcher,
    button_data,
    button_labels,
    find_button,
)

__all__ = [
    "DEFAULT_TOKEN",
    "ApiError",
    "BotApiServer",
    "BotApiTimeout",
    "EntityParseError",
    "Matcher",
    "button_data",
    "button_labels",
    "find_button",
    "parse_formatted",
]
