"""A stand-in OAuth 2.0 authorization server (Google's or Microsoft's, as banxway talks to them), and the mail
servers that accept its access tokens with XOAUTH2: Dovecot with an `oauth2` passdb, aiosmtpd with an XOAUTH2 hook.

The OAuth server (in the test's event loop) speaks:

* `GET /authorize` (RFC 6749 4.1.1 + RFC 7636): checks `response_type=code`, a known `client_id`, a `redirect_uri`,
  `code_challenge` with `code_challenge_method=S256`, and the `scope` the provider needs; "signs in" as
  `signed_in` and redirects (302) to `redirect_uri?code=...&state=...` (or `?error=access_denied` after `deny()`).
* `POST /token` (RFC 6749 4.1.3, 6; form-encoded; client credentials in the body or HTTP Basic):
  `authorization_code` (single-use code, same `redirect_uri`, `code_verifier` whose S256 is the challenge) and
  `refresh_token` (with `rotate_refresh_tokens`, each refresh returns a new refresh token and the old one stops
  working). Answers `access_token`, `token_type`, `expires_in`, `refresh_token`, `scope` and an `id_token` (a JWT
  whose payload names the mailbox: `email`, and Microsoft's `preferred_username`). Errors are RFC 6749 5.2's
  `{"error": ..., "error_description": ...}` with 400 (401 for a bad client); `fail_next(status, error)` scripts
  one (e.g. a 503 for a transient failure).
* `POST /introspect` (RFC 7662, what Dovecot's oauth2 passdb calls): `{"active": true, "email": ...}` for a valid
  access token, `{"active": false}` otherwise.

The XOAUTH2 SMTP server checks the SASL string exactly: base64 of `user=<address>^Aauth=Bearer <token>^A^A`, the
token one the OAuth server issued to that address and unexpired.

Covered: the wire format of the endpoints above, PKCE, code single use, refresh-token rotation and revocation
(`revoke(address)`: what a user removing the app's access, or Google expiring a testing app's grant, does), the
XOAUTH2 SASL exchange over TLS. Not covered (needs real Google Cloud / Entra apps and mailboxes): consent screens,
app verification, the scopes' real effects, Google's and Microsoft's real token lifetimes and error texts, their
id_token signatures, Microsoft's tenant restrictions and SMTP AUTH being disabled per mailbox.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.standins import serve_in_loop
from tests.standins.mailservers import (
    HOST,
    DovecotServer,
    MailCerts,
    RecordingHandler,
    SmtpServer,
    _start_controller,
    run_dovecot,
)

CLIENT_ID = "banxway-test-client"
CLIENT_SECRET = "banxway-test-secret"


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    email: str
    scope: str


@dataclass
class TokenRequest:
    grant_type: str
    form: dict[str, str]


@dataclass
class OAuthServer:
    provider: str = "google"  # google or microsoft: which id_token claims and scopes it expects
    port: int = 0
    signed_in: str = "ops@gmail.test"  # who consents at /authorize
    access_lifetime: int = 3600
    rotate_refresh_tokens: bool = False
    clients: dict[str, str] = field(default_factory=lambda: {CLIENT_ID: CLIENT_SECRET})
    codes: dict[str, _Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> address
    access_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (address, expires, epoch s)
    token_requests: list[TokenRequest] = field(default_factory=list)
    introspections: int = 0
    _failures: deque[tuple[int, str, str]] = field(default_factory=deque)
    _deny: bool = False

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # -- knobs

    def fail_next(self, status: int, error: str, description: str = "") -> None:
        """Answer the next token request with this error."""
        self._failures.append((status, error, description))

    def deny(self) -> None:
        """The next consent is refused (the user clicks Cancel)."""
        self._deny = True

    def revoke(self, address: str) -> None:
        """The user removed the app's access: every refresh and access token of `address` stops working."""
        self.refresh_tokens = {t: a for t, a in self.refresh_tokens.items() if a != address}
        self.access_tokens = {t: v for t, v in self.access_tokens.items() if v[0] != address}

    def expire_access_tokens(self) -> None:
        self.access_tokens = {t: (a, time.time() - 1) for t, (a, _) in self.access_tokens.items()}

    def valid(self, token: str, address: str | None = None) -> bool:
        entry = self.access_tokens.get(token)
        return entry is not None and entry[1] > time.time() and (address is None or entry[0] == address)

    # -- endpoints

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/authorize", self._authorize, methods=["GET"]),
                Route("/token", self._token, methods=["POST"]),
                Route("/introspect", self._introspect, methods=["POST"]),
            ]
        )

    async def _authorize(self, request: Request) -> Response:
        q = request.query_params
        problems = []
        if q.get("response_type") != "code":
            problems.append("response_type must be code")
        if q.get("client_id") not in self.clients:
            problems.append("unknown client_id")
        if not q.get("redirect_uri"):
            problems.append("redirect_uri is required")
        if not q.get("code_challenge") or q.get("code_challenge_method") != "S256":
            problems.append("PKCE with S256 is required")
        scopes = set((q.get("scope") or "").split())
        wanted = {"openid", "email"} | (
            {"https://mail.google.com/"}
            if self.provider == "google"
            else {
                "offline_access",
                "https://outlook.office.com/IMAP.AccessAsUser.All",
                "https://outlook.office.com/SMTP.Send",
            }
        )
        if not wanted <= scopes:
            problems.append(f"scope lacks {sorted(wanted - scopes)}")
        if self.provider == "google" and (q.get("access_type") != "offline" or q.get("prompt") != "consent"):
            problems.append("access_type=offline and prompt=consent are needed for a refresh token")
        if problems:  # an authorization server shows an error page rather than redirecting to a bad client
            return JSONResponse({"error": "invalid_request", "error_description": "; ".join(problems)}, 400)
        redirect = q["redirect_uri"]
        if self._deny:
            self._deny = False
            params = {"error": "access_denied", "error_description": "The user denied access", "state": q["state"]}
            return RedirectResponse(f"{redirect}?{urlencode(params)}", 302)
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Grant(q["client_id"], redirect, q["code_challenge"], self.signed_in, q["scope"])
        return RedirectResponse(f"{redirect}?{urlencode({'code': code, 'state': q.get('state', '')})}", 302)

    def _error(self, status: int, error: str, description: str) -> Response:
        return JSONResponse({"error": error, "error_description": description}, status)

    def _client(self, request: Request, form: dict[str, str]) -> str | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id if self.clients.get(client_id) == secret and secret else None

    async def _token(self, request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self._error(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
        form = {key: str(value) for key, value in (await request.form()).items()}
        self.token_requests.append(TokenRequest(form.get("grant_type", ""), form))
        if self._failures:
            status, error, description = self._failures.popleft()
            return self._error(status, error, description)
        client_id = self._client(request, form)
        if client_id is None:
            return self._error(401, "invalid_client", "Client authentication failed.")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = self.codes.pop(form.get("code", ""), None)  # single use
            if grant is None or grant.client_id != client_id:
                return self._error(400, "invalid_grant", "The authorization code is invalid or was used already.")
            if form.get("redirect_uri") != grant.redirect_uri:
                return self._error(400, "invalid_grant", "redirect_uri does not match the authorization request.")
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not verifier or challenge != grant.challenge:
                return self._error(400, "invalid_grant", "PKCE verification failed (code_verifier).")
            return JSONResponse(self._issue(grant.email, grant.scope, client_id, with_refresh=True))
        if grant_type == "refresh_token":
            address = self.refresh_tokens.get(form.get("refresh_token", ""))
            if address is None:
                return self._error(400, "invalid_grant", "Token has been expired or revoked.")
            if self.provider == "microsoft" and "offline_access" not in (form.get("scope") or ""):
                return self._error(400, "invalid_scope", "The refresh needs the scopes again.")
            if self.rotate_refresh_tokens:
                del self.refresh_tokens[form["refresh_token"]]
            return JSONResponse(self._issue(address, "", client_id, with_refresh=self.rotate_refresh_tokens))
        return self._error(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported.")

    def _issue(self, address: str, scope: str, client_id: str, *, with_refresh: bool) -> dict[str, Any]:
        access = "ya29." + secrets.token_urlsafe(24)
        self.access_tokens[access] = (address, time.time() + self.access_lifetime)
        claims = {"iss": self.url, "aud": client_id, "sub": hashlib.sha256(address.encode()).hexdigest()[:20]}
        claims |= {"email": address} if self.provider == "google" else {"preferred_username": address}
        reply: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_lifetime,
            "scope": scope,
            "id_token": jwt.encode({**claims, "iat": int(time.time())}, "stand-in-signing-key-32-bytes-long!"),
        }
        if with_refresh:
            refresh = "1//" + secrets.token_urlsafe(24)
            self.refresh_tokens[refresh] = address
            reply["refresh_token"] = refresh
        return reply

    async def _introspect(self, request: Request) -> Response:
        self.introspections += 1
        token = str((await request.form()).get("token", ""))
        entry = self.access_tokens.get(token)
        if entry is None or entry[1] <= time.time():
            return JSONResponse({"active": False})
        return JSONResponse({"active": True, "email": entry[0], "exp": int(entry[1])})


@asynccontextmanager
async def oauth_server(provider: str = "google") -> AsyncIterator[OAuthServer]:
    server = OAuthServer(provider=provider)
    async with serve_in_loop(server.app()) as port:
        server.port = port
        yield server


# -- Dovecot with an oauth2 passdb -----------------------------------------------------------------------------


def _oauth_dovecot_config(base: str, root: Path, introspection_url: str) -> str:
    """The stand-in Dovecot's config (tests/standins/mailservers.py) with XOAUTH2 checked by `introspection_url`
    (Dovecot's `passdb { driver = oauth2 }`, introspection_mode = post); password logins keep working (APPEND)."""
    (root / "dovecot-oauth2.conf.ext").write_text(
        f"introspection_mode = post\nintrospection_url = {introspection_url}\nforce_introspection = yes\n"
        "username_attribute = email\nactive_attribute = active\nactive_value = true\n"
    )
    mechanisms = "auth_mechanisms = plain login\n"
    passdb = "passdb {\n  driver = passwd-file\n"
    assert base.count(mechanisms) == 1 and base.count(passdb) == 1, "mailservers.py's Dovecot config changed"
    return base.replace(mechanisms, "auth_mechanisms = plain login xoauth2 oauthbearer\n").replace(
        passdb,
        f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {root}/dovecot-oauth2.conf.ext\n}}\n"
        f"{passdb}  mechanisms = plain login\n",
    )


