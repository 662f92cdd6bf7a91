"""Production readiness: strict settings, time zones anywhere, documented and locked builds."""

import fnmatch
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bot.domain.settings import Settings, SettingsError, load_settings
from tests.support.harness import ROOT

VALID_TOKEN = "1234567890:AAH" + "a1B2c3_-" * 4
MALFORMED = (
    "TELEGRAM_BOT_TOKEN: malformed token: expected '<digits>:<secret>' as given by @BotFather"
)
# Every variable Settings reads (each field, upper-cased).
VARIABLES = tuple(name.upper() for name in Settings.model_fields)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment with only a valid token, in an empty directory (no .env)."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", VALID_TOKEN)
    return monkeypatch


def clean_environment(**variables: str) -> dict[str, str]:
    """This process's environment without any of the bot's settings, plus `variables`."""
    kept = {key: value for key, value in os.environ.items() if key not in VARIABLES}
    return kept | variables


# === the token has the shape the Bot API issues ==========================================


@pytest.mark.parametrize(
    "token",
    [
        "12345678:" + "A" * 35,
        "1234567890:" + "aZ09_-" * 5 + "xxxxx",
        VALID_TOKEN,
        f"  {VALID_TOKEN}\n",
        # Today's lengths are 8 to 10 digits and 35 characters; Telegram may change them.
        "1234567:" + "A" * 35,
        "12345678901:" + "A" * 35,
        "12345678:" + "A" * 34,
        "12345678:" + "A" * 36,
        "123456789:" + "b" * 20,
        "1234567890123:" + "C_-d" * 16,
    ],
)
def test_tokens_shaped_like_botfathers_are_accepted(env: pytest.MonkeyPatch, token: str) -> None:
    env.setenv("TELEGRAM_BOT_TOKEN", token)
    assert load_settings().token == token.strip()


@pytest.mark.parametrize(
    "token",
    [
        "123456:ABCDEF",
        "12345678:" + "A" * 19,  # a secret cut short
        ":" + "A" * 35,
        "12345678:" + "A" * 34 + "!",
        "12345678:" + "A" * 17 + " " + "A" * 17,
        "12345678" + "A" * 35,
        "12345678:" + "A" * 20 + ":" + "A" * 14,
        "abcdefgh:" + "A" * 35,
    ],
)
def test_other_token_shapes_are_refused_in_one_line(env: pytest.MonkeyPatch, token: str) -> None:
    env.setenv("TELEGRAM_BOT_TOKEN", token)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert str(raised.value) == MALFORMED


