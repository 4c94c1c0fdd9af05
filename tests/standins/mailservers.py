"""Real mail servers on 127.0.0.1 for the tests: Dovecot (IMAP) and aiosmtpd (SMTP).

Load with ``pytest_plugins = ["tests.standins.mailservers"]`` in tests/conftest.py. Fixtures:

* ``mail_certs`` (session): a throw-away CA and a server certificate for 127.0.0.1/localhost.
* ``dovecot`` (function): a fresh Dovecot with its own config, mail store and ports (a plain port
  with STARTTLS, and an implicit-TLS port). Skips when Dovecot is not installed, fails instead under CI=true.
* ``smtp_server`` (function): an aiosmtpd server that records every envelope, with AUTH PLAIN/LOGIN,
  STARTTLS, an implicit-TLS port, and knobs for error replies and slow deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import grp
import ipaddress
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from imapclient import IMAPClient

HOST = "127.0.0.1"
DOVECOT_CANDIDATES = ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot")


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class MailCerts:
    """A CA (``ca_path``: what a client trusts) and a server certificate/key signed by it."""

    ca_path: str
    cert_path: str  # the server's certificate chain (leaf + CA)
    key_path: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_path)


def make_certs(directory: Path) -> MailCerts:
    """A CA and a server certificate for 127.0.0.1 and localhost, as PEM files in ``directory``."""
    now = datetime.datetime.now(datetime.UTC)
    validity = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Banxway test mail CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    directory.mkdir(parents=True, exist_ok=True)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    (directory / "ca.pem").write_bytes(ca_pem)
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
    key_path = directory / "server.key"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return MailCerts(str(directory / "ca.pem"), str(directory / "server.pem"), str(key_path))


@pytest.fixture(scope="session")
def mail_certs() -> Iterator[MailCerts]:
    directory = Path(tempfile.mkdtemp(prefix="banxway-mail-certs-"))
    # Dovecot reads the key as root before dropping privileges, or as the current user: 0700 is enough.
    try:
        yield make_certs(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- Dovecot


def find_dovecot() -> str | None:
    found = shutil.which("dovecot")
    if found:
        return found
    return next((path for path in DOVECOT_CANDIDATES if os.access(path, os.X_OK)), None)


_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


@dataclass
class DovecotServer:
    """A running Dovecot. ``cert_path`` is the CA certificate to pass as ``ca_file`` to a client."""

    host: str
    port: int  # plain IMAP, STARTTLS offered
    tls_port: int  # implicit TLS (993-style)
    cert_path: str
    root: Path
    mail_root: Path
    log_path: Path
    user: str = "alice"
    password: str = "secret-alice"
    mail_uid: int = 0
    mail_gid: int = 0
    users: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Kill the server now (every process at once, no goodbye to the clients), e.g. to test a lost server."""
        if self.process is not None:
            _stop_process_group(self.process)

    # -- users

    def add_user(self, name: str, password: str) -> None:
        """Add (or change the password of) a user; Dovecot re-reads the passwd-file on its next lookup."""
        if ":" in name + password or "\n" in name + password or "/" in name or name.startswith("."):
            raise ValueError("user names may not contain ':', '/' or newlines, nor passwords ':' or newlines")
        self.users[name] = password
        # One passwd-file per user: Dovecot re-checks a passwd-file at most once a second, but a new path is read
        # at once.
        path = self.root / "users" / name
        path.parent.mkdir(mode=0o755, exist_ok=True)
        temporary = path.with_suffix(".new")
        temporary.write_text(f"{name}:{{PLAIN}}{password}\n")
        temporary.chmod(0o644)
        temporary.replace(path)

    # -- IMAP helpers (a fresh logged-in connection on the plain port)

    @contextlib.contextmanager
    def client(self, user: str | None = None) -> Iterator[IMAPClient]:
        user = user or self.user
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        try:
            client.login(user, self.users[user])
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(self, user: str | None, raw: bytes, folder: str = "INBOX", flags: Iterable[bytes | str] = ()) -> int:
        """APPEND one message; returns its UID."""
        return self.append_many(user, [raw], folder=folder, flags=flags)[0]

    def append_many(
        self, user: str | None, raws: Iterable[bytes], folder: str = "INBOX", flags: Iterable[bytes | str] = ()
    ) -> list[int]:
        """APPEND several messages over one connection; returns their UIDs in order."""
        uids = []
        with self.client(user) as client:
            if folder.upper() != "INBOX" and not client.folder_exists(folder):
                client.create_folder(folder)
            for raw in raws:
                response = client.append(folder, raw, flags=tuple(flags))
                match = _APPENDUID.search(response)
                assert match, f"no APPENDUID in {response!r}"
                uids.append(int(match.group(2)))
        return uids

    def create_folder(self, folder: str, user: str | None = None) -> None:
        with self.client(user) as client:
            client.create_folder(folder)

    def status(self, folder: str = "INBOX", user: str | None = None) -> dict[str, int]:
        with self.client(user) as client:
            raw = client.folder_status(folder, ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"])
        return {key.decode(): int(value) for key, value in raw.items()}

    def uidvalidity(self, folder: str = "INBOX", user: str | None = None) -> int:
        return self.status(folder, user)["UIDVALIDITY"]

    def flags(self, folder: str = "INBOX", user: str | None = None) -> dict[int, tuple[bytes, ...]]:
        """The flags of every message, by UID (read-only: does not change them)."""
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            return {uid: data[b"FLAGS"] for uid, data in client.fetch(uids, ["FLAGS"]).items()} if uids else {}

    def maildir(self, folder: str = "INBOX", user: str | None = None) -> Path:
        home = self.mail_root / (user or self.user)
        return home if folder.upper() == "INBOX" else home / ("." + folder.replace("/", "."))

    def change_uidvalidity(self, folder: str = "INBOX", user: str | None = None) -> int:
        """Make the mailbox start over, as a server whose store was rebuilt would: a new UIDVALIDITY, and the
        same messages renumbered from UID 1. Call it while no client has the mailbox selected. Returns the
        new UIDVALIDITY."""
        before = self.uidvalidity(folder, user)
        directory = self.maildir(folder, user)
        for path in directory.iterdir():
            if path.name == "dovecot-uidlist" or path.name.startswith("dovecot.index"):
                path.unlink()
        # The next UIDVALIDITY comes from dovecot-uidvalidity (the current time, or the last one + 1).
        after = self.uidvalidity(folder, user)
        assert after != before, f"UIDVALIDITY stayed {before}"
        return after

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _dovecot_config(
    root: Path, port: int, tls_port: int, certs: MailCerts, mail_uid: int, mail_gid: int, rootless: bool
) -> str:
    if rootless:
        # Every service runs as the current user: no chroot, no setuid, sockets in our own group.
        me = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        users = f"default_login_user = {me}\ndefault_internal_user = {me}\ndefault_internal_group = {group}\n"
    else:
        # Dovecot will not run imap-login as root, nor open a mailbox with uid 0: use 'nobody' for both.
        nobody = pwd.getpwuid(mail_uid).pw_name
        users = f"default_login_user = {nobody}\ndefault_internal_user = {nobody}\n"
    return f"""\
# Written by tests/standins/mailservers.py
protocols = imap
listen = {HOST}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
debug_log_path = {root}/dovecot.log
instance_name = banxway-test-{port}
{users}
first_valid_uid = {mail_uid}
last_valid_uid = 0
first_valid_gid = {mail_gid}
last_valid_gid = 0
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_verbose = yes
login_greeting = Dovecot ready.

ssl = yes
ssl_cert = <{certs.cert_path}
ssl_key = <{certs.key_path}
ssl_min_protocol = TLSv1.2

mail_location = maildir:{root}/mail/%u
mail_fsync = never
mailbox_idle_check_interval = 1 secs
imap_idle_notify_interval = 2 mins

namespace inbox {{
  inbox = yes
  separator = /
}}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={root}/mail/%u
}}

service imap-login {{
  chroot =
  inet_listener imap {{
    address = {HOST}
    port = {port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # No authentication penalty (2-15 s per failed login from the same IP): auth cannot open this socket.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service ipc {{
  chroot =
}}
"""


# Runs Dovecot in its own process group and reaps every process of it, orphans included (a child subreaper): in a
# container whose pid 1 does not reap, Dovecot's log process would otherwise stay behind as a zombie. On SIGTERM it
# SIGKILLs the whole group at once: a graceful Dovecot shutdown takes a second, and a test server has nothing to
# save.
_REAPER = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except Exception:
    pass
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    os.execv(sys.argv[1], sys.argv[1:])
try:
    os.setpgid(pid, pid)
except OSError:
    pass
def kill_group(*_):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
signal.signal(signal.SIGTERM, kill_group)
code = 0
while True:
    try:
        child, status = os.wait()
    except ChildProcessError:
        break
    if child == pid:
        code = os.waitstatus_to_exitcode(status)
        kill_group()
sys.exit(code if code >= 0 else 1)
"""


def _stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the reaper, which kills Dovecot's process group and waits for every one of its processes."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _dovecot_ready(process: subprocess.Popen[bytes], server: DovecotServer, deadline: float) -> bool:
    """True once the master logged its start (it does so after binding every listener) and both ports answer;
    False if it exits first."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if "starting up" in server.log() and _port_open(server.port) and _port_open(server.tls_port):
            return True
        time.sleep(0.005)
    return False


@contextlib.contextmanager
def run_dovecot(certs: MailCerts, configure: Callable[[str, Path], str] | None = None) -> Iterator[DovecotServer]:
    """Start a private Dovecot on free ports; stop it (and every child) on exit. `configure(config, root)` may change
    the configuration text (another passdb: the OAuth stand-in's XOAUTH2)."""
    binary = find_dovecot()
    if binary is None:
        message = "dovecot is not installed: apt-get install dovecot-imapd"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)

    rootless = os.getuid() != 0
    if rootless:
        mail_uid, mail_gid = os.getuid(), os.getgid()
    else:
        nobody = pwd.getpwnam("nobody")
        mail_uid, mail_gid = nobody.pw_uid, nobody.pw_gid

    # Not under pytest's basetemp: its directories are 0700, and as root the mail store belongs to 'nobody'.
    root = Path(tempfile.mkdtemp(prefix="banxway-dovecot-"))
    root.chmod(0o711)
    mail_root = root / "mail"
    mail_root.mkdir()
    os.chown(mail_root, mail_uid, mail_gid)

    process: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(5):
            port, tls_port = free_ports(2)
            server = DovecotServer(
                host=HOST,
                port=port,
                tls_port=tls_port,
                cert_path=certs.ca_path,
                root=root,
                mail_root=mail_root,
                log_path=root / "dovecot.log",
                mail_uid=mail_uid,
                mail_gid=mail_gid,
            )
            server.add_user(server.user, server.password)
            config = root / "dovecot.conf"
            text = _dovecot_config(root, port, tls_port, certs, mail_uid, mail_gid, rootless)
            config.write_text(configure(text, root) if configure is not None else text)
            server.log_path.unlink(missing_ok=True)  # readiness is read from the log
            with (root / "dovecot.out").open("wb") as output_file:
                process = subprocess.Popen(
                    [sys.executable, "-I", "-c", _REAPER, binary, "-F", "-c", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=output_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if _dovecot_ready(process, server, time.monotonic() + 10):
                server.process = process
                break
            _stop_process_group(process)
            output = (root / "dovecot.out").read_text(errors="replace")
            process = None
            if "Address already in use" not in output + server.log():
                raise RuntimeError(f"Dovecot did not start:\n{output}\n{server.log()}")
        else:
            raise RuntimeError("Dovecot did not start: no free ports")
        yield server
    finally:
        if process is not None:
            _stop_process_group(process)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dovecot(mail_certs: MailCerts) -> Iterator[DovecotServer]:
    with run_dovecot(mail_certs) as server:
        yield server


# --------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes  # the DATA as received, dot-unstuffed, CRLF line endings
    mail_options: list[str]
    authenticated_as: str | None
    tls: bool


class RecordingHandler:
    """Records every delivered envelope; can answer with canned replies or deliver slowly."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []
        self.replies: deque[str] = deque()  # the next DATA replies, one per message
        self.always: str | None = None  # a DATA reply for every message (after ``replies`` run out)
        self.rcpt_replies: dict[str, str] = {}  # RCPT TO address -> reply (e.g. a 550 for one address)
        self.delay: float = 0.0  # seconds to sleep before answering DATA
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            reply = self.replies.popleft() if self.replies else self.always
        if reply is not None and not reply.startswith("2"):
            return reply
        content = envelope.original_content or b""
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.messages.append(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                raw=content,
                mail_options=list(envelope.mail_options),
                authenticated_as=login,
                tls=session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            )
        )
        return reply or f"250 2.0.0 Ok: queued as {len(self.messages)}"


@dataclass
class SmtpServer:
    host: str
    port: int  # plain SMTP; STARTTLS offered; AUTH allowed without TLS
    tls_port: int  # implicit TLS (465-style)
    cert_path: str  # the CA certificate to pass as ca_file
    user: str
    password: str
    handler: RecordingHandler

    @property
    def messages(self) -> list[ReceivedMail]:
        return self.handler.messages

    def reply_next(self, reply: str, count: int = 1) -> None:
        """Answer the next ``count`` messages' DATA with ``reply`` (e.g. "451 4.3.0 try again later")."""
        self.handler.replies.extend([reply] * count)

    def reply_always(self, reply: str | None) -> None:
        """Answer every message's DATA with ``reply``; None restores normal delivery."""
        self.handler.always = reply

    def refuse_recipient(self, address: str, reply: str = "550 5.1.1 mailbox unavailable") -> None:
        self.handler.rcpt_replies[address] = reply

    def slow(self, seconds: float) -> None:
        """Sleep ``seconds`` before answering each DATA."""
        self.handler.delay = seconds


def _start_controller(make: Any) -> Controller:
    for _attempt in range(5):
        (port,) = free_ports(1)
        controller = make(port)
        try:
            controller.start()
        except OSError as error:  # lost the race for the port
            last = error
            continue
        return controller
    raise RuntimeError(f"aiosmtpd did not start: {last}")


@contextlib.contextmanager
def run_smtp_server(certs: MailCerts, user: str = "mailer", password: str = "secret-mailer") -> Iterator[SmtpServer]:
    handler = RecordingHandler()

    def authenticator(server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        # handled=False: let aiosmtpd answer a failure with its standard 535 reply.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    common: dict[str, Any] = {
        "hostname": HOST,
        "authenticator": authenticator,
        "auth_require_tls": False,
        "ready_timeout": 10,
    }
    plain = _start_controller(lambda port: Controller(handler, port=port, tls_context=certs.server_context(), **common))
    try:
        implicit = _start_controller(
            lambda port: Controller(handler, port=port, ssl_context=certs.server_context(), **common)
        )
        try:
            yield SmtpServer(HOST, plain.port, implicit.port, certs.ca_path, user, password, handler)
        finally:
            implicit.stop()
    finally:
        plain.stop()


@pytest.fixture
def smtp_server(mail_certs: MailCerts) -> Iterator[SmtpServer]:
    with run_smtp_server(mail_certs) as server:
        yield server
