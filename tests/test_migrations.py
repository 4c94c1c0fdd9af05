"""Migrations: each one upgrades an empty database and downgrades cleanly; the models match head."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from banxway.db.migrate import alembic_config, downgrade, head_revision, upgrade
from banxway.db.models import Base
from banxway.db.session import create_engine
from tests.conftest import fresh_database

TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
ENUM_TYPES = (
    "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
    "WHERE n.nspname = 'public' AND t.typtype = 'e' ORDER BY 1"
)
SEQUENCES = "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"
VIEWS = "SELECT viewname FROM pg_views WHERE schemaname = 'public' ORDER BY 1"
FUNCTIONS = (
    "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
    "WHERE n.nspname = 'public' ORDER BY 1"
)


def revisions_in_order() -> list[str]:
    """Every revision id, base first; the history must be one straight line."""
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()}; merge them"
    return [revision.revision for revision in reversed(list(script.walk_revisions("base", "heads")))]


async def names(engine: AsyncEngine, query: str) -> list[str]:
    async with engine.connect() as connection:
        return list((await connection.execute(text(query))).scalars())


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda conn: MigrationContext.configure(conn).get_current_revision())


async def test_every_migration_upgrades_one_at_a_time_and_downgrades_to_an_empty_database(
    postgres_server_url: str,
) -> None:
    # given an empty database and the migration history
    revisions = revisions_in_order()
    assert revisions[-1] == head_revision()
    async with fresh_database(postgres_server_url, None) as url:
        engine = create_engine(url)
        try:
            assert await names(engine, TABLES) == []
            # when upgrading one revision at a time, then
            tables_after: dict[str, list[str]] = {}
            for revision in revisions:
                await upgrade(engine, revision)
                assert await current_revision(engine) == revision
                tables_after[revision] = await names(engine, TABLES)
            assert set(tables_after[revisions[-1]]) >= {t.name for t in Base.metadata.sorted_tables}

            # when downgrading one revision at a time, then each step lands on the previous revision
            for index in range(len(revisions) - 1, -1, -1):
                await downgrade(engine, "-1")
                previous = revisions[index - 1] if index > 0 else None
                assert await current_revision(engine) == previous, f"downgrade of {revisions[index]}"
                if previous is not None:
                    assert await names(engine, TABLES) == tables_after[previous], (
                        f"downgrade of {revisions[index]} left or removed tables"
                    )

            # then nothing but alembic's own bookkeeping is left
            assert await names(engine, TABLES) == ["alembic_version"]
            assert await names(engine, ENUM_TYPES) == []
            assert await names(engine, SEQUENCES) == []
            assert await names(engine, VIEWS) == []
            assert await names(engine, FUNCTIONS) == []

            # when upgrading to head again, then it works on the downgraded database
            await upgrade(engine)
            assert await current_revision(engine) == revisions[-1]
            assert set(await names(engine, TABLES)) == set(tables_after[revisions[-1]])
        finally:
            await engine.dispose()


async def test_models_and_head_migration_agree(postgres_server_url: str) -> None:
    # given a database at head
    async with fresh_database(postgres_server_url, None) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine)

            # when autogenerate compares the models with it
            def differences(connection: Connection) -> list:
                context = MigrationContext.configure(
                    connection,
                    opts={"compare_type": True, "compare_server_default": False},
                )
                return compare_metadata(context, Base.metadata)

            async with engine.connect() as connection:
                diff = await connection.run_sync(differences)
        finally:
            await engine.dispose()
    # then there is nothing to generate
    assert diff == [], "models and migrations differ; write a migration for:\n" + "\n".join(map(str, diff))
