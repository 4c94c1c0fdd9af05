"""Encryption at rest for credentials: IMAP/SMTP passwords, provider API tokens.

The key is derived from the application's secret key (`Settings.secret_key`) with
HKDF-SHA256, one key per purpose, and the values are sealed with Fernet
(AES-128-CBC + HMAC-SHA256, a random IV per token). Changing BANXWAY_SECRET_KEY
makes every stored credential unreadable: `decrypt` then raises `SecretError`
saying so, rather than returning garbage.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SecretBox", "SecretError"]

# A fixed, public application constant: HKDF's salt need not be secret, only the input key material.
_HKDF_SALT = b"banxway/secretbox/v1"


class SecretError(Exception):
    """A stored secret cannot be decrypted (wrong key, wrong purpose, or a corrupted token)."""


class SecretBox:
    """Encrypts and decrypts short strings with a key derived from the app's secret key and a purpose."""

    def __init__(self, secret_key: str, *, purpose: str = "credentials") -> None:
        if not secret_key:
            raise ValueError("SecretBox needs a non-empty secret key")
        self.purpose = purpose
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=_HKDF_SALT,
            info=b"banxway:" + purpose.encode("utf-8"),
        ).derive(secret_key.encode("utf-8"))
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def __repr__(self) -> str:
        return f"SecretBox(purpose={self.purpose!r})"

    def encrypt(self, plaintext: str) -> str:
        """A Fernet token (URL-safe base64 text) for `plaintext`; a fresh IV each time."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext of a token made by `encrypt` with the same secret key and purpose."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretError(
                f"A stored {self.purpose} secret cannot be decrypted: was BANXWAY_SECRET_KEY changed?"
            ) from exc
