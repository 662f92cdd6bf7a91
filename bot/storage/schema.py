"""The database schema and every migration, one per PRAGMA user_version."""

import aiosqlite

# Migration N (1-based) brings the database from user_version N-1 to N. Never edit a
# migration that has shipped: append a new one.
MIGRATIONS: tuple[str, ...] = (
    # 1: authorizations per company, the conversation each chat is in, history, firm outbox.
    """
    CREATE TABLE authorizations (
        company_rut      TEXT PRIMARY KEY,
        client_chat_id   INTEGER,
        client_user_id   INTEGER,
        client_name      TEXT,
        client_username  TEXT,
        step             INTEGER NOT NULL,
        started_at       REAL NOT NULL,
        last_activity_at REAL NOT NULL,
        completed_at     REAL
    );
    CREATE INDEX authorizations_by_client ON authorizations (client_chat_id, last_activity_at);

    CREATE TABLE conversations (
        chat_id       INTEGER NOT NULL,
        user_id       INTEGER NOT NULL,
        state         TEXT NOT NULL,
        company_rut   TEXT,
        candidate_rut TEXT,
        updated_at    REAL NOT NULL,
        PRIMARY KEY (chat_id, user_id)
    );

    CREATE TABLE events (
        id          INTEGER PRIMARY KEY,
        company_rut TEXT NOT NULL,
        at          REAL NOT NULL,
        kind        TEXT NOT NULL,
        step        INTEGER,
        detail      TEXT
    );
    CREATE INDEX events_by_company ON events (company_rut, id);

    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY,
        chat_id    INTEGER NOT NULL,
        text       TEXT NOT NULL,
        created_at REAL NOT NULL,
        sent_at    REAL,
        attempts   INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
    """,
    # 2: reminders (one pending per client chat, due times indexed), opt-outs, blocks, digest.
    """
    ALTER TABLE authorizations ADD COLUMN reminders_sent INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE authorizations ADD COLUMN opted_out_at REAL;
    ALTER TABLE authorizations ADD COLUMN blocked_at REAL;

    CREATE TABLE reminders (
        chat_id     INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL,
        company_rut TEXT,
        kind        TEXT NOT NULL,
        sequence    INTEGER NOT NULL DEFAULT 0,
        anchor_at   REAL NOT NULL,
        due_at      REAL NOT NULL
    );
    CREATE INDEX reminders_due ON reminders (due_at);

    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 3: the firm's side: invitations, the name the firm gave, verification, editable notices.
    """
    CREATE TABLE invitations (
        token        TEXT PRIMARY KEY,
        company_rut  TEXT NOT NULL,
        client_name  TEXT,
        created_by   INTEGER NOT NULL,
        created_at   REAL NOT NULL,
        expires_at   REAL NOT NULL,
        used_at      REAL,
        used_by_chat INTEGER
    );

    ALTER TABLE authorizations ADD COLUMN invited_name TEXT;
    ALTER TABLE authorizations ADD COLUMN verified_at REAL;
    ALTER TABLE authorizations ADD COLUMN verified_by TEXT;
    CREATE INDEX authorizations_pending ON authorizations (started_at) WHERE completed_at IS NULL;
    CREATE INDEX authorizations_completed ON authorizations (completed_at)
        WHERE completed_at IS NOT NULL;

    ALTER TABLE events ADD COLUMN actor TEXT;

    ALTER TABLE outbox ADD COLUMN ref INTEGER;
    ALTER TABLE outbox ADD COLUMN buttons TEXT;
    ALTER TABLE outbox ADD COLUMN message_id INTEGER;
    CREATE INDEX outbox_by_ref ON outbox (ref) WHERE ref IS NOT NULL;
    """,
    # 4: problem reports and two-way handoffs to the firm, photo proofs, data retention.
    """
    CREATE TABLE handoffs (
        id          INTEGER PRIMARY KEY,
        chat_id     INTEGER NOT NULL,
        user_id     INTEGER NOT NULL,
        company_rut TEXT,
        step        INTEGER,
        problem     TEXT NOT NULL,
        opened_at   REAL NOT NULL,
        closed_at   REAL,
        closed_by   TEXT
    );
    CREATE INDEX handoffs_open_by_chat ON handoffs (chat_id) WHERE closed_at IS NULL;

    ALTER TABLE outbox ADD COLUMN handoff_id INTEGER;
    ALTER TABLE outbox ADD COLUMN photo_file_id TEXT;
    CREATE INDEX outbox_by_message ON outbox (chat_id, message_id) WHERE message_id IS NOT NULL;

    ALTER TABLE authorizations ADD COLUMN proof_file_id TEXT;
    CREATE INDEX authorizations_by_activity ON authorizations (last_activity_at)
        WHERE completed_at IS NULL;
    """,
    # 5: updates processed while a batch from Telegram was not yet acknowledged (updates of
    # different chats are handled concurrently, so the offset alone cannot say which).
    """
    CREATE TABLE processed_updates (
        update_id INTEGER PRIMARY KEY
    );
    """,
    # 6: the marker is written with the handler's changes, before the answer goes out; a later
    # commit notes that the answer did (markers from before this one were written after it).
    """
    ALTER TABLE processed_updates ADD COLUMN answered INTEGER NOT NULL DEFAULT 1;
    """,
    # 7: what was read on the client's screenshot of the SII's answer (JSON; never the picture).
    """
    ALTER TABLE authorizations ADD COLUMN proof_reading TEXT;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


async def migrate(connection: aiosqlite.Connection) -> int:
    """Apply every pending migration, each in its own transaction; return the version."""
    async with connection.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {version} is newer than this program ({SCHEMA_VERSION})"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        statements = [s.strip() for s in MIGRATIONS[number - 1].split(";") if s.strip()]
        await connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                await connection.execute(statement)
            # user_version lives in the database header, so it commits with the migration.
            await connection.execute(f"PRAGMA user_version = {number}")
            await connection.execute("COMMIT")
        except BaseException:
            await connection.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION
