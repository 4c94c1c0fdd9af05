"""OAuth 2.0 for mailboxes (RFC 6749 authorization-code grant with PKCE, RFC 7636): the consent URL, the code
exchange, the refresh, and the XOAUTH2 SASL string that IMAP and SMTP log in with.

Plain values in, our own dataclasses out: `OAuthClient` is one provider's endpoints and credentials (Google,
Microsoft: `banxway.resolvers.email_oauth.client_for`), `Tokens` what the token endpoint answered. Errors are
`OAuthError`: `transient` for what a later retry may cure (5xx, 429, a timeout, no answer); otherwise the grant
or the client is refused (`invalid_grant`: the user revoked access, the refresh token expired) and only a new
authorization helps.

The id_token is read without verifying its signature: it comes straight from the token endpoint, over TLS, in the
answer to our own authenticated request (OpenID Connect Core 3.1.3.7: TLS server validation may be used instead of
the signature). Only its `email` / `preferred_username` claim is used, to name the mailbox.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from banxway.integrations import network


@dataclass(frozen=True)
class OAuthClient:
    provider: str  # GOOGLE or MICROSOFT, for messages
    client_id: str
    client_secret: str = field(repr=False)
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    authorize_params: dict[str, str] = field(default_factory=dict)  # e.g. access_type=offline, prompt=consent
    refresh_with_scope: bool = False  # Microsoft wants the scopes again on a refresh
    timeout: float = 15.0
    public_only: bool = True  # connect only to global addresses (tests allow 127.0.0.1)


@dataclass(frozen=True)
class Tokens:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)  # None: the provider kept the one we have (no rotation)
    expires_at: datetime | None
    claims: dict[str, Any] = field(default_factory=dict)  # the id_token's payload, when one came

    @property
    def email(self) -> str | None:
        """The mailbox address the id_token names (Google: `email`; Microsoft: `email` or `preferred_username`)."""
        for name in ("email", "preferred_username", "upn"):
            value = self.claims.get(name)
            if isinstance(value, str) and "@" in value:
                return value.strip()
        return None


class OAuthError(Exception):
    """The token endpoint refused (`error` is its code, e.g. invalid_grant) or could not be reached
    (`transient`). `str()` is the provider's words."""

    def __init__(self, error: str, description: str, *, transient: bool = False) -> None:
        super().__init__(error, description, transient)
        self.error = error
        self.description = description
        self.transient = transient

    def __str__(self) -> str:
        return f"{self.error}: {self.description}" if self.description else self.error


def new_state() -> str:
    """A random, unguessable `state` (256 bits)."""
    return secrets.token_urlsafe(32)


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) as RFC 7636 4.1-4.2 define them."""
    verifier = secrets.token_urlsafe(48)  # 64 characters of [A-Za-z0-9_-]
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


def authorization_url(
    client: OAuthClient, *, state: str, code_challenge: str, redirect_uri: str, login_hint: str | None = None
) -> str:
    """The consent page to send the admin's browser to."""
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(client.scopes),
        "state": state,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
        **client.authorize_params,
    }
    if login_hint:
        params["login_hint"] = login_hint
    separator = "&" if "?" in client.authorize_url else "?"
    return f"{client.authorize_url}{separator}{urlencode(params)}"


async def exchange_code(client: OAuthClient, *, code: str, code_verifier: str, redirect_uri: str) -> Tokens:
    """The authorization code for tokens (RFC 6749 4.1.3, with the PKCE verifier). Raises OAuthError."""
    tokens = await _token_request(
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        },
    )
    if not tokens.refresh_token:
        raise OAuthError(
            "no_refresh_token",
            f"{client.provider} granted no refresh token (offline access was not granted): authorize again.",
        )
    return tokens


async def refresh(client: OAuthClient, refresh_token: str) -> Tokens:
    """A new access token for the refresh token (RFC 6749 6); `refresh_token` in the answer when the provider
    rotated it. Raises OAuthError."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if client.refresh_with_scope:
        form["scope"] = " ".join(client.scopes)
    return await _token_request(client, form)


async def _token_request(client: OAuthClient, form: dict[str, str]) -> Tokens:
    # client_secret_post: both Google and Microsoft take the client's credentials in the form body
    body = {**form, "client_id": client.client_id, "client_secret": client.client_secret}
    timeout = httpx.Timeout(client.timeout, connect=min(client.timeout, 10.0))
    try:
        async with httpx.AsyncClient(
            timeout=timeout, transport=network.transport(public_only=client.public_only)
        ) as http:
            response = await http.post(client.token_url, data=body, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise OAuthError(
            "unreachable",
            f"{client.provider}'s token endpoint did not answer ({type(exc).__name__}: {exc})",
            transient=True,
        ) from exc
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        payload = None
    if not response.is_success:
        transient = response.status_code == 429 or response.status_code >= 500
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            description = payload.get("error_description")
            words = description if isinstance(description, str) else ""
            raise OAuthError(payload["error"], words[:1000], transient=transient)
        raise OAuthError(
            f"http_{response.status_code}",
            f"{client.provider}'s token endpoint answered {response.status_code} {response.reason_phrase}",
            transient=transient,
        )
    if not isinstance(payload, dict) or not isinstance(payload.get("access_token"), str):
        raise OAuthError("invalid_response", f"{client.provider}'s token endpoint answered without an access_token")
    expires_in = payload.get("expires_in")
    expires_at = None
    if isinstance(expires_in, int | float | str) and str(expires_in).isdigit():
        expires_at = datetime.now(UTC) + timedelta(seconds=int(expires_in))
    refresh_token = payload.get("refresh_token")
    id_token = payload.get("id_token")
    return Tokens(
        access_token=payload["access_token"],
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        expires_at=expires_at,
        claims=id_token_claims(id_token) if isinstance(id_token, str) else {},
    )


def id_token_claims(id_token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (see the module's docstring); {} when it is not one."""
    parts = id_token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def xoauth2(user: str, access_token: str) -> str:
    """The XOAUTH2 initial response, before base64 (Google's and Microsoft's XOAUTH2 protocol pages):
    ``user=<address>^Aauth=Bearer <token>^A^A``."""
    return f"user={user}\x01auth=Bearer {access_token}\x01\x01"


class XOAuth2Mechanism:
    """The client side of XOAUTH2 for imaplib/smtplib's authenticate callbacks: the initial response first; to the
    server's error challenge (a base64 JSON status), an empty response, after which the server says NO / 535."""

    def __init__(self, user: str, access_token: str) -> None:
        self._response = xoauth2(user, access_token)
        self._sent = False

    def __call__(self, challenge: bytes | None = None) -> str:
        if self._sent:
            return ""
        self._sent = True
        return self._response
