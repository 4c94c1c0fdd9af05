"""`banxway`: serve, worker, scheduler, migrate, org/user create, seed, export-schema."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from banxway import gc_tuning
from banxway.settings import (
    Settings,
    SettingsError,
    environment_variables,
    load_settings,
    redact_url,
)

# uvicorn's WebSocket keep-alive: a ping every 20 s, and a peer that does not answer within 20 s more is closed
# (1011). A subscriber that stops reading for less than that finds its subscription ended with SLOW_CONSUMER.
SERVE_WS_PING_INTERVAL = 20.0


def _env_help() -> str:
    rows = "\n".join(
        f"  {name:<32} {description} [default: {default}]" for name, default, description in environment_variables()
    )
    return "Configuration is read from these environment variables:\n\n\b\n" + rows


app = typer.Typer(
    help="Banxway: the communication hub of a freight forwarder, served as one GraphQL API.",
    epilog=_env_help(),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
org_app = typer.Typer(help="Manage organizations.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(org_app, name="org")
app.add_typer(user_app, name="user")
operations_app = typer.Typer(help="Persisted GraphQL operations.", no_args_is_help=True)
app.add_typer(operations_app, name="operations")

_VERBOSE = False


@app.callback()
def _options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what a command does, the migrations it runs included.")
    ] = False,
) -> None:
    global _VERBOSE
    _VERBOSE = verbose


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _settings(*, server: bool = False) -> Settings:
    """The settings, logging configured. A one-shot command (org create, migrate, seed, …) says what it did in a
    line of its own: the migrations' log lines only with --verbose; `serve` logs them (it is a server's log)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    from banxway.logs import configure_logging

    configure_logging(settings)
    if not (server or _VERBOSE):
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


# -- services: external URLs, a running serve's embedded ones, or our own ---------------


def _runtime_file(settings: Settings) -> Path:
    return settings.data_dir / "runtime.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def services(settings: Settings, *, owner: bool = False) -> Iterator[Settings]:
    """Yield settings whose DATABASE_URL and REDIS_URL point at running servers.

    Unset URLs mean the embedded servers: started here, or — for commands other
    than `serve` (`owner=False`) — those of a `serve` already running on the
    same data directory.
    """
    from banxway.embedded import EmbeddedError, embedded_services

    if not settings.embedded:
        yield settings
        return
    runtime = _runtime_file(settings)
    if not owner and runtime.exists():
        info = json.loads(runtime.read_text())
        if _pid_alive(int(info.get("pid", 0))):
            yield settings.model_copy(
                update={
                    "database_url": settings.database_url or info["database_url"],
                    "redis_url": settings.redis_url or info["redis_url"],
                }
            )
            return
    try:
        with embedded_services(
            settings.data_dir,
            database=settings.database_url is None,
            redis=settings.redis_url is None,
        ) as urls:
            resolved = settings.model_copy(
                update={
                    "database_url": settings.database_url or urls.database_url,
                    "redis_url": settings.redis_url or urls.redis_url,
                }
            )
            if owner:
                runtime.write_text(
                    json.dumps(
                        {
                            "pid": os.getpid(),
                            "database_url": resolved.database_url,
                            "redis_url": resolved.redis_url,
                        }
                    )
                )
            try:
                yield resolved
            finally:
                if owner:
                    runtime.unlink(missing_ok=True)
    except EmbeddedError as exc:
        raise _fail(str(exc)) from None


def _run(coro: object) -> object:
    import uvloop

    return uvloop.run(coro)  # type: ignore[arg-type]


