"""What an operator runs the bot with: compose.yaml, the systemd unit, the README's commands.

No Docker engine or systemd is at hand in the suite, so these read the files: compose.yaml
through a reader of the plain YAML subset it is written in (mappings, lists, scalars), the
unit as the INI-like file it is.
"""

import re
import tomllib
from pathlib import Path
from typing import Any

from tests.support.harness import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _scalar(text: str) -> Any:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return [_scalar(item) for item in text[1:-1].split(",") if item.strip()]
    if text[:1] in "\"'" and text[-1:] == text[:1]:
        return text[1:-1]
    return {"true": True, "false": False}.get(text, text)


def read_yaml(text: str) -> Any:
    """Read block mappings, block lists and scalars (no anchors, no multi-line strings)."""
    lines = [
        (len(line) - len(line.lstrip(" ")), line.strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]

    def block(start: int, indent: int) -> tuple[Any, int]:
        if lines[start][1].startswith("- "):
            items: list[Any] = []
            while start < len(lines) and lines[start][0] == indent:
                item = lines[start][1][2:]
                if re.match(r"^[\w.-]+:( |$)", item):  # a mapping inside a list item
                    lines[start] = (indent + 2, item)
                    value, start = block(start, indent + 2)
                else:
                    value, start = _scalar(item), start + 1
                items.append(value)
            return items, start
        mapping: dict[str, Any] = {}
        while start < len(lines) and lines[start][0] == indent:
            key, _, rest = lines[start][1].partition(":")
            start += 1
            if rest.strip():
                mapping[key] = _scalar(rest)
            elif start < len(lines) and lines[start][0] > indent:
                mapping[key], start = block(start, lines[start][0])
            else:
                mapping[key] = None
        return mapping, start

    value, end = block(0, 0)
    assert end == len(lines), f"not read: {lines[end]}"
    return value


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Read a systemd unit: section -> key -> values (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current.setdefault(key, []).append(value)
    return sections


def test_the_yaml_reader_reads_what_it_is_given() -> None:
    text = "a:\n  b: 1\n  c: [x, y]\n  d:\n    - e\n    - path: f\n      required: false\n"
    assert read_yaml(text) == {
        "a": {"b": "1", "c": ["x", "y"], "d": ["e", {"path": "f", "required": False}]}
    }


def test_compose_runs_the_bot_with_its_volume_env_file_and_restart_policy() -> None:
    compose = read_yaml((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    bot = compose["services"]["bot"]
    assert bot["build"] == "."
    assert bot["restart"] == "unless-stopped"
    assert bot["env_file"] == ".env"  # the token stays out of compose.yaml
    assert bot["volumes"] == ["sii-data:/app/data"]
    assert "profiles" not in bot  # `docker compose up` starts it
    assert bot["container_name"] == "sii-bot"  # README's `docker exec sii-bot ...`
    assert compose["volumes"] == {"sii-data": {"name": "sii-data"}}
    assert "TELEGRAM_BOT_TOKEN" not in (ROOT / "compose.yaml").read_text(encoding="utf-8")


def test_compose_has_litestream_under_a_profile_on_the_same_volume() -> None:
    litestream = read_yaml((ROOT / "compose.yaml").read_text(encoding="utf-8"))["services"][
        "litestream"
    ]
    assert litestream["profiles"] == ["litestream"]
    assert litestream["command"] == "replicate"
    assert litestream["restart"] == "unless-stopped"
    assert litestream["image"].startswith("litestream/litestream:")
    assert "sii-data:/app/data" in litestream["volumes"]
    [config] = [v for v in litestream["volumes"] if v.endswith(":/etc/litestream.yml:ro")]
    source = ROOT / config.split(":")[0]
    dbs = read_yaml(source.read_text(encoding="utf-8"))["dbs"]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    [database] = re.findall(r"DATABASE_PATH=(\S+)", dockerfile)
    assert [db["path"] for db in dbs] == [database]  # the database the bot writes
    assert litestream["user"] == "10001:10001" and "USER 10001:10001" in dockerfile


def test_the_systemd_unit_runs_the_console_script_where_it_keeps_its_data() -> None:
    sections = unit(ROOT / "deploy" / "sii-authorization-bot.service")
    service = sections["Service"]
    [start] = service["ExecStart"]
    program = Path(start.split()[0])
    assert program.name in PYPROJECT["project"]["scripts"]  # sii-authorization-bot
    [state] = service["StateDirectory"]
    assert service["WorkingDirectory"] == [f"/var/lib/{state}"]  # its .env and data/ are there
    assert service["User"] == ["sii-bot"]
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == ["2"]  # a setting to fix: no restart loop
    assert sections["Install"]["WantedBy"] == ["multi-user.target"]
    # The README installs the program where the unit starts it, and the .env where it reads it.
    assert f"python3 -m venv {program.parent.parent}\n" in README
    assert f"{program.parent}/pip install --require-hashes -r requirements.lock" in README
    assert f".env.example /var/lib/{state}/.env" in README


def readme_commands(section: str) -> list[str]:
    """The shell lines of the README's code blocks in one section."""
    text = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_runs_the_container_with_a_restart_policy_and_an_env_file() -> None:
    [run] = [line for line in readme_commands("Docker") if line.startswith("docker run")]
    assert "--restart unless-stopped" in run and "--env-file .env" in run
    assert "-v sii-data:/app/data" in run and "-e TELEGRAM_BOT_TOKEN" not in run


def test_the_readme_recovery_steps_come_in_an_order_that_works() -> None:
    lines = readme_commands("Backups and recovery")
    # Restoring a backup: bot and Litestream stopped first, started again after.
    [restore] = [i for i, line in enumerate(lines) if "python -m bot restore" in line]
    assert "stop bot litestream" in lines[restore - 1]
    assert "up -d" in lines[restore + 1]
    # From the replica: stop, move the database and its -wal/-shm aside, restore -o, start.
    [litestream] = [i for i, line in enumerate(lines) if "litestream restore -o" in line]
    stop, aside, start = lines[litestream - 2], lines[litestream - 1], lines[litestream + 1]
    assert "stop bot litestream" in stop
    for name in (
        "authorizations.sqlite3",
        "authorizations.sqlite3-wal",
        "authorizations.sqlite3-shm",
    ):
        assert f" {name}" in aside
    assert "mv " in aside
    assert "up -d" in start
    restored = lines[litestream].split("restore -o ", 1)[1].split()
    assert restored == ["/app/data/authorizations.sqlite3", "/app/data/authorizations.sqlite3"]
