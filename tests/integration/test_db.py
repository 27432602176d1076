"""The database layer against a real embedded PostgreSQL 18 + pgvector."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import psycopg
import pytest
from pgvector import Vector

import core.cli
from core.config import Settings
from core.db.embedded import PID_LIST, pgdata_path, resolve_database_url, start_embedded
from core.db.migrate import discover, migrate, split_statements, status
from core.db.pool import Database, connect, open_pool
from core.errors import DatabaseError, MigrationError

REPO = Path(__file__).resolve().parents[2]
EXPECTED_TABLES = {"schema_migrations", "guilds", "guild_settings", "audit_log"}

# A second guru process: joins the server on argv[1], reports what it sees, holds the server
# until its stdin closes.
CHILD = """
import asyncio, json, sys
import psycopg
from core.config import Settings
from core.db.embedded import resolve_database_url

async def main():
    url = await resolve_database_url(Settings(data_dir=sys.argv[1]))
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT pg_postmaster_start_time()::text")
        started = (await cur.fetchone())[0]
    pid = int((Path(sys.argv[1]) / "postgres" / "postmaster.pid").read_text().split()[0])
    print(json.dumps({"url": url, "started": started, "pid": pid}), flush=True)

from pathlib import Path
asyncio.run(main())
sys.stdin.read()
"""


async def tables(url: str) -> set[str]:
    async with connect(url) as conn:
        cur = await conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {name for (name,) in await cur.fetchall()}


async def spawn_child(data_dir: Path) -> tuple[asyncio.subprocess.Process, dict]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(data_dir),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
    assert line, "the child process exited without reporting"
    return child, json.loads(line)


async def wait_stopped(pid: int, timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.1)
    return False


def write(directory: Path, name: str, text: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)


# --- migrations -------------------------------------------------------------------------------


async def test_migrations_apply_from_an_empty_database(fresh_database_url: str) -> None:
    async with connect(fresh_database_url) as conn:
        applied = await migrate(conn)
        states = await status(conn)
    assert [m.filename for m in applied] == [m.filename for m in discover()]
    assert applied[0].filename == "0001_init.sql"
    assert EXPECTED_TABLES <= await tables(fresh_database_url)
    assert all(s.applied_at is not None and not s.changed for s in states)


async def test_second_migrate_applies_nothing(migrated_url: str) -> None:
    async with connect(migrated_url) as conn:
        assert await migrate(conn) == []
        cur = await conn.execute("SELECT count(*) FROM schema_migrations")
        assert (await cur.fetchone())[0] == len(discover())


async def test_concurrent_migrations_apply_each_file_once(fresh_database_url: str) -> None:
    async with connect(fresh_database_url) as a, connect(fresh_database_url) as b:
        first, second = await asyncio.gather(migrate(a), migrate(b))
    assert sorted(len(x) for x in (first, second)) == [0, len(discover())]


async def test_failed_migration_rolls_back_and_names_file_and_statement(
    fresh_database_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    write(directory, "0001_init.sql", (REPO / "migrations" / "0001_init.sql").read_text())
    write(
        directory,
        "0002_broken.sql",
        "-- a good statement, then a bad one\n"
        "CREATE TABLE survivor (id int);\n"
        "INSERT INTO survivor VALUES (1);\n"
        "\n"
        "SELECT id\n  FROM no_such_table;\n",
    )
    async with connect(fresh_database_url) as conn:
        with pytest.raises(MigrationError) as caught:
            await migrate(conn, directory)
        cur = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        versions = [v for (v,) in await cur.fetchall()]
        states = await status(conn, directory)
    message = caught.value.user_message
    assert "0002_broken.sql" in message
    assert "SELECT id FROM no_such_table" in message
    assert "line 6" in message  # the line of the error position, not of the statement start
    assert "no_such_table" in message and "does not exist" in message
    assert "survivor" not in await tables(fresh_database_url)
    assert versions == [1]  # 0001 stays applied: one transaction per file
    assert [s.applied_at is None for s in states] == [False, True]


async def test_editing_an_applied_migration_is_refused(
    fresh_database_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "migrations"
    write(directory, "0001_a.sql", "CREATE TABLE a (id int);")
    async with connect(fresh_database_url) as conn:
        await migrate(conn, directory)
        write(directory, "0001_a.sql", "CREATE TABLE a (id bigint);")
        write(directory, "0002_b.sql", "CREATE TABLE b (id int);")
        with pytest.raises(MigrationError, match="0001_a.sql was edited"):
            await migrate(conn, directory)
        states = await status(conn, directory)
    assert [(s.version, s.changed, s.applied_at is None) for s in states] == [
        (1, True, False),
        (2, False, True),
    ]
    assert "b" not in await tables(fresh_database_url)


def test_statement_splitter_respects_quotes_comments_and_dollar_bodies() -> None:
    script = (
        "-- header; no statement\n"
        "CREATE TABLE t (x text DEFAULT 'a;b''c'); /* x; /* nested; */ y; */\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$\n"
        "BEGIN RETURN 1; END; $body$;\n"
        "DO $$ BEGIN PERFORM 1; END $$;\n"
        "SELECT E'it\\'s;', \"we;ird\";\n"
        "-- trailing comment;\n"
    )
    assert split_statements(script) == [
        (2, "CREATE TABLE t (x text DEFAULT 'a;b''c')"),
        (
            3,
            "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$\n"
            "BEGIN RETURN 1; END; $body$",
        ),
        (5, "DO $$ BEGIN PERFORM 1; END $$"),
        (6, "SELECT E'it\\'s;', \"we;ird\""),
    ]


def test_migration_files_are_well_formed() -> None:
    migrations = discover()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))


# --- schema and pool --------------------------------------------------------------------------


async def test_guild_settings_constraints_and_cascade(db_conn: psycopg.AsyncConnection) -> None:
    await db_conn.execute("INSERT INTO guilds (id, name) VALUES (42, 'g')")
    await db_conn.execute(
        "INSERT INTO guild_settings (guild_id, temperature, allowed_channel_ids) "
        "VALUES (42, 0.5, %s)",
        ([1, 2],),
    )
    for column, value in (
        ("temperature", 3.0),
        ("max_answer_tokens", 0),
        ("rate_limit_per_minute", -1),
        ("allowed_role_ids", [1, None]),
    ):
        with pytest.raises(psycopg.errors.CheckViolation):
            async with db_conn.transaction():
                await db_conn.execute(
                    f"UPDATE guild_settings SET {column} = %s WHERE guild_id = 42", (value,)
                )
    await db_conn.execute("DELETE FROM guilds WHERE id = 42")
    cur = await db_conn.execute("SELECT count(*) FROM guild_settings WHERE guild_id = 42")
    assert (await cur.fetchone())[0] == 0


async def test_vector_search_through_the_pool(db_conn: psycopg.AsyncConnection) -> None:
    await db_conn.execute("CREATE TEMP TABLE items (id int, embedding vector(3))")
    vectors = {1: [1, 0, 0], 2: [0, 1, 0], 3: [0.9, 0.1, 0]}
    async with db_conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO items VALUES (%s, %s)",
            [(k, np.array(v, dtype=np.float32)) for k, v in vectors.items()],
        )
        await cur.execute(
            "SELECT id, embedding, embedding <=> %s AS distance FROM items ORDER BY distance",
            (np.array([1, 0, 0], dtype=np.float32),),
        )
        rows = await cur.fetchall()
    assert [r[0] for r in rows] == [1, 3, 2]
    # pgvector >= 0.4 loads `Vector` objects; `.to_numpy()` gives the float32 array.
    assert isinstance(rows[0][1], Vector) and rows[0][1].to_list() == [1, 0, 0]
    assert rows[0][2] == pytest.approx(0.0) and rows[2][2] == pytest.approx(1.0)


async def test_pool_on_a_database_without_the_extension_still_opens(
    fresh_database_url: str,
) -> None:
    pool = await open_pool(fresh_database_url, max_size=2)
    try:
        assert await migrate(pool)  # creates the extension, then drains the pool
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT %s::vector", (np.array([1, 2], dtype=np.float32),))
            assert (await cur.fetchone())[0].to_numpy().tolist() == [1, 2]
    finally:
        await pool.close()


async def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://nobody:secret@/nodb?host={tmp_path}"
    with pytest.raises(DatabaseError, match="Could not connect") as caught:
        await open_pool(url, timeout_s=1)
    assert "secret" not in caught.value.user_message


# --- embedded server lifetime -----------------------------------------------------------------


async def test_two_processes_share_one_server_until_the_last_exits(tmp_path: Path) -> None:
    ours = await start_embedded(tmp_path)
    child, seen = await spawn_child(tmp_path)
    try:
        assert seen["pid"] == ours.pid and seen["url"] == ours.url
        pids = json.loads((ours.pgdata / PID_LIST).read_text())
        assert sorted(pids) == sorted([os.getpid(), child.pid])
        await ours.aclose()  # we let go first: the child still holds the server
        assert not await wait_stopped(ours.pid, timeout_s=0.5)
        async with connect(ours.url) as conn:
            cur = await conn.execute("SELECT pg_postmaster_start_time()::text")
            assert (await cur.fetchone())[0] == seen["started"]
    finally:
        child.stdin.close()
        await asyncio.wait_for(child.wait(), timeout=60)
    assert child.returncode == 0
    assert await wait_stopped(ours.pid)  # the last user exited: the server stopped with it
    assert not (ours.pgdata / "postmaster.pid").exists()

    again = await start_embedded(tmp_path)  # restarts on the initialised data dir
    try:
        assert again.pid != ours.pid
    finally:
        await again.aclose()
    assert await wait_stopped(again.pid)


async def test_a_killed_process_does_not_keep_the_server_alive(tmp_path: Path) -> None:
    child, seen = await spawn_child(tmp_path)
    child.send_signal(signal.SIGKILL)  # no atexit: its pid stays in the library's list
    await child.wait()
    ours = await start_embedded(tmp_path)
    assert ours.pid == seen["pid"]
    assert json.loads((ours.pgdata / PID_LIST).read_text()) == [os.getpid()]
    await ours.aclose()
    assert await wait_stopped(ours.pid)


async def test_a_process_can_release_and_start_again_while_another_holds_the_server(
    tmp_path: Path,
) -> None:
    first = await start_embedded(tmp_path)
    second = await start_embedded(tmp_path)  # same process: one registration, counted twice
    await first.aclose()
    assert not await wait_stopped(second.pid, timeout_s=0.3)
    child, _ = await spawn_child(tmp_path)
    try:
        await second.aclose()  # our last reference: we leave the list, the child keeps it up
        again = await start_embedded(tmp_path)  # must register this process anew
        assert os.getpid() in json.loads((again.pgdata / PID_LIST).read_text())
    finally:
        child.stdin.close()
        await asyncio.wait_for(child.wait(), timeout=60)
    assert not await wait_stopped(again.pid, timeout_s=0.5)  # the child exited, we still hold it
    async with connect(again.url) as conn:
        await conn.execute("SELECT 1")
    await again.aclose()
    assert await wait_stopped(again.pid)


async def test_database_open_migrates_and_aclose_stops_the_server(tmp_path: Path) -> None:
    db = await Database.open(Settings(data_dir=str(tmp_path)), max_size=2)
    assert db.server is not None
    async with db:
        assert [m.version for m in db.applied] == [m.version for m in discover()]
        async with db.pool.connection() as conn:
            cur = await conn.execute("SELECT '[1,2,3]'::vector")
            assert (await cur.fetchone())[0].to_list() == [1, 2, 3]
    assert await wait_stopped(db.server.pid)


async def test_resolve_prefers_database_url(pg_url: str) -> None:
    settings = Settings(database_url=pg_url, data_dir="/nonexistent")
    assert await resolve_database_url(settings) == pg_url


async def test_a_server_that_cannot_start_names_its_log(tmp_path: Path) -> None:
    pgdata = pgdata_path(tmp_path)
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("9\n")  # looks initialised, but for another major version
    with pytest.raises(DatabaseError) as caught:
        await start_embedded(tmp_path)
    assert str(pgdata / "log") in caught.value.user_message


# --- CLI --------------------------------------------------------------------------------------


async def test_cli_db_migrate_and_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GURU_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "")  # wins over a developer's .env

    def guru(*argv: str) -> tuple[int, str]:
        code = core.cli.main(list(argv))
        return code, capsys.readouterr().out

    # main() runs asyncio.run(); a worker thread keeps it off the test's own event loop.
    code, out = await asyncio.to_thread(guru, "db", "status", "--json")
    assert code == 0 and [row["applied_at"] for row in json.loads(out)] == [None] * len(discover())
    code, out = await asyncio.to_thread(guru, "db", "migrate")
    assert code == 0 and out.splitlines() == [f"Applied {m.filename}" for m in discover()]
    code, out = await asyncio.to_thread(guru, "db", "migrate")
    assert code == 0 and out.strip().startswith("Database is up to date (")
    code, out = await asyncio.to_thread(guru, "db", "status", "--json")
    rows = json.loads(out)
    assert code == 0 and [(r["version"], r["name"]) for r in rows][0] == (1, "init")
    assert all(r["applied_at"] and not r["changed"] for r in rows)
    code, out = await asyncio.to_thread(guru, "db", "status")
    assert code == 0 and "0001     init" in out and "pending" not in out
    assert not (pgdata_path(tmp_path) / "postmaster.pid").exists()  # each command let go of it
