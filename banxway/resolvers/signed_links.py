"""Short-lived signed download links (`?expires=<unix time>&signature=<HMAC-SHA256>`), for what cannot send an
Authorization header (`<img src>`, `<a href>`, a provider fetching a file). One `LinkSigner` per purpose: its salt
derives a key of its own from BANXWAY_SECRET_KEY (HKDF, as banxway.secrets derives its keys), so that a link of one
purpose (`Attachment.downloadUrl`) is no link of another (a web chat visitor's), and a leaked access-token key is
no link key. The signature is the MAC of the fields the link is bound to and its expiry; links are bearer
capabilities until they expire."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_UNIX_TIME = re.compile(r"[0-9]{1,12}")


class LinkInvalid(Exception):
    """The link was altered, is for something else, or is not a link at all."""


class LinkExpired(Exception):
    """The link was signed by us, but its time is over."""


@lru_cache(maxsize=8)
def _key(secret_key: str, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret_key.encode("utf-8"))


@dataclass(frozen=True)
class LinkSigner:
    """Signs and checks links of one purpose (`salt`, `info`: HKDF's, never shared between purposes)."""

    salt: bytes
    info: bytes

    def signature(self, secret_key: str, fields: Sequence[object], expires: int) -> str:
        """The MAC of `fields` (each as `str()`, joined by dots) and `expires` (unix seconds), URL-safe base64."""
        message = ".".join([*(str(field) for field in fields), str(expires)]).encode()
        digest = hmac.new(_key(secret_key, self.salt, self.info), message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def query(self, secret_key: str, fields: Sequence[object], ttl: int) -> str:
        """`expires=...&signature=...` valid for at most `ttl` seconds. The expiry is rounded down to a third of
        `ttl`, so that the same file asked for again soon gets the same URL (a browser's cached image stays cached)
        and a link is valid between 2/3 of the time and the whole of it."""
        step = max(1, ttl // 3)
        expires = (int(time.time()) + ttl) // step * step
        return f"expires={expires}&signature={self.signature(secret_key, fields, expires)}"

    def seconds_left(
        self, secret_key: str, fields: Sequence[object], expires: str | None, signature: str | None
    ) -> int:
        """How long a link bound to `fields` stays valid. LinkInvalid (checked first, in constant time) or
        LinkExpired."""
        if not _UNIX_TIME.fullmatch(expires or "") or not signature:
            raise LinkInvalid
        until = int(expires or 0)
        expected = self.signature(secret_key, fields, until)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise LinkInvalid
        left = until - int(time.time())
        if left <= 0:
            raise LinkExpired
        return left
