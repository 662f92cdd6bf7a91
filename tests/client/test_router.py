"""The client's state table: every stored state is one line with what it accepts and its
prompt; a state the table does not know never falls back to another state's question."""

import sqlite3
from contextlib import closing

from conversations.client import states
from conversations.client.router import STATES
from tests.support.harness import Harness


def stored_names() -> set[str]:
    """The state names the conversations store (conversations/client/states.py)."""
    return {value for name, value in vars(states).items() if name.isupper()}


def test_every_stored_state_has_one_line_with_its_prompt() -> None:
    assert set(STATES) == stored_names()
    for name, state in STATES.items():
        assert state.name == name
        assert state.accepts, name
        assert callable(state.prompt), name
    # Each state shows its own question: no two share a prompt.
    assert len({state.prompt for state in STATES.values()}) == len(STATES)


async def test_an_unknown_stored_state_is_never_shown_the_rut_question(bot: Harness) -> None:
    guide = bot.deps.guide
    await bot.say("/start")
    with closing(sqlite3.connect(bot.settings.database_path)) as db:
        db.execute("UPDATE conversations SET state = 'from_a_newer_release'")
        db.commit()
    mark = len(bot.texts())
    await bot.say("hola")
    said = bot.texts()[mark:]
    assert guide.message("ask_rut") not in said
    assert said[-1] == guide.message("no_conversation")
