"""IMAP IDLE: new mail is noticed within a second or two instead of at the next poll.

One watcher task per active account; when the server signals new mail, `on_mail(account_id)` runs
(the scheduler enqueues `poll_mailbox`). Servers without IDLE are left to the periodic poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from banxway.context import SystemContext
from banxway.integrations.email import imap
from banxway.logs import get_logger
from banxway.resolvers.email_ingest import email_account, watched_accounts
from banxway.resolvers.email_oauth import imap_config_for

log = get_logger("banxway.email")

IDLE_SECONDS = 60.0  # IDLE is renewed this often (RFC 2177 asks for less than 29 minutes)
REFRESH_SECONDS = 15.0  # how often the set of accounts is re-read
# IDLE holds a thread per account for up to IDLE_SECONDS: its own pool, not the loop's default one
# (which the ingest, enqueueing and the scheduler need)
_IDLE_THREADS = ThreadPoolExecutor(max_workers=256, thread_name_prefix="imap-idle")


async def watch_mailboxes(ctx: SystemContext, on_mail: Callable[[uuid.UUID], Awaitable[None]]) -> None:
    """Run until cancelled: a watcher per active account, restarted when the account changes."""
    watchers: dict[uuid.UUID, tuple[tuple[object, ...], asyncio.Task[None]]] = {}
    try:
        while True:
            accounts = await watched_accounts(ctx)
            for account_id, (connection, task) in list(watchers.items()):
                # restarted only when the mailbox it watches changes (polls touch the row all the time)
                if accounts.get(account_id) != connection or task.done():
                    task.cancel()
                    del watchers[account_id]
            for account_id, connection in accounts.items():
                if account_id not in watchers:
                    task = asyncio.create_task(_watch(ctx, account_id, on_mail))
                    watchers[account_id] = (connection, task)
            await asyncio.sleep(REFRESH_SECONDS)
    finally:
        for _, task in watchers.values():
            task.cancel()
        for _, task in watchers.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _watch(ctx: SystemContext, account_id: uuid.UUID, on_mail: Callable[[uuid.UUID], Awaitable[None]]) -> None:
    settings = ctx.settings
    while True:
        account = await email_account(ctx, account_id)
        if account is None:
            return
        try:
            config = await imap_config_for(ctx, account)  # a fresh access token for an OAuth account
            wait = functools.partial(
                imap.wait_for_mail,
                config,
                timeout=IDLE_SECONDS,
                uidvalidity=account.uidvalidity,
                last_uid=account.last_uid,
            )
            signalled = await asyncio.get_running_loop().run_in_executor(_IDLE_THREADS, wait)
        except imap.ImapError as exc:
            log.warning("IMAP IDLE failed; relying on polls for a while", account=str(account_id), error=str(exc))
            await asyncio.sleep(settings.email_poll_interval_seconds)
            continue
        if signalled:
            await asyncio.shield(on_mail(account_id))  # a watcher restart must not lose the poll it asked for
            await asyncio.sleep(0.5)  # let the poll advance the cursor before idling again
        elif signalled is False and not await _supports_idle(config):
            return  # no IDLE on this server: the periodic poll does the work


async def _supports_idle(config: imap.ImapConfig) -> bool:
    try:
        return await asyncio.to_thread(imap.supports_idle, config)
    except Exception:  # unreachable now: try IDLE again later
        return True
