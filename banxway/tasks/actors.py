"""Dramatiq actors: verb-noun, take ids, idempotent; each calls a resolver through a `SystemContext` and writes
nothing itself (tests/test_actors.py checks it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import dramatiq

from banxway.enums import MessageStatus
from banxway.integrations.email.imap import ImapError
from banxway.logs import get_logger
from banxway.resolvers.actions import action_remind, actions_due
from banxway.resolvers.administration import invitation_email_send
from banxway.resolvers.agents import RetryAgentTask, agent_task_run, agent_tasks_to_requeue
from banxway.resolvers.ai_agent import agent_handle_message
from banxway.resolvers.analysis import analyse_message as analyse
from banxway.resolvers.analytics import rollup_analytics as recompute_rollups
from banxway.resolvers.auth import prune_refresh_tokens as prune_expired_refresh_tokens
from banxway.resolvers.compose import stream_compose as stream_drafts
from banxway.resolvers.delivery import deliver, messages_to_requeue
from banxway.resolvers.dev_sink import SinkStep, dev_sink_advance, dev_sink_next_step
from banxway.resolvers.documents import document_extract_text
from banxway.resolvers.email_ingest import active_account_ids, poll_account, record_poll_failure
from banxway.resolvers.media import fetch_media, transcribe
from banxway.resolvers.messages import release_scheduled, scheduled_due
from banxway.resolvers.meta import refresh_page_token, tokens_to_refresh
from banxway.resolvers.notification_emails import notification_email_send
from banxway.resolvers.sending import RetryLater
from banxway.resolvers.sla import sla_check, sla_checks_due
from banxway.resolvers.threads import snoozes_ending, thread_wake
from banxway.resolvers.web_chat import chat_transcript_send, chat_transcripts_due
from banxway.resolvers.webhook_endpoints import (
    webhook_deliveries_create,
    webhook_deliveries_due,
    webhook_delivery_send,
)
from banxway.resolvers.workflow_engine import (
    RetryStep,
    workflow_run,
    workflow_timers_due,
    workflows_scheduled,
    workflows_start,
)
from banxway.tasks.broker import context, redis_broker

log = get_logger("banxway.tasks")


@dramatiq.actor(queue_name="maintenance", max_retries=3, time_limit=60_000, max_age=3_600_000)
async def prune_refresh_tokens() -> None:
    """Delete refresh tokens that expired more than a day ago."""
    removed = await prune_expired_refresh_tokens(context())
    log.info("pruned refresh tokens", removed=removed)


@dramatiq.actor(queue_name="email", max_retries=0, time_limit=600_000)
async def poll_mailbox(account_id: str) -> None:
    """Import an email account's new mail. A server that cannot be reached is recorded on the account
    (`lastError`) and tried again at the next poll; nothing is lost, the cursor stays."""
    try:
        await poll_account(context(), uuid.UUID(account_id))
    except ImapError as exc:
        await record_poll_failure(context(), uuid.UUID(account_id), f"{exc.step}: {exc.detail}")
        log.warning("mailbox poll failed", account=account_id, step=exc.step, error=exc.detail)


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def poll_mailboxes() -> None:
    """Enqueue a poll of every active email account (the scheduler runs this every EMAIL_POLL_INTERVAL)."""
    for account_id in await active_account_ids(context()):
        poll_mailbox.send(str(account_id))


@dramatiq.actor(
    queue_name="delivery",
    max_retries=30,
    min_backoff=15_000,
    max_backoff=300_000,
    time_limit=180_000,
    max_age=3_900_000,
)
async def deliver_message(message_id: str) -> None:
    """Send a QUEUED outbound message on its channel; a transient failure raises, and Dramatiq retries
    with back-off, or after the provider's Retry-After. Sends at most once however often it is delivered
    (see banxway.resolvers.delivery)."""
    try:
        await deliver(context(), uuid.UUID(message_id))
    except RetryLater as exc:
        if exc.retry_after is None:
            raise
        delay = int(min(max(exc.retry_after, 1.0), 3_600.0) * 1000)
        raise dramatiq.Retry(str(exc), delay=delay) from exc
    _schedule_dev_sink(await dev_sink_next_step(context(), uuid.UUID(message_id)))


@dramatiq.actor(queue_name="delivery", max_retries=5, min_backoff=1_000, max_backoff=30_000, time_limit=60_000)
async def advance_dev_sink_message(message_id: str, status: str) -> None:
    """Development sink (BANXWAY_DEV_SINK): report what a provider would about a message the sink delivered —
    DELIVERED, READ, a call completed — then schedule the next report (see banxway.resolvers.dev_sink)."""
    _schedule_dev_sink(await dev_sink_advance(context(), uuid.UUID(message_id), MessageStatus[status]))


def _schedule_dev_sink(step: SinkStep | None) -> None:
    if step is not None:
        advance_dev_sink_message.send_with_options(args=(str(step.message_id), step.status.name), delay=step.delay_ms)


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def requeue_messages() -> None:
    """Enqueue again what waits too long: QUEUED messages whose job was lost, SENDING ones of a killed job."""
    ids = await messages_to_requeue(context())
    for message_id in ids:
        deliver_message.send(str(message_id))
    if ids:
        log.info("requeued messages", count=len(ids))


# The timers (SLA checks, snoozes, scheduled sends): a sweep each minute enqueues every one due before its next run
# (plus slack), delayed to its instant; overdue ones (a stopped worker, a lost job) at once. The actors they call
# are idempotent, so a timer enqueued by two sweeps does no harm.
TIMER_LOOKAHEAD = timedelta(seconds=90)


def _send_at(actor: dramatiq.Actor, due: list[tuple[uuid.UUID, datetime]]) -> None:
    now = datetime.now(UTC)
    for object_id, at in due:
        delay = max(0, int((at - now).total_seconds() * 1000))
        actor.send_with_options(args=(str(object_id),), delay=delay or None)


@dramatiq.actor(queue_name="maintenance", max_retries=5, min_backoff=1_000, max_backoff=30_000, time_limit=60_000)
async def check_sla(thread_id: str) -> None:
    """Warn and breach a thread's SLA targets that are due (idempotent: each target is warned and breached once)."""
    recorded = await sla_check(context(), uuid.UUID(thread_id))
    if recorded:
        log.info("sla", thread=thread_id, events=recorded)


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def check_slas() -> None:
    """The scheduler's SLA timer (every minute): a `check_sla` for every thread whose warning or due time falls
    before the next run, delayed to that instant; overdue ones (a lost job, a stopped worker) at once."""
    _send_at(check_sla, await sla_checks_due(context(), TIMER_LOOKAHEAD))