async def _migrate(settings: Settings) -> None:
    from banxway.db.migrate import upgrade
    from banxway.db.session import create_engine

    engine = create_engine(settings.database_url)  # type: ignore[arg-type]
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def _terminate_on_sigterm() -> None:
    """SIGTERM ends the process through SystemExit, so that clean-up (embedded servers) runs."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)


# -- commands ---------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    demo: Annotated[
        bool,
        typer.Option("--demo", help="Create the demo organization and print its login."),
    ] = False,
    migrate: Annotated[bool, typer.Option(help="Run database migrations before serving.")] = True,
) -> None:
    """Serve the API (and, when embedded, a worker and the scheduler in the same process)."""
    started = time.monotonic()
    settings = _settings(server=True)
    if demo and not settings.production:
        # the demo sends: what has no account or number of its own goes to the development sink (its worker too)
        settings = settings.model_copy(update={"dev_sink": True})
    _terminate_on_sigterm()
    with services(settings, owner=True) as resolved:
        # embedded: one process does it all, the background work included; the worker is stopped here,
        # outside the event loop, before the embedded servers it uses go away
        worker = _start_worker(resolved, 2) if settings.embedded else None
        try:
            with contextlib.suppress(KeyboardInterrupt):
                _run(
                    _serve(
                        resolved,
                        host,
                        port,
                        demo,
                        migrate,
                        started,
                        embedded=settings.embedded,
                    )
                )
        finally:
            if worker is not None:
                # a second Ctrl-C (uv run forwards the signal the terminal already sent) must not cut the
                # worker's shutdown short: its threads would keep the process alive
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                worker.stop(timeout=10_000)
    typer.echo("Banxway stopped.")


async def _serve(
    settings: Settings,
    host: str,
    port: int,
    demo: bool,
    migrate: bool,
    started: float,
    *,
    embedded: bool,
) -> None:
    import uvicorn

    from banxway.app import build_state, create_app

    if migrate:
        await _migrate(settings)
    state = await build_state(settings)
    login = None
    if demo:
        from banxway.resolvers.demo import seed_demo

        login = await seed_demo(state)

    scheduler = _start_scheduler(state.redis, settings) if embedded else None
    mail_watch = _start_mail_watch(state) if embedded else None

    application = create_app(settings, state=state)
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        loop="none",
        http="httptools",
        ws="auto",
        log_config=None,
        lifespan="on",
        ws_ping_interval=SERVE_WS_PING_INTERVAL,
        # live events, most of what a socket carries, go uncompressed anyway (banxway.wsframes); a connection's
        # zlib contexts would cost ~40 KiB of memory each
        ws_per_message_deflate=False,
    )
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.05)
        if settings.gc_tuning:
            gc_tuning.after_startup()
        url = f"http://{host}:{port}/graphql"
        typer.echo(f"Banxway is ready in {time.monotonic() - started:.1f} s.")
        typer.echo(f"  GraphQL API: {url}" + ("" if settings.production else f"  (GraphiQL: open {url} in a browser)"))
        typer.echo(f"  Database: {redact_url(settings.database_url)}")
        if settings.dev_sink_enabled:
            typer.echo(
                "  Development sink: on. Messages with no email account or number of their own are delivered to "
                f"http://{host}:{port}/dev/outbox?token=<accessToken> (and the devOutbox query)."
            )
        if login is not None:
            typer.echo(f"  Demo login: {login.email} / {login.password} (organization '{login.organization}')")
            from banxway.resolvers.demo import DEMO_TEAM

            team = ", ".join(f"{email} ({role.value})" for email, _name, role in DEMO_TEAM)
            typer.echo(f"  Other demo users, same password: {team}")
        sys.stdout.flush()
        if settings.gc_tuning:
            await gc_tuning.collect_periodically()  # (until the server stops: the task is cancelled)

    announcer = asyncio.create_task(announce())
    try:
        await server.serve()
    finally:
        announcer.cancel()
        if scheduler is not None:
            scheduler[0].shutdown(wait=False)
        if mail_watch is not None:
            mail_watch.cancel()
        # A second Ctrl-C may cancel these awaits; the process is ending and loses nothing by it.
        with contextlib.suppress(asyncio.CancelledError):
            if scheduler is not None:
                await scheduler[1].release()
            await state.aclose()


def _start_worker(settings: Settings, threads: int):
    from dramatiq import Worker

    from banxway.tasks.actors import setup_broker
    from banxway.tasks.broker import set_state
    from banxway.tasks.consequences import new_worker_state

    broker = setup_broker(settings.redis_url)  # type: ignore[arg-type]
    set_state(new_worker_state(settings))
    worker = Worker(broker, worker_threads=threads)
    worker.start()
    return worker


def _start_mail_watch(state: Any) -> asyncio.Task[None]:
    """IMAP IDLE on every active email account: new mail is polled at once, not at the next interval."""
    from banxway.context import SystemContext
    from banxway.tasks.actors import poll_mailbox
    from banxway.tasks.idle import watch_mailboxes

    async def on_mail(account_id: object) -> None:
        try:
            await asyncio.to_thread(poll_mailbox.send, str(account_id))
        except Exception as exc:  # Redis down: the periodic poll picks the mail up
            typer.echo(f"Could not enqueue a poll of {account_id}: {exc}", err=True)

    return asyncio.create_task(watch_mailboxes(SystemContext(state), on_mail))


def _start_scheduler(redis: object, settings: Settings):
    from banxway.tasks.scheduler import build_scheduler

    scheduler, lease = build_scheduler(redis, settings)  # type: ignore[arg-type]
    scheduler.start()
    return scheduler, lease


@app.command()
def worker(threads: Annotated[int, typer.Option(help="Worker threads.")] = 4) -> None:
    """Run a background worker (Dramatiq actors)."""
    settings = _settings()
    _terminate_on_sigterm()
    with services(settings) as resolved:
        running = _start_worker(resolved, threads)
        typer.echo(f"Banxway worker running with {threads} threads; Ctrl-C stops it.")
        try:
            while True:
                time.sleep(1)
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            running.stop()


@app.command()
def scheduler() -> None:
    """Run the scheduler that enqueues periodic work (one leader among many)."""
    settings = _settings()
    _terminate_on_sigterm()

    async def main(resolved: Settings) -> None:
        from banxway.state import new_state
        from banxway.tasks.actors import setup_broker

        setup_broker(resolved.redis_url)  # type: ignore[arg-type]
        state = new_state(resolved, pool_size=2, max_overflow=2)
        running, lease = _start_scheduler(state.redis, resolved)
        mail_watch = _start_mail_watch(state)
        typer.echo("Banxway scheduler running (with IMAP IDLE watchers); Ctrl-C stops it.")
        try:
            await asyncio.Event().wait()
        finally:
            running.shutdown(wait=False)
            mail_watch.cancel()
            await lease.release()
            await state.aclose()

    with services(settings) as resolved, contextlib.suppress(KeyboardInterrupt):
        _run(main(resolved))


@app.command()
def migrate() -> None:
    """Upgrade the database to the latest migration."""
    settings = _settings()
    with services(settings) as resolved:
        _run(_migrate(resolved))
        from banxway.db.migrate import head_revision

        typer.echo(f"Database is at revision {head_revision()}.")


async def _with_session(settings: Settings, work):
    from banxway.db.session import create_engine, create_sessionmaker, system_session

    await _migrate(settings)
    engine = create_engine(settings.database_url)  # type: ignore[arg-type]
    try:
        async with system_session(create_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def _domain(call):
    from banxway.errors import DomainError

    try:
        return call()
    except DomainError as exc:
        field = f" ({'.'.join(exc.field)})" if exc.field else ""
        raise _fail(f"{exc.code}{field}: {exc.message}") from None


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Argument(help="The organization's name.")],
    admin_email: Annotated[str, typer.Option(help="Email of its first admin.")],
    admin_password: Annotated[str, typer.Option(help="Password of its first admin (8+ characters).")],
    slug: Annotated[str | None, typer.Option(help="Unique short name (default: from the name).")] = None,
) -> None:
    """Create an organization and its first admin."""
    from banxway.resolvers.users import organization_create, slugify

    settings = _settings()
    with services(settings) as resolved:

        async def work(session):
            return await organization_create(
                session,
                name=name,
                slug=slug or slugify(name),
                admin_email=admin_email,
                admin_password=admin_password,
            )

        organization, admin = _domain(lambda: _run(_with_session(resolved, work)))
    typer.echo(f"Created organization '{organization.name}' (slug {organization.slug}) with admin {admin.email}.")


@user_app.command("create")
def user_create(
    org: Annotated[str, typer.Option(help="Organization slug.")],
    email: Annotated[str, typer.Option(help="The user's email.")],
    password: Annotated[str, typer.Option(help="The user's password (8+ characters).")],
    role: Annotated[str, typer.Option(help="admin | manager | validator | support | viewer")] = "support",
    name: Annotated[str | None, typer.Option(help="Display name (default: from the email).")] = None,
) -> None:
    """Create a user in an organization."""
    from sqlalchemy import select

    from banxway.db.models import Organization, Role
    from banxway.db.session import create_sessionmaker, tenant_session
    from banxway.errors import DomainError
    from banxway.resolvers.users import create_user

    try:
        role_value = Role(role.lower())
    except ValueError:
        raise _fail(f"Invalid --role {role!r}: expected one of {', '.join(r.value for r in Role)}") from None
    settings = _settings()
    with services(settings) as resolved:

        async def work(session):
            organization = await session.scalar(select(Organization).where(Organization.slug == org.lower()))
            if organization is None:
                raise DomainError("NOT_FOUND", f"No organization with slug '{org}'.", "org")
            async with tenant_session(create_sessionmaker(session.bind), organization.id) as scoped:
                return await create_user(
                    scoped,
                    organization.id,
                    email=email,
                    name=name or email.split("@")[0],
                    role=role_value,
                    password=password,
                )

        user = _domain(lambda: _run(_with_session(resolved, work)))
    typer.echo(f"Created {user.role.value} {user.email} in organization '{org}'.")


@app.command()
def seed(
    demo: Annotated[bool, typer.Option("--demo", help="Create the demo organization.")] = False,
) -> None:
    """Load data: `--demo` creates the demo organization and its users."""
    if not demo:
        raise _fail("Nothing to seed: pass --demo.")
    from banxway.resolvers.demo import seed_demo

    settings = _settings()

    async def work(resolved: Settings):
        from banxway.app import build_state

        await _migrate(resolved)
        state = await build_state(resolved)
        try:
            return await seed_demo(state)
        finally:
            await state.aclose()

    with services(settings) as resolved:
        login = _run(work(resolved))
    typer.echo(f"Demo ready. Login: {login.email} / {login.password} (organization '{login.organization}')")
    if login.replies_skipped:
        typer.echo(
            f"  {login.replies_skipped} demo replies were not sent: their channels are not configured. "
            "With BANXWAY_DEV_SINK=true (as `serve --demo` sets) they go to the development sink."
        )


@app.command("mcp")
def mcp_command(
    stdio: Annotated[
        bool, typer.Option("--stdio", help="Speak MCP on standard input and output, for a desktop agent.")
    ] = False,
    url: Annotated[
        str, typer.Option(help="The MCP endpoint of a running `banxway serve`.")
    ] = "http://127.0.0.1:8000/mcp",
    token: Annotated[
        str | None,
        typer.Option(envvar="BANXWAY_API_TOKEN", help="A personal API token (bxp_...).", show_default=False),
    ] = None,
) -> None:
    """Serve MCP to a desktop agent over stdio, bridged to a running server's POST /mcp with an API token."""
    if not stdio:
        raise _fail("Give --stdio (for a desktop agent); an HTTP agent connects to POST /mcp of `banxway serve`.")
    if not token:
        raise _fail("Give a personal API token with --token or BANXWAY_API_TOKEN (create one with apiTokenCreate).")
    from banxway.mcp import BridgeError, describe_failure, run_stdio_bridge

    # stdout carries the protocol: everything else goes to stderr, warnings only
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="banxway mcp: %(levelname)s %(message)s")
    try:
        _run(run_stdio_bridge(url, token))
    except BridgeError as exc:
        raise _fail(str(exc), code=1) from None
    except KeyboardInterrupt:
        return
    except Exception as exc:
        raise _fail(f"The MCP bridge stopped: {describe_failure(exc)}", code=1) from None