def test_the_bot_refuses_a_short_token_at_start_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        env=clean_environment(TELEGRAM_BOT_TOKEN="123456:ABCDEF"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == f"Configuration error: {MALFORMED}\n"
    assert "ABCDEF" not in result.stderr and result.stdout == ""


# === BACKUP_KEEP =========================================================================


def test_backup_keep_defaults_to_14_and_reads_the_environment(env: pytest.MonkeyPatch) -> None:
    assert load_settings().backup_keep == 14
    for value in ("1", "30", " 365 "):
        env.setenv("BACKUP_KEEP", value)
        assert load_settings().backup_keep == int(value)


@pytest.mark.parametrize("value", ["0", "366", "-3", "abc", "1.5", ""])
def test_backup_keep_out_of_range_is_refused_in_one_line(
    env: pytest.MonkeyPatch, value: str
) -> None:
    env.setenv("BACKUP_KEEP", value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("BACKUP_KEEP: ") and "\n" not in message


# === time zones come from tzdata when the system has none ================================


def test_the_time_zone_loads_from_tzdata_without_a_system_zone_database(tmp_path: Path) -> None:
    empty = tmp_path / "no-zoneinfo"
    empty.mkdir()
    script = (
        "import datetime, zoneinfo\n"
        "from bot.domain.settings import load_settings\n"
        "zone = load_settings().timezone\n"
        "summer = datetime.datetime(2024, 1, 15, 12, tzinfo=zone).utcoffset()\n"
        "winter = datetime.datetime(2024, 7, 15, 12, tzinfo=zone).utcoffset()\n"
        "print(zoneinfo.TZPATH, zone.key, summer.total_seconds(), winter.total_seconds())\n"
    )
    environment = clean_environment(
        PYTHONTZPATH=str(empty), TIMEZONE="America/Santiago", TELEGRAM_BOT_TOKEN=VALID_TOKEN
    )

    def run(code: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=environment,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    # Santiago: UTC-3 in the southern summer, UTC-4 in winter.
    assert run(script) == f"('{empty}',) America/Santiago -10800.0 -14400.0"
    # ... and it was tzdata that answered: without it, the same lookup finds nothing.
    blocked = (
        "import sys, zoneinfo\n"
        "sys.modules['tzdata'] = None\n"
        "try:\n"
        "    zoneinfo.ZoneInfo('America/Santiago')\n"
        "except zoneinfo.ZoneInfoNotFoundError:\n"
        "    print('not found')\n"
    )
    assert run(blocked) == "not found"


# === .env.example and the README's settings table ========================================

# A line of .env.example that sets (or, commented out, shows) one variable.
ASSIGNMENT = re.compile(r"^(?P<commented># )?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def example_variables() -> dict[str, bool]:
    """Return each variable in .env.example, and whether it is set (not commented out)."""
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    found: dict[str, bool] = {}
    for number, line in enumerate(lines):
        match = ASSIGNMENT.match(line)
        if match:
            assert match["name"] not in found, f"{match['name']} appears twice"
            # Each variable has its own one-line comment just above it.
            assert lines[number - 1].startswith("# ") and not ASSIGNMENT.match(lines[number - 1])
            found[match["name"]] = match["commented"] is None
    return found


def readme_settings() -> list[str]:
    """Return the variables in the first column of README.md's settings table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, flags=re.MULTILINE)


def test_every_setting_is_in_env_example_and_nothing_else() -> None:
    variables = example_variables()
    assert sorted(variables) == sorted(VARIABLES)
    assert {"FIRM_HOURS", "BACKUP_KEEP"} <= set(variables)
    assert variables["TELEGRAM_BOT_TOKEN"]  # present, to be filled in


def test_every_setting_is_in_the_readme_table_once() -> None:
    documented = readme_settings()
    assert sorted(documented) == sorted(set(documented))
    assert set(VARIABLES) <= set(documented), set(VARIABLES) - set(documented)


def test_env_example_names_commands_and_files_that_exist() -> None:
    from bot.wiring.main import _parser

    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    subcommands = set(_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    commands = re.findall(r"python -m ([\w.]+)(?: ([a-z]+))?", text)
    assert commands
    for module, word in commands:
        assert module == "bot", f"python -m {module}: the bot's commands are python -m bot ..."
        assert not word or word in subcommands, f"python -m bot {word}: no such command"
    paths = re.findall(r"\b((?:bot|conversations)/[\w/]+\.\w+)", text)
    assert paths
    for path in paths:
        assert (ROOT / path).is_file(), f"{path} does not exist"


def test_env_example_with_a_token_filled_in_gives_exactly_the_defaults(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    defaults = load_settings()
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert "\nTELEGRAM_BOT_TOKEN=\n" in text
    env.delenv("TELEGRAM_BOT_TOKEN")
    filled = text.replace("\nTELEGRAM_BOT_TOKEN=\n", f"\nTELEGRAM_BOT_TOKEN={VALID_TOKEN}\n")
    (tmp_path / ".env").write_text(filled, encoding="utf-8")
    loaded = load_settings()
    assert loaded.model_dump() == defaults.model_dump()
    assert loaded.token == VALID_TOKEN


def test_env_example_as_it_is_asks_for_the_token(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.delenv("TELEGRAM_BOT_TOKEN")
    (tmp_path / ".env").write_bytes((ROOT / ".env.example").read_bytes())
    # TELEGRAM_BOT_TOKEN= (empty) is not set, not malformed.
    with pytest.raises(SettingsError, match=r"^TELEGRAM_BOT_TOKEN is required but not set$"):
        load_settings()
    assert load_settings(token_required=False).telegram_bot_token is None


# === the lock files match pyproject.toml =================================================

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
RUNTIME = [Requirement(line) for line in PYPROJECT["project"]["dependencies"]]
TEST_EXTRAS = [Requirement(line) for line in PYPROJECT["project"]["optional-dependencies"]["test"]]
REGENERATE = (
    "pip-compile --generate-hashes --no-emit-find-links --no-emit-index-url "
    "--output-file={output} --strip-extras pyproject.toml"
)


def pins(lock: str) -> dict[str, str]:
    """Return each package a lock file pins, by normalized name, with its version."""
    found: dict[str, str] = {}
    for line in (ROOT / lock).read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)", line)
        if match:
            found[canonicalize_name(match[1])] = match[2]
    return found


def direct(lock: str) -> set[str]:
    """Return the packages a lock file says pyproject.toml asked for (its "via" notes)."""
    found, current = set(), ""
    for line in (ROOT / lock).read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if match:
            current = canonicalize_name(match[1])
        elif "(pyproject.toml)" in line:
            found.add(current)
    return found


@pytest.mark.parametrize(
    ("lock", "wanted"),
    [("requirements.lock", RUNTIME), ("requirements-test.lock", RUNTIME + TEST_EXTRAS)],
)
def test_lock_files_pin_exactly_what_pyproject_asks_for(
    lock: str, wanted: list[Requirement]
) -> None:
    stale = f"{lock} is out of date with pyproject.toml: regenerate it (command at its top)"
    pinned = pins(lock)
    names = {canonicalize_name(requirement.name) for requirement in wanted}
    assert direct(lock) == names, stale
    for requirement in wanted:
        version = pinned[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), f"{stale}: {version}"
    command = REGENERATE.format(output=lock)
    if lock == "requirements-test.lock":
        command = command.replace("pip-compile ", "pip-compile --extra=test ")
    assert command in (ROOT / "README.md").read_text(encoding="utf-8"), "README: how to regenerate"
    header = (ROOT / lock).read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert f"#    {command}\n" in header + "\n"


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-test.lock"])
def test_every_pin_has_its_hashes_and_every_install_requires_them(lock: str) -> None:
    text = (ROOT / lock).read_text(encoding="utf-8")
    # Each "name==version \" is followed by its "--hash=sha256:..." lines.
    entry = r"^([A-Za-z0-9][A-Za-z0-9._-]*)==\S+((?: \\\n +--hash=sha256:[0-9a-f]{64})*)"
    entries = re.findall(entry, text, re.MULTILINE)
    assert len(entries) == len(pins(lock)) > 10
    assert [name for name, hashes in entries if not hashes] == []
    installs = {
        "Dockerfile": (ROOT / "Dockerfile").read_text(encoding="utf-8"),
        ".ci/run": (ROOT / ".ci" / "run").read_text(encoding="utf-8"),
    }
    for where, script in installs.items():
        for line in script.splitlines():
            if re.search(r"pip install .*-r \S*requirements", line):
                assert "--require-hashes" in line, f"{where}: {line.strip()}"
    used = installs["Dockerfile"] if lock == "requirements.lock" else installs[".ci/run"]
    assert f"--require-hashes -r {'/tmp/' if lock == 'requirements.lock' else ''}{lock}" in used


def test_the_runtime_and_test_locks_agree_on_every_shared_version() -> None:
    runtime, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert {name: test.get(name) for name in runtime} == runtime


@pytest.mark.parametrize(
    "name",
    [
        "python-telegram-bot",
        "python-stdnum",
        "aiosqlite",
        "pydantic",
        "pydantic-settings",
        "pytest",
        "pytest-asyncio",
        "hypothesis",
        "ruff",
        "mypy",
    ],
)
def test_version_sensitive_dependencies_have_an_upper_bound(name: str) -> None:
    [requirement] = [r for r in RUNTIME + TEST_EXTRAS if r.name == name]
    assert any(spec.operator in {"<", "<=", "=="} for spec in requirement.specifier), requirement


def test_ci_installs_the_test_lock_then_the_checkout_alone() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    lock = script.index(".venv/bin/pip install -q --require-hashes -r requirements-test.lock\n")
    package = script.index(".venv/bin/pip install -q --no-deps -e .\n")
    assert lock < package < script.index(".venv/bin/pytest\n")
    assert '".[test]"' not in script


# === the image definition ===============================================================


def dockerfile() -> list[str]:
    """Return the Dockerfile's instructions, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_the_image_installs_the_locked_dependencies_before_copying_the_source() -> None:
    instructions = dockerfile()
    copies = [line.split() for line in instructions if line.startswith("COPY ")]
    first_source = next(i for i, line in enumerate(instructions) if line.startswith("COPY bot"))
    lock_copy = instructions.index("COPY requirements.lock /tmp/requirements.lock")
    [install] = [i for i, line in enumerate(instructions) if "-r /tmp/requirements.lock" in line]
    assert lock_copy < install < first_source
    # The source only passes through /tmp: the bot runs from site-packages, never from /app.
    assert all(words[-1].startswith("/tmp/") for words in copies), copies
    [package] = [line for line in instructions if "pip install --no-cache-dir --no-deps" in line]
    assert "/tmp/src" in package and "rm -rf /tmp/src" in package
    assert instructions.index("WORKDIR /app") > first_source


def test_the_image_carries_oci_labels_with_the_package_version() -> None:
    instructions = dockerfile()
    [labels] = [line for line in instructions if line.startswith("LABEL ")]
    keys = set(re.findall(r"(org\.opencontainers\.image\.[a-z]+)=", labels))
    assert {
        "org.opencontainers.image.title",
        "org.opencontainers.image.description",
        "org.opencontainers.image.version",
        "org.opencontainers.image.source",
    } <= keys
    assert f"ARG VERSION={PYPROJECT['project']['version']}" in instructions
    assert 'org.opencontainers.image.version="${VERSION}"' in labels


def dockerignored(path: str) -> bool:
    """Tell whether .dockerignore keeps `path` out of the build context (last match wins)."""
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        candidates = [pattern, pattern.removeprefix("**/")]
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        names = [*prefixes, *parts] if pattern.startswith("**/") else prefixes
        if any(fnmatch.fnmatchcase(n, c) for n in names for c in candidates):
            ignored = not negated
    return ignored


def test_the_build_context_keeps_what_the_image_copies_and_nothing_private() -> None:
    for needed in (
        "requirements.lock",
        "pyproject.toml",
        "README.md",
        "bot/wiring/main.py",
        "bot/guide/guide.toml",
        "bot/guide/screens/paso1.png",
    ):
        assert not dockerignored(needed), needed
    for private in (
        ".env",
        "litestream.env",
        ".git/config",
        ".venv/bin/python",
        "data/authorizations.sqlite3",
        "data/backups/authorizations-20250101-000000.sqlite3",
        "authorizations.sqlite3-wal",
        "bot/__pycache__/main.cpython-311.pyc",
        "tests/conftest.py",
        ".pytest_cache/v/cache",
        ".mypy_cache/3.11/bot",
        ".hypothesis/examples",
    ):
        assert dockerignored(private), private