def run_oauth_dovecot(certs: MailCerts, introspection_url: str) -> contextlib.AbstractContextManager[DovecotServer]:
    """A private Dovecot (`mailservers.run_dovecot`) whose XOAUTH2 logins are checked by the OAuth stand-in's
    introspection endpoint."""
    return run_dovecot(certs, lambda base, root: _oauth_dovecot_config(base, root, introspection_url))


# -- SMTP with XOAUTH2 ---------------------------------------------------------------------------------------------

_XOAUTH2 = re.compile(r"user=([^\x01]+)\x01auth=Bearer ([^\x01]+)\x01\x01")


class XOAuth2Handler(RecordingHandler):
    """Records mail like the password stand-in; AUTH XOAUTH2 accepts a valid token of the OAuth stand-in for the
    address it names, and nothing else (the SASL string is checked exactly). `sasl` keeps each one received."""

    def __init__(self, oauth: OAuthServer) -> None:
        super().__init__()
        self.oauth = oauth
        self.sasl: list[str] = []

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:  # aiosmtpd finds it by its name
        if len(args) == 2:
            response = args[1].encode()
        else:
            answer = await server.challenge_auth("", encode_to_b64=False)
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=False)
            response = base64.b64encode(answer)
        try:
            sasl = base64.b64decode(response, validate=True).decode()
        except ValueError:
            return AuthResult(success=False, handled=False)
        self.sasl.append(sasl)
        match = _XOAUTH2.fullmatch(sasl)
        if match is None or not self.oauth.valid(match.group(2), match.group(1)):
            return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8
        return AuthResult(success=True, auth_data=LoginPassword(match.group(1).encode(), b""))


