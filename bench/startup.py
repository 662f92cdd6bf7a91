"""Benchmark of start-up: from spawning `python -m bot` to its first getUpdates request.

Run with ``python -m bench.startup [--runs 7]``.

A tiny loopback HTTP server stands in for the Bot API: it answers getMe, getWebhookInfo,
setMyCommands and the like with plausible JSON and records when the first getUpdates
arrives. Each run uses a fresh database in a temporary folder (the first start of a bot, the
slowest: the schema is created) and a working directory without a .env file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN = "123456789:BENCH-startup-token_0123456789abcde"
BOT_USER: dict[str, Any] = {
    "id": 123_456_789,
    "is_bot": True,
    "first_name": "Asistente SII",
    "username": "sii_startup_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
WEBHOOK_INFO: dict[str, Any] = {
    "url": "",
    "has_custom_certificate": False,
    "pending_update_count": 0,
}
# How long a run may take before it counts as a failure.
TIMEOUT_SECONDS = 30.0


class _FakeBotApi(ThreadingHTTPServer):
    """Answers /bot<token>/<method>; sets `first_poll` when the first getUpdates arrives."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.first_poll = threading.Event()
        self.first_poll_at = 0.0
        self.stopping = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about a poll cut off by the bot stopping (the connection reset)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: _FakeBotApi
    protocol_version = "HTTP/1.1"
    # Answer in one segment, as Telegram does: a reply split into a header write and a body
    # write would wait ~40 ms for the client's delayed ACK (Nagle), on every call.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        arrived = time.perf_counter()
        method = self.path.rsplit("/", 1)[-1]
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if method == "getUpdates":
            if not self.server.first_poll.is_set():
                self.server.first_poll_at = arrived
                self.server.first_poll.set()
            # A long poll with nothing to deliver, as Telegram holds it (cut short at the end).
            self.server.stopping.wait(1.0)
            result: Any = []
        elif method == "getMe":
            result = BOT_USER
        elif method == "getWebhookInfo":
            result = WEBHOOK_INFO
        else:  # deleteWebhook, setMyCommands, ...: True is what Telegram answers
            result = True
        body = json.dumps({"ok": True, "result": result}).encode()
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.wfile.write(head.encode() + body)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


def _one_run(folder: Path) -> float:
    server = _FakeBotApi()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": server.url,
        "DATABASE_PATH": str(folder / "data" / "bot.sqlite3"),
        "FIRM_CHAT_IDS": "-1001234567890",
        "LOG_LEVEL": "WARNING",
    }
    try:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            if not server.first_poll.wait(TIMEOUT_SECONDS):
                raise RuntimeError("no getUpdates arrived")
            if process.poll() is not None:
                raise RuntimeError(f"the bot exited with {process.returncode}")
            return server.first_poll_at - started
        finally:
            server.stopping.set()
            process.send_signal(signal.SIGTERM)
            try:
                _, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                _, stderr = process.communicate()
            if process.returncode not in (0, -signal.SIGTERM) and stderr:
                sys.stderr.write(stderr.decode(errors="replace"))
    finally:
        server.shutdown()
        server.server_close()


def measure_startup(runs: int) -> list[float]:
    """Start the bot `runs` times; return the seconds from spawning it to its first getUpdates."""
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
            times.append(_one_run(Path(folder)))
    return times


def main() -> None:
    """Print the median and spread of start-up over several runs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    warm_up = measure_startup(1)[0]  # fills the OS file cache and writes the .pyc files
    times = measure_startup(runs)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {runs} runs")
    print(f"warm-up run: {warm_up:.3f} s")
    print(
        f"start-up to first getUpdates: median {statistics.median(times):.3f} s, "
        f"min {min(times):.3f} s, max {max(times):.3f} s"
    )
    print("runs: " + " ".join(f"{t:.3f}" for t in times))


if __name__ == "__main__":
    main()