@app.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL ('-' for standard output).")] = Path(
        "schema.graphql"
    ),
) -> None:
    """Write the GraphQL schema (SDL) to schema.graphql."""
    from banxway.schema import schema_sdl

    sdl = schema_sdl()
    if str(output) == "-":
        typer.echo(sdl, nl=False)
        return
    output.write_text(sdl)
    typer.echo(f"Wrote {output} ({len(sdl.splitlines())} lines).")


@operations_app.command("hash")
def operations_hash(
    files: Annotated[list[Path], typer.Argument(help=".graphql files, each sent by the client as it is.")],
    style: Annotated[
        str, typer.Option("--format", help="apollo (persisted-query manifest) or map ({sha256: query}).")
    ] = "apollo",
) -> None:
    """Print the manifest of the operations in FILES, for BANXWAY_GRAPHQL_OPERATIONS_FILE."""
    from graphql import GraphQLError

    from banxway.schema.persisted import manifest_of

    if style not in ("apollo", "map"):
        raise _fail(f"Invalid --format {style!r}: expected apollo or map")
    try:
        manifest = manifest_of(files)
    except OSError as exc:
        raise _fail(f"Cannot read {exc.filename}: {exc.strerror}") from None
    except GraphQLError as exc:
        raise _fail(f"Not a GraphQL document: {exc.message}") from None
    if style == "map":
        manifest = {operation["id"]: operation["body"] for operation in manifest["operations"]}
    typer.echo(json.dumps(manifest, indent=2))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