@dataclass
class XOAuth2SmtpServer(SmtpServer):
    handler: XOAuth2Handler  # type: ignore[assignment]


@contextlib.contextmanager
def run_xoauth2_smtp(certs: MailCerts, oauth: OAuthServer) -> Iterator[XOAuth2SmtpServer]:
    """aiosmtpd with AUTH XOAUTH2 only: a plain port offering STARTTLS (Microsoft's 587) and an implicit-TLS port
    (Gmail's 465)."""
    handler = XOAuth2Handler(oauth)
    common: dict[str, Any] = {
        "hostname": HOST,
        "auth_exclude_mechanism": ["LOGIN", "PLAIN"],
        "ready_timeout": 10,
    }
    # AUTH only under TLS: after STARTTLS on the plain port; at once on the implicit-TLS one (aiosmtpd's
    # auth_require_tls knows only STARTTLS)
    plain = _start_controller(
        lambda port: Controller(handler, port=port, tls_context=certs.server_context(), auth_require_tls=True, **common)
    )
    try:
        implicit = _start_controller(
            lambda port: Controller(
                handler, port=port, ssl_context=certs.server_context(), auth_require_tls=False, **common
            )
        )
        try:
            yield XOAuth2SmtpServer(HOST, plain.port, implicit.port, certs.ca_path, "", "", handler)
        finally:
            implicit.stop()
    finally:
        plain.stop()