@dramatiq.actor(queue_name="delivery", max_retries=5, min_backoff=1_000, max_backoff=30_000, time_limit=60_000)
async def release_message(message_id: str) -> None:
    """A scheduled message's time came: QUEUED, and its MESSAGE_STATUS_CHANGED starts the delivery (idempotent)."""
    await release_scheduled(context(), uuid.UUID(message_id))


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def release_messages() -> None:
    """The scheduler's timer of scheduled sends (every minute): a `release_message` for every message due before
    the next run, delayed to its instant."""
    _send_at(release_message, await scheduled_due(context(), TIMER_LOOKAHEAD))


@dramatiq.actor(queue_name="maintenance", max_retries=5, min_backoff=1_000, max_backoff=30_000, time_limit=60_000)
async def rearm_release(message_id: str) -> None:
    """A scheduled message's time was moved (messageUpdateScheduled): its `release_message` now, delayed to the new
    time, when that falls before the sweep's next run (later times the sweep finds itself)."""
    _send_at(release_message, await scheduled_due(context(), TIMER_LOOKAHEAD, uuid.UUID(message_id)))


@dramatiq.actor(queue_name="maintenance", max_retries=5, min_backoff=1_000, max_backoff=30_000, time_limit=60_000)
async def remind_action(action_id: str) -> None:
    """An action is due: its assignee (or creator) is notified, once per due time (idempotent)."""
    await action_remind(context(), uuid.UUID(action_id))


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def remind_actions() -> None:
    """The scheduler's timer of actions' due times (every minute)."""
    _send_at(remind_action, await actions_due(context(), TIMER_LOOKAHEAD))


