"""Configuration: one `Settings` object read from the environment.

Every variable is listed by `banxway --help` and in the README. An invalid value
stops start-up with one line naming the variable (`SettingsError`); passwords in
URLs are never printed (`redact_url`).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url


class SettingsError(Exception):
    """A configuration problem, told in one line that names the variable."""


_SECRET_QUERY_KEYS = {"password", "pass", "pwd", "secret", "token"}


def redact_url(url: str | None) -> str | None:
    """Return `url` with any password (in the userinfo or a query parameter) replaced by `***`."""
    if not url:
        return url
    try:
        parsed = make_url(url)
    except Exception:  # not a URL we can parse: hide everything after the scheme
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"
    secret_keys = [key for key in parsed.query if key.lower() in _SECRET_QUERY_KEYS]
    if not parsed.password and not secret_keys:
        return url
    if secret_keys:
        parsed = parsed.update_query_dict({key: "***" for key in secret_keys})
    return parsed.render_as_string(hide_password=True)


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("banxway", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    database_url: str | None = Field(
        None,
        alias="DATABASE_URL",
        description="PostgreSQL URL (postgresql://user:pass@host:5432/db). "
        "Unset: an embedded PostgreSQL starts in the data directory.",
    )
    redis_url: str | None = Field(
        None,
        alias="REDIS_URL",
        description="Redis URL (redis://host:6379/0). Unset: an embedded Redis starts in the data directory.",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        alias="BANXWAY_DATA_DIR",
        description="Where embedded databases, the generated secret key and attachments live "
        "(default: the per-user data directory).",
    )
    secret_key: str | None = Field(
        None,
        alias="BANXWAY_SECRET_KEY",
        description="Signs tokens and derives encryption keys; at least 32 characters. "
        "Generated once and kept in the data directory unless production.",
        repr=False,
    )
    env: Literal["development", "production"] = Field(
        "development",
        alias="BANXWAY_ENV",
        description="development or production (production masks errors, disables GraphiQL, "
        "requires BANXWAY_SECRET_KEY).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        alias="BANXWAY_CORS_ORIGINS",
        description="Comma-separated origins allowed to call the API from a browser (unset in development: "
        "http://localhost and http://127.0.0.1 on any port).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", alias="BANXWAY_LOG_LEVEL", description="DEBUG, INFO, WARNING or ERROR."
    )
    log_format: Literal["console", "json"] | None = Field(
        None,
        alias="BANXWAY_LOG_FORMAT",
        description="console or json (default: json in production, console otherwise).",
    )
    graphql_max_depth: int = Field(
        15,
        ge=1,
        alias="BANXWAY_GRAPHQL_MAX_DEPTH",
        description="Deepest allowed GraphQL selection.",
    )
    graphql_max_tokens: int = Field(
        5000,
        ge=10,
        alias="BANXWAY_GRAPHQL_MAX_TOKENS",
        description="Most tokens in one GraphQL document.",
    )
    graphql_max_aliases: int = Field(
        30,
        ge=1,
        alias="BANXWAY_GRAPHQL_MAX_ALIASES",
        description="Most aliases in one GraphQL document.",
    )
    graphql_max_fields: int = Field(
        2000,
        ge=10,
        alias="BANXWAY_GRAPHQL_MAX_FIELDS",
        description="Most fields one GraphQL operation selects once its fragments are expanded (counted before "
        "validation, in linear time).",
    )
    gc_tuning: bool = Field(
        True,
        alias="BANXWAY_GC_TUNING",
        description="banxway serve freezes its startup heap and spaces full garbage collections out, so that they "
        "do not stop the event loop every few seconds under load (banxway.gc_tuning); off: CPython's defaults.",
    )
    graphql_compiled: Literal["on", "off", "verify"] = Field(
        "on",
        alias="BANXWAY_GRAPHQL_COMPILED",
        description="on: queries the compiler understands (the inbox, a thread) are answered by one SQL statement; "
        "off: every operation by the executor; verify: both, failing the operation when they differ (tests).",
    )
    graphql_persisted_only: bool = Field(
        False,
        alias="BANXWAY_GRAPHQL_PERSISTED_ONLY",
        description="Run only the operations of BANXWAY_GRAPHQL_OPERATIONS_FILE (by hash, or by a text whose "
        "sha256 is registered); any other is refused as PERSISTED_QUERY_NOT_ALLOWED and APQ registers nothing.",
    )
    graphql_operations_file: Path | None = Field(
        None,
        alias="BANXWAY_GRAPHQL_OPERATIONS_FILE",
        description='The registered operations, loaded at start: JSON `{"<sha256>": "<query>"}` or Apollo\'s '
        "persisted-query manifest (`banxway operations hash` writes one).",
    )
    graphql_apq_ttl_seconds: int = Field(
        7 * 24 * 3600,
        ge=60,
        alias="BANXWAY_GRAPHQL_APQ_TTL",
        description="Seconds an automatic persisted query (APQ) is kept in Redis after it was registered.",
    )
    graphql_introspection: bool | None = Field(
        None,
        alias="BANXWAY_GRAPHQL_INTROSPECTION",
        description="Answer introspection queries (__schema, __type) (default: true in development, false in "
        "production); off, they are refused with INTROSPECTION_DISABLED. `banxway export-schema` works either way.",
    )
    graphql_suggestions: bool | None = Field(
        None,
        alias="BANXWAY_GRAPHQL_SUGGESTIONS",
        description='Add "Did you mean ...?" suggestions of field, argument, type and enum names to error messages '
        "(default: true in development, false in production).",
    )
    access_token_ttl_seconds: int = Field(
        900,
        ge=30,
        alias="BANXWAY_ACCESS_TOKEN_TTL",
        description="Lifetime of an access token in seconds.",
    )
    refresh_token_ttl_days: int = Field(
        30,
        ge=1,
        alias="BANXWAY_REFRESH_TOKEN_TTL_DAYS",
        description="Lifetime of a refresh token in days.",
    )
    login_max_failures: int = Field(
        5,
        ge=1,
        alias="BANXWAY_LOGIN_MAX_FAILURES",
        description="Failed logins allowed per email in the window before RATE_LIMITED.",
    )
    login_max_failures_per_ip: int = Field(
        50,
        ge=1,
        alias="BANXWAY_LOGIN_MAX_FAILURES_PER_IP",
        description="Failed logins allowed from one client address in the window (any emails) before RATE_LIMITED.",
    )
    ws_init_timeout_seconds: float = Field(
        5.0,
        gt=0,
        alias="BANXWAY_WS_INIT_TIMEOUT",
        description="Seconds a WebSocket may wait before connection_init; then it is closed with 4408.",
    )
    ws_max_subscriptions: int = Field(
        100, ge=1, alias="BANXWAY_WS_MAX_SUBSCRIPTIONS", description="Most operations open on one WebSocket."
    )
    ws_keepalive_seconds: float = Field(
        15.0,
        gt=0,
        alias="BANXWAY_WS_KEEPALIVE",
        description="Seconds between keep-alive messages on an idle WebSocket (`ping` / legacy `ka`).",
    )
    event_retention_days: int = Field(
        7,
        ge=1,
        alias="BANXWAY_EVENT_RETENTION_DAYS",
        description="How long events are kept for subscribers to resume from; older cursors get CURSOR_EXPIRED.",
    )
    email_poll_interval_seconds: float = Field(
        30.0,
        gt=0,
        alias="EMAIL_POLL_INTERVAL",
        description="Seconds between polls of each email account (IMAP IDLE brings new mail sooner).",
    )
    email_page_size: int = Field(
        100, ge=1, le=1000, alias="BANXWAY_EMAIL_PAGE_SIZE", description="Mails fetched and stored per transaction."
    )
    email_max_bytes: int = Field(
        25 * 1024 * 1024,
        ge=1024,
        alias="BANXWAY_EMAIL_MAX_BYTES",
        description="Largest mail imported; a larger one gets one failure record and stays on the server.",
    )
    attachment_max_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1024,
        alias="BANXWAY_ATTACHMENT_MAX_BYTES",
        description="Largest attachment stored; a larger one is listed on its message as skipped.",
    )
    attachment_url_ttl_seconds: int = Field(
        900,
        ge=1,
        le=7 * 24 * 3600,
        alias="BANXWAY_ATTACHMENT_URL_TTL",
        description="Seconds a signed download URL (`Attachment.downloadUrl`, for `<img src>` and links without an "
        "Authorization header) stays valid.",
    )
    document_text_max_pages: int = Field(
        50,
        ge=1,
        le=2000,
        alias="BANXWAY_DOCUMENT_TEXT_MAX_PAGES",
        description="Pages of a shipment document's PDF whose text layer is read (searchable); the rest are not.",
    )
    document_text_max_chars: int = Field(
        200_000,
        ge=1000,
        le=400_000,  # a tsvector holds at most 1 MB
        alias="BANXWAY_DOCUMENT_TEXT_MAX_CHARS",
        description="Characters of a shipment document's text that are kept (and searched); the rest are cut.",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        alias="BANXWAY_MAX_BODY_BYTES",
        description="Largest request body on /graphql and the webhooks (uploads: BANXWAY_ATTACHMENT_MAX_BYTES for "
        "POST /attachments, that plus this for a multipart /graphql request); a larger one is answered 413 before it "
        "is read.",
    )
    rate_limit_graphql_per_minute: int = Field(
        600,
        ge=0,
        alias="BANXWAY_RATE_LIMIT_GRAPHQL_PER_MINUTE",
        description="HTTP GraphQL requests (GET and POST /graphql) one user (by the access token's subject) may make "
        "in a sliding minute; then 429 RATE_LIMITED with Retry-After. 0: no limit.",
    )
    rate_limit_graphql_per_ip_per_minute: int = Field(
        1200,
        ge=0,
        alias="BANXWAY_RATE_LIMIT_GRAPHQL_PER_IP_PER_MINUTE",
        description="HTTP GraphQL requests one client address may make in a sliding minute, signed in or not. "
        "0: no limit.",
    )
    rate_limit_mutations_per_minute: int = Field(
        120,
        ge=0,
        alias="BANXWAY_RATE_LIMIT_MUTATIONS_PER_MINUTE",
        description="Of those, mutations one user may make in a sliding minute. 0: no limit.",
    )
    rate_limit_mutations_per_ip_per_minute: int = Field(
        300,
        ge=0,
        alias="BANXWAY_RATE_LIMIT_MUTATIONS_PER_IP_PER_MINUTE",
        description="Of those, mutations one client address may make in a sliding minute (logins included). "
        "0: no limit.",
    )
    rate_limit_webhooks_per_minute: int = Field(
        1200,
        ge=0,
        alias="BANXWAY_RATE_LIMIT_WEBHOOKS_PER_MINUTE",
        description="Provider callbacks (/webhooks/...) one webhook URL (one integration) may receive in a sliding "
        "minute; then 429 with Retry-After. 0: no limit.",
    )
    rate_limit_webhooks_per_ip_per_minute: int = Field(
        6000,
        ge=0,
        alias="BANXWAY_RATE_LIMIT_WEBHOOKS_PER_IP_PER_MINUTE",
        description="Provider callbacks one client address may send in a sliding minute, to any webhook URL. "
        "0: no limit.",
    )
    webchat_token_ttl_seconds: int = Field(
        3600,
        ge=60,
        alias="BANXWAY_WEBCHAT_TOKEN_TTL",
        description="Seconds a web chat visitor token lasts; the widget renews it (POST /widget/<key>/session with "
        "the old token) before, or up to a day after, it expires.",
    )
    webchat_messages_per_minute: int = Field(
        20,
        ge=0,
        alias="BANXWAY_WEBCHAT_MESSAGES_PER_MINUTE",
        description="Messages one web chat visitor may send in a sliding minute; then RATE_LIMITED. 0: no limit.",
    )
    webchat_per_ip_per_minute: int = Field(
        60,
        ge=0,
        alias="BANXWAY_WEBCHAT_PER_IP_PER_MINUTE",
        description="Web chat messages and new visitor sessions one client address may make in a sliding minute; "
        "then RATE_LIMITED (429 for a session). 0: no limit.",
    )
    metrics_token: str | None = Field(
        None,
        alias="BANXWAY_METRICS_TOKEN",
        description="When set (at least 16 characters), /metrics answers only `Authorization: Bearer <token>` "
        "(401 otherwise). Unset: /metrics is open in development and answers 404 in production.",
        repr=False,
    )
    email_timeout_seconds: float = Field(
        30.0, gt=0, alias="BANXWAY_EMAIL_TIMEOUT", description="Seconds before an IMAP or SMTP operation gives up."
    )
    email_ca_file: str | None = Field(
        None,
        alias="BANXWAY_EMAIL_CA_FILE",
        description="A PEM file of extra certificate authorities to trust for IMAP and SMTP (self-hosted servers).",
    )
    # -- Gmail and Microsoft 365 mailboxes by OAuth 2.0 (banxway.resolvers.email_oauth) --
    google_client_id: str | None = Field(
        None,
        alias="BANXWAY_GOOGLE_CLIENT_ID",
        description="OAuth client id of a Google Cloud web application (redirect URI "
        "`<BANXWAY_PUBLIC_URL>/oauth/google/callback`): lets admins connect Gmail mailboxes "
        "(emailAccountOAuthStart). Unset: Gmail by OAuth is off.",
    )
    google_client_secret: str | None = Field(
        None,
        alias="BANXWAY_GOOGLE_CLIENT_SECRET",
        description="The client secret of BANXWAY_GOOGLE_CLIENT_ID.",
        repr=False,
    )
    google_authorize_url: str = Field(
        "https://accounts.google.com/o/oauth2/v2/auth",
        alias="BANXWAY_GOOGLE_AUTHORIZE_URL",
        description="Google's authorization endpoint (the consent page).",
    )
    google_token_url: str = Field(
        "https://oauth2.googleapis.com/token",
        alias="BANXWAY_GOOGLE_TOKEN_URL",
        description="Google's token endpoint (code exchange and refresh).",
    )
    google_imap_host: str = Field(
        "imap.gmail.com", alias="BANXWAY_GOOGLE_IMAP_HOST", description="IMAP host of Gmail accounts (TLS)."
    )
    google_imap_port: int = Field(
        993, ge=1, le=65535, alias="BANXWAY_GOOGLE_IMAP_PORT", description="IMAP port of Gmail accounts."
    )
    google_smtp_host: str = Field(
        "smtp.gmail.com", alias="BANXWAY_GOOGLE_SMTP_HOST", description="SMTP host of Gmail accounts (TLS)."
    )
    google_smtp_port: int = Field(
        465, ge=1, le=65535, alias="BANXWAY_GOOGLE_SMTP_PORT", description="SMTP port of Gmail accounts."
    )
    microsoft_client_id: str | None = Field(
        None,
        alias="BANXWAY_MICROSOFT_CLIENT_ID",
        description="Application (client) id of a Microsoft Entra app registration (redirect URI "
        "`<BANXWAY_PUBLIC_URL>/oauth/microsoft/callback`): lets admins connect Microsoft 365 mailboxes. Unset: "
        "Microsoft 365 by OAuth is off.",
    )
    microsoft_client_secret: str | None = Field(
        None,
        alias="BANXWAY_MICROSOFT_CLIENT_SECRET",
        description="A client secret of BANXWAY_MICROSOFT_CLIENT_ID.",
        repr=False,
    )
    microsoft_tenant: str = Field(
        "common",
        alias="BANXWAY_MICROSOFT_TENANT",
        description="The Entra tenant in the Microsoft endpoints: common, organizations, or a tenant id/domain.",
    )
    microsoft_authorize_url: str = Field(
        "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        alias="BANXWAY_MICROSOFT_AUTHORIZE_URL",
        description="Microsoft's authorization endpoint; `{tenant}` is replaced by BANXWAY_MICROSOFT_TENANT.",
    )
    microsoft_token_url: str = Field(
        "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        alias="BANXWAY_MICROSOFT_TOKEN_URL",
        description="Microsoft's token endpoint; `{tenant}` is replaced by BANXWAY_MICROSOFT_TENANT.",
    )
    microsoft_imap_host: str = Field(
        "outlook.office365.com",
        alias="BANXWAY_MICROSOFT_IMAP_HOST",
        description="IMAP host of Microsoft 365 accounts (TLS).",
    )
    microsoft_imap_port: int = Field(
        993, ge=1, le=65535, alias="BANXWAY_MICROSOFT_IMAP_PORT", description="IMAP port of Microsoft 365 accounts."
    )
    microsoft_smtp_host: str = Field(
        "smtp.office365.com",
        alias="BANXWAY_MICROSOFT_SMTP_HOST",
        description="SMTP host of Microsoft 365 accounts (STARTTLS).",
    )
    microsoft_smtp_port: int = Field(
        587, ge=1, le=65535, alias="BANXWAY_MICROSOFT_SMTP_PORT", description="SMTP port of Microsoft 365 accounts."
    )
    outbound_ca_file: str | None = Field(
        None,
        alias="BANXWAY_OUTBOUND_CA_FILE",
        description="A PEM file of extra certificate authorities to trust for workflows' HTTP steps (a receiver "
        "with a private CA).",
    )
    public_url: str | None = Field(
        None,
        alias="BANXWAY_PUBLIC_URL",
        description="The address providers reach this service at (https://banxway.example.com); webhook URLs "
        "and Twilio's signatures are built on it. Unset: the address of the request.",
    )
    provider_timeout_seconds: float = Field(
        15.0,
        gt=0,
        alias="BANXWAY_PROVIDER_TIMEOUT",
        description="Seconds before a call to a WhatsApp/SMS/voice provider's API gives up: one that could not "
        "connect is retried; a send left unanswered is not (it may have gone out).",
    )
    allow_private_provider_urls: bool = Field(
        False,
        alias="BANXWAY_ALLOW_PRIVATE_PROVIDER_URLS",
        description="Let an integration's baseUrl be a loopback, private or link-local address (tests and "
        "local stand-ins only: otherwise an admin could make the server call its own network).",
    )
    allow_private_webhooks: bool = Field(
        False,
        alias="BANXWAY_ALLOW_PRIVATE_WEBHOOKS",
        description="Let the URLs users give us to call — outbound webhook endpoints (also http://), workflow HTTP "
        "steps, agent connections — be on a loopback, private or link-local address (tests and local development "
        "only; otherwise refused when saved and again at connect time).",
    )
    webhook_timeout_seconds: float = Field(
        10.0,
        gt=0,
        alias="BANXWAY_WEBHOOK_TIMEOUT",
        description="Seconds an outbound webhook delivery may take to connect, and again to answer; then it is "
        "retried.",
    )
    webhook_retry_base_seconds: float = Field(
        60.0,
        gt=0,
        alias="BANXWAY_WEBHOOK_RETRY_BASE",
        description="The first retry of a failed webhook delivery waits this long; each next one twice as long "
        "(at most an hour).",
    )
    webhook_retry_window_seconds: float = Field(
        24 * 3600.0,
        gt=0,
        alias="BANXWAY_WEBHOOK_RETRY_WINDOW",
        description="How long a webhook delivery is retried; an endpoint whose deliveries failed for that long "
        "without a success is disabled and the organization's admins are notified.",
    )
    provider_media_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        alias="BANXWAY_PROVIDER_MEDIA_HOSTS",
        description="Comma-separated hosts, besides the integration's API host, that inbound media and call "
        "recordings may be downloaded from (e.g. the provider's storage host).",
    )
    openai_api_key: str | None = Field(
        None,
        alias="OPENAI_API_KEY",
        description="Key of the AI provider (an OpenAI-compatible API) that drafts replies, transcribes recorded "
        "calls and, with BANXWAY_ANALYSIS_MODEL, helps analyse messages. Without one, drafts come from the built-in "
        "composer and analysis from the built-in rules: everything works offline.",
    )
    openai_base_url: str | None = Field(
        None,
        alias="OPENAI_BASE_URL",
        description="Base URL of an OpenAI-compatible API (default: OpenAI's own).",
    )
    transcription_model: str = Field(
        "whisper-1", alias="BANXWAY_TRANSCRIPTION_MODEL", description="The model that transcribes recorded calls."
    )
    compose_model: str = Field(
        "gpt-4o-mini", alias="BANXWAY_COMPOSE_MODEL", description="The chat model that drafts replies (composeStart)."
    )
    analysis_model: str | None = Field(
        None,
        alias="BANXWAY_ANALYSIS_MODEL",
        description="A chat model that extracts entities, intent and sentiment on top of the built-in rules (its "
        "answer is validated and merged; check digits still decide). Unset: the rules alone.",
    )
    ai_monthly_token_budget: int = Field(
        2_000_000,
        ge=0,
        alias="BANXWAY_AI_MONTHLY_TOKEN_BUDGET",
        description="Tokens an organization may spend with the external AI provider per calendar month (UTC) "
        "before composeStart answers BUDGET_EXCEEDED; 0: no limit. The built-in composer costs nothing.",
    )
    compose_history_tokens: int = Field(
        3_000,
        ge=100,
        alias="BANXWAY_COMPOSE_HISTORY_TOKENS",
        description="The share of a draft's prompt given to the thread's history (newest first; the customer's "
        "last message is always kept whole).",
    )
    compose_word_delay: float = Field(
        0.03,
        ge=0,
        alias="BANXWAY_COMPOSE_WORD_DELAY",
        description="Seconds between the words the built-in composer streams (0: as fast as possible).",
    )
    agent_model: str | None = Field(
        None,
        alias="BANXWAY_AGENT_MODEL",
        description="The chat model of the AI agent's generative answers (with OPENAI_API_KEY; unset: "
        "BANXWAY_COMPOSE_MODEL). Without a key the agent answers extractively: the best-matching passage, quoted.",
    )
    embeddings_model: str | None = Field(
        None,
        alias="BANXWAY_EMBEDDINGS_MODEL",
        description="An embeddings model of the OpenAI-compatible API (e.g. text-embedding-3-small): with "
        "OPENAI_API_KEY, knowledge chunks get embeddings and retrieval ranks full text and cosine similarity "
        "together (reciprocal rank fusion). Unset: PostgreSQL full-text search alone.",
    )
    agent_suspend_minutes: int = Field(
        1440,
        ge=1,
        alias="BANXWAY_AGENT_SUSPEND_MINUTES",
        description="Minutes the AI agent stays silent on a thread after a person replied on it (threadBotResume "
        "lifts it sooner).",
    )
    knowledge_url_max_bytes: int = Field(
        2_000_000,
        ge=1_000,
        alias="BANXWAY_KNOWLEDGE_URL_MAX_BYTES",
        description="The largest page a URL knowledge source may be (bytes); a larger one is TOO_LARGE.",
    )
    password_hashing: Literal["standard", "fast-insecure"] = Field(
        "standard",
        alias="BANXWAY_PASSWORD_HASHING",
        description="standard (Argon2id, RFC 9106 low-memory profile) or fast-insecure (cheapest parameters, "
        "for test suites only; refused in production).",
    )
    login_failure_window_seconds: int = Field(
        300,
        ge=1,
        alias="BANXWAY_LOGIN_WINDOW",
        description="The failed-login window in seconds.",
    )
    dev_sink: bool = Field(
        False,
        alias="BANXWAY_DEV_SINK",
        description="Development: a message on a channel with no email account or provider number of its own "
        "(EMAIL, WHATSAPP, SMS, VOICE calls) goes to a sink instead of failing; it turns SENT, then DELIVERED (and "
        "READ on WhatsApp) a few seconds later, and is listed by the devOutbox query and /dev/outbox. `serve --demo` "
        "turns it on; set it on every API and worker process. Refused in production.",
    )

    @field_validator("cors_origins", "provider_media_hosts", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("public_url", "openai_base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")) or value[-3:] == "://":
            raise ValueError(f"must be an http:// or https:// address, not {value!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            url = make_url(value)
        except Exception as exc:
            raise ValueError("is not a URL (expected postgresql://user:password@host:5432/dbname)") from exc
        if not url.drivername.startswith("postgres"):
            raise ValueError(f"must be a postgresql:// URL, not {url.drivername}://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: str | None) -> str | None:
        return value.strip() if value is not None and value.strip() else None  # the length: see _check_secret

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_secret(self) -> Settings:
        if self.secret_key is not None and len(self.secret_key) < 32:
            raise ValueError("BANXWAY_SECRET_KEY must be at least 32 characters long")
        if self.metrics_token is not None and len(self.metrics_token) < 16:  # (checked here: the value is not shown)
            raise ValueError("BANXWAY_METRICS_TOKEN must be at least 16 characters long")
        if self.env == "production" and self.password_hashing != "standard":
            raise ValueError("BANXWAY_PASSWORD_HASHING=fast-insecure is refused when BANXWAY_ENV=production")
        if self.env == "production" and not self.secret_key:
            raise ValueError("BANXWAY_SECRET_KEY is required when BANXWAY_ENV=production")
        if self.env == "production" and self.dev_sink:
            raise ValueError("BANXWAY_DEV_SINK=true is refused when BANXWAY_ENV=production")
        return self

    @model_validator(mode="after")
    def _check_persisted_operations(self) -> Settings:
        if self.graphql_operations_file is not None and not self.graphql_operations_file.is_file():
            raise ValueError(f"BANXWAY_GRAPHQL_OPERATIONS_FILE={str(self.graphql_operations_file)!r} is not a file")
        if self.graphql_persisted_only and self.graphql_operations_file is None:
            raise ValueError(
                "BANXWAY_GRAPHQL_PERSISTED_ONLY=true needs BANXWAY_GRAPHQL_OPERATIONS_FILE (the operations that may run)"
            )
        return self

    # -- derived ---------------------------------------------------------------

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def introspection_enabled(self) -> bool:
        return self.graphql_introspection if self.graphql_introspection is not None else not self.production

    @property
    def suggestions_enabled(self) -> bool:
        return self.graphql_suggestions if self.graphql_suggestions is not None else not self.production

    @property
    def dev_sink_enabled(self) -> bool:
        """Whether sends without an account of their own go to the development sink: never in production."""
        return self.dev_sink and not self.production

    @property
    def embedded(self) -> bool:
        return self.database_url is None or self.redis_url is None

    @property
    def effective_log_format(self) -> str:
        return self.log_format or ("json" if self.production else "console")

    def resolved_secret_key(self) -> str:
        """The configured key, or the one generated once and kept in the data directory."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(key)
        return key


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation error into one readable line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    fields = Settings.model_fields
    name = error["loc"][0] if error["loc"] else None
    variable = fields[name].alias if isinstance(name, str) and name in fields else name
    message = error["msg"].removeprefix("Value error, ")
    if variable is None:
        return f"Invalid configuration: {message}"
    value = error.get("input")
    shown = redact_url(value) if isinstance(value, str) and "URL" in str(variable) else value
    if isinstance(shown, str):
        return f"Invalid {variable}={shown!r}: {message}"
    return f"Invalid {variable}: {message}"


def configuration_table_markdown() -> str:
    """The README's configuration table, generated from the settings (a test checks it)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {default} | {description} |" for name, default, description in environment_variables()]
    return "\n".join(lines)


def environment_variables() -> list[tuple[str, str, str]]:
    """(name, default, description) of every variable, for `--help` and the README."""
    rows = []
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = "per-user data dir" if name == "data_dir" else "(empty)"
        elif field.default is None:
            default = "(unset)"
        else:
            default = str(field.default)
        rows.append((field.alias or name.upper(), default, field.description or ""))
    return rows