@dramatiq.actor(queue_name="maintenance", max_retries=5, min_backoff=1_000, max_backoff=30_000, time_limit=60_000)
async def wake_thread(thread_id: str) -> None:
    """A snoozed thread's time is up: it shows in the inbox again (idempotent)."""
    await thread_wake(context(), uuid.UUID(thread_id))


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def wake_threads() -> None:
    """The scheduler's snooze timer (every minute): a `wake_thread` for every snooze ending before the next run,
    delayed to that instant."""
    _send_at(wake_thread, await snoozes_ending(context(), TIMER_LOOKAHEAD))


@dramatiq.actor(queue_name="workflows", max_retries=3, min_backoff=1_000, max_backoff=30_000, time_limit=60_000)
async def start_workflows(event_id: int) -> None:
    """An event was committed: start the workflows it triggers, end the waits it answers, run what is due
    (idempotent: an instance per workflow, thread and event)."""
    for instance_id in await workflows_start(context(), event_id):
        run_workflow.send(str(instance_id))


@dramatiq.actor(queue_name="workflows", max_retries=10, min_backoff=1_000, max_backoff=60_000, time_limit=300_000)
async def run_workflow(instance_id: str) -> None:
    """Run a workflow instance's steps until it waits, ends or fails; a step that may pass later is retried with
    the engine's back-off (it counts the attempts; each step runs at most once however often this is delivered)."""
    try:
        status = await workflow_run(context(), uuid.UUID(instance_id))
    except RetryStep as exc:
        raise dramatiq.Retry(str(exc), delay=exc.delay_s * 1000) from exc
    log.info("workflow", instance=instance_id, status=status)


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def resume_workflows() -> None:
    """The scheduler's timer of workflow waits (every minute): a `run_workflow` for every wait ending before the
    next run, delayed to its instant."""
    _send_at(run_workflow, await workflow_timers_due(context(), TIMER_LOOKAHEAD))


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def run_scheduled_workflows() -> None:
    """The scheduler's timer of SCHEDULE workflows (every minute): those whose cron instant came start."""
    for instance_id in await workflows_scheduled(context()):
        run_workflow.send(str(instance_id))


@dramatiq.actor(queue_name="media", max_retries=10, min_backoff=10_000, max_backoff=600_000, time_limit=300_000)
async def fetch_message_media(message_id: str) -> None:
    """Download an inbound message's media (WhatsApp/SMS) into attachment storage; retried while the
    provider cannot be reached, recorded on the message when it refuses."""
    await fetch_media(context(), uuid.UUID(message_id))


@dramatiq.actor(queue_name="media", max_retries=10, min_backoff=30_000, max_backoff=900_000, time_limit=600_000)
async def transcribe_call(message_id: str) -> None:
    """Transcribe a recorded call into its message (without an AI provider: says "no transcript")."""
    await transcribe(context(), uuid.UUID(message_id))


@dramatiq.actor(queue_name="compose", max_retries=0, time_limit=180_000, max_age=120_000)
async def stream_compose(compose_id: str) -> None:
    """Stream the drafts a composeStart asked for into their Redis stream (read by composeStream and GET
    /compose/<id>/stream). Never retried: a failure is told to the readers as an `error`; the agent asks again."""
    await stream_drafts(context(), uuid.UUID(compose_id))


@dramatiq.actor(queue_name="analysis", max_retries=5, min_backoff=5_000, max_backoff=300_000, time_limit=120_000)
async def analyse_message(message_id: str) -> None:
    """Analyse an inbound message (language, sentiment, intent, entities) and link its thread to the shipment it
    names; idempotent."""
    await analyse(context(), uuid.UUID(message_id))


@dramatiq.actor(
    queue_name="ai_agent",
    max_retries=3,
    min_backoff=2_000,
    max_backoff=60_000,
    time_limit=120_000,
    max_age=900_000,
)
async def run_ai_agent(message_id: str) -> None:
    """Let the AI agent answer an inbound message or hand it over, or suspend it on a thread a person replied on
    (banxway.resolvers.ai_agent); once per message however often it is delivered. An answer older than 15 minutes
    is not worth sending: max_age drops it."""
    outcome = await agent_handle_message(context(), uuid.UUID(message_id))
    log.info("ai agent", message=message_id, outcome=outcome)


@dramatiq.actor(
    queue_name="agents",
    max_retries=3,
    min_backoff=5_000,
    max_backoff=120_000,
    time_limit=300_000,
    max_age=3_600_000,
)
async def run_agent_task(task_id: str) -> None:
    """Call an agent task's tool and post its answer on the thread (banxway.resolvers.agents): runs at most once
    however often it is delivered; a transient failure raises, and Dramatiq retries with back-off (the last
    attempt's failure fails the task)."""
    try:
        status = await agent_task_run(context(), uuid.UUID(task_id))
    except RetryAgentTask as exc:
        log.info("agent task will be retried", task=task_id, error=str(exc))
        raise
    log.info("agent task", task=task_id, status=status)


@dramatiq.actor(queue_name="documents", max_retries=3, min_backoff=5_000, max_backoff=60_000, time_limit=120_000)
async def extract_document_text(document_id: str) -> None:
    """Read a new shipment document's text (pypdf's text layer; NO_TEXT for images, FAILED with the reason for an
    encrypted or broken PDF, which is not retried) and the entities in it; idempotent."""
    state = await document_extract_text(context(), uuid.UUID(document_id))
    log.info("document text", document=document_id, state=state.name if state else None)


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def requeue_agent_tasks() -> None:
    """Enqueue again the agent tasks whose job was lost or whose worker died mid-call."""
    ids = await agent_tasks_to_requeue(context())
    for task_id in ids:
        run_agent_task.send(str(task_id))
    if ids:
        log.info("requeued agent tasks", count=len(ids))


@dramatiq.actor(queue_name="email", max_retries=10, min_backoff=15_000, max_backoff=600_000, time_limit=120_000)
async def send_invitation(invitation_id: str) -> None:
    """Mail an invitation's token to the invited address (banxway.resolvers.administration); at most once. A
    transient SMTP failure raises, and Dramatiq retries with back-off."""
    sent = await invitation_email_send(context(), uuid.UUID(invitation_id))
    log.info("invitation email", invitation=invitation_id, sent=sent)


@dramatiq.actor(queue_name="email", max_retries=10, min_backoff=15_000, max_backoff=600_000, time_limit=120_000)
async def send_notification_email(notification_id: str) -> None:
    """Mail a notification to a user who asked for its type by email (banxway.resolvers.notifications); at most
    once. In the user's quiet hours it comes back at their end (a delayed job); a transient SMTP failure raises,
    and Dramatiq retries with back-off."""
    later = await notification_email_send(context(), uuid.UUID(notification_id))
    if later is not None:
        delay = max(int((later - datetime.now(UTC)).total_seconds() * 1000), 1_000)
        send_notification_email.send_with_options(args=(notification_id,), delay=delay)


@dramatiq.actor(queue_name="webhooks", max_retries=5, min_backoff=1_000, max_backoff=60_000, time_limit=60_000)
async def deliver_webhooks(event_id: int) -> None:
    """A relayed event that an outbound webhook endpoint subscribes to: its deliveries are written (once per
    endpoint, however often this runs) and each is sent (banxway.resolvers.webhook_endpoints)."""
    for delivery_id in await webhook_deliveries_create(context(), event_id):
        send_webhook.send(str(delivery_id))


@dramatiq.actor(queue_name="webhooks", max_retries=3, min_backoff=5_000, max_backoff=60_000, time_limit=180_000)
async def send_webhook(delivery_id: str) -> None:
    """One attempt of a webhook delivery that is due (claimed first: never sent twice for one attempt); a transient
    failure schedules the next attempt, delayed to its time (the `requeue_webhook_deliveries` sweep also finds it,
    so a lost job or a killed worker loses nothing)."""
    outcome = await webhook_delivery_send(context(), uuid.UUID(delivery_id))
    if outcome is not None and outcome.next_attempt_at is not None:
        _send_at(send_webhook, [(uuid.UUID(delivery_id), outcome.next_attempt_at)])
    if outcome is not None:
        log.info("webhook delivery", delivery=delivery_id, status=outcome.status.name)


@dramatiq.actor(queue_name="webhooks", max_retries=3, min_backoff=1_000, max_backoff=30_000, time_limit=60_000)
async def send_webhook_deliveries(endpoint_id: str) -> None:
    """An admin asked an endpoint's deliveries to go now (webhookDeliveryRetry, webhookEndpointReplay)."""
    _send_at(send_webhook, await webhook_deliveries_due(context(), timedelta(0), uuid.UUID(endpoint_id)))


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def requeue_webhook_deliveries() -> None:
    """The scheduler's timer of webhook retries (every minute): a `send_webhook` for every delivery due before the
    next run, delayed to its time; overdue ones (a lost job, a worker that died mid-attempt) at once."""
    _send_at(send_webhook, await webhook_deliveries_due(context(), TIMER_LOOKAHEAD))


@dramatiq.actor(queue_name="email", max_retries=0, time_limit=300_000, max_age=300_000)
async def send_chat_transcripts() -> None:
    """The scheduler's (every minute): mail web chat visitors who gave an email and left agents' replies unseen
    their transcript (banxway.resolvers.web_chat); once per batch of replies. A failure waits for the next run."""
    for visitor_id in await chat_transcripts_due(context()):
        try:
            await chat_transcript_send(context(), visitor_id)
        except Exception as exc:  # a transient SMTP failure: the next run tries again
            log.warning("chat transcript not sent", visitor=str(visitor_id), error=str(exc))


@dramatiq.actor(queue_name="maintenance", max_retries=3, time_limit=900_000, max_age=3_600_000)
async def rollup_analytics(days: int = 2) -> None:
    """Recompute the analytics rollups (`analytics_daily`) of the last `days` complete local days of every
    organization (the scheduler: hourly; idempotent, the rows of a day are replaced)."""
    written = await recompute_rollups(context(), days)
    log.info("analytics rolled up", rows=written, days=days)


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
async def refresh_meta_tokens() -> None:
    """The scheduler's timer of Meta page tokens (hourly): a `refresh_meta_token` for each META integration whose
    long-lived token expires within ten days (or whose expiry is unknown)."""
    for integration_id in await tokens_to_refresh(context()):
        refresh_meta_token.send(str(integration_id))


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000, max_age=3_600_000)
async def refresh_meta_token(integration_id: str) -> None:
    """Exchange a META integration's page token for a new long-lived one (fb_exchange_token); a failure keeps the
    old token and notifies the organization's admins (the next hourly run tries again)."""
    await refresh_page_token(context(), uuid.UUID(integration_id))


ALL = [
    rollup_analytics,
    prune_refresh_tokens,
    poll_mailbox,
    poll_mailboxes,
    deliver_message,
    advance_dev_sink_message,
    requeue_messages,
    check_sla,
    check_slas,
    wake_thread,
    wake_threads,
    release_message,
    release_messages,
    rearm_release,
    remind_action,
    remind_actions,
    start_workflows,
    run_workflow,
    resume_workflows,
    run_scheduled_workflows,
    fetch_message_media,
    transcribe_call,
    stream_compose,
    analyse_message,
    run_ai_agent,
    run_agent_task,
    requeue_agent_tasks,
    deliver_webhooks,
    send_webhook,
    send_webhook_deliveries,
    requeue_webhook_deliveries,
    send_invitation,
    send_notification_email,
    send_chat_transcripts,
    extract_document_text,
    refresh_meta_tokens,
    refresh_meta_token,
]


def setup_broker(redis_url: str) -> dramatiq.Broker:
    """Bind every actor to a Redis broker; must run before actors are sent or consumed."""
    broker = redis_broker(redis_url)
    for actor in ALL:
        actor.broker = broker
        broker.declare_actor(actor)
    return broker
