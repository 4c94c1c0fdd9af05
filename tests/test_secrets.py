"""SecretBox: credentials encrypted at rest with a key derived from the app's secret key. No services."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from banxway.secrets import _HKDF_SALT, SecretBox, SecretError

SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
OTHER_SECRET = "another-secret-key-9876543210-zyxwvutsrqpon"
KEY_CHANGED = "cannot be decrypted: was BANXWAY_SECRET_KEY changed?"


def test_round_trip() -> None:
    # given a box keyed from the app's secret key
    box = SecretBox(SECRET)

    # when an IMAP password is encrypted and then decrypted
    token = box.encrypt("imap-p4ssw0rd!")

    # then the original password comes back, and the token is a str
    assert isinstance(token, str)
    assert box.decrypt(token) == "imap-p4ssw0rd!"


def test_a_second_box_with_the_same_key_and_purpose_decrypts() -> None:
    # given a token made by one box (e.g. before a restart)
    token = SecretBox(SECRET, purpose="smtp").encrypt("s3cret")

    # when a new box is built from the same secret key and purpose
    # then it decrypts the token: the key derivation is deterministic
    assert SecretBox(SECRET, purpose="smtp").decrypt(token) == "s3cret"


def test_a_different_secret_key_cannot_decrypt() -> None:
    # given a token made with one secret key
    token = SecretBox(SECRET).encrypt("imap-p4ssw0rd!")

    # when the secret key has changed
    # then decrypting fails with a SecretError that names the likely cause
    with pytest.raises(SecretError) as raised:
        SecretBox(OTHER_SECRET).decrypt(token)
    assert KEY_CHANGED in str(raised.value)


def test_a_different_purpose_cannot_decrypt() -> None:
    # given a token made for the "credentials" purpose
    token = SecretBox(SECRET).encrypt("api-token-123")

    # when a box with the same secret key but another purpose tries to decrypt it
    # then it fails with the SecretError
    with pytest.raises(SecretError) as raised:
        SecretBox(SECRET, purpose="webhooks").decrypt(token)
    assert KEY_CHANGED in str(raised.value)


def test_the_key_is_hkdf_sha256_of_the_secret_key_with_the_purpose_as_info() -> None:
    # given a Fernet keyed independently with HKDF-SHA256(secret key, app salt, info=b"banxway:" + purpose)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=b"banxway:smtp").derive(SECRET.encode())
    reference = Fernet(base64.urlsafe_b64encode(derived))

    # when the box encrypts for the "smtp" purpose
    token = SecretBox(SECRET, purpose="smtp").encrypt("s3cret")

    # then the independent Fernet reads it, and the raw secret key (no derivation) does not
    assert reference.decrypt(token.encode()) == b"s3cret"
    raw = Fernet(base64.urlsafe_b64encode(SECRET.encode()[:32]))
    with pytest.raises(InvalidToken):
        raw.decrypt(token.encode())


@pytest.mark.parametrize("garbage", ["", "not-a-token", "gAAAAA", "ünïcode-token"])
def test_garbage_tokens_raise_secret_error(garbage: str) -> None:
    # given a box
    box = SecretBox(SECRET)

    # when something that is not a token is decrypted
    # then a SecretError is raised, never another exception type
    with pytest.raises(SecretError, match="BANXWAY_SECRET_KEY"):
        box.decrypt(garbage)


def test_a_tampered_token_raises_secret_error() -> None:
    # given a valid token with one character changed in the middle
    box = SecretBox(SECRET)
    token = box.encrypt("imap-p4ssw0rd!")
    middle = len(token) // 2
    tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]

    # when it is decrypted
    # then the authentication fails with a SecretError
    with pytest.raises(SecretError):
        box.decrypt(tampered)


def test_two_encryptions_of_the_same_plaintext_differ() -> None:
    # given a box
    box = SecretBox(SECRET)

    # when the same password is encrypted twice
    first, second = box.encrypt("same-password"), box.encrypt("same-password")

    # then the tokens differ (fresh IV) but both decrypt to the password
    assert first != second
    assert box.decrypt(first) == box.decrypt(second) == "same-password"


def test_the_token_does_not_contain_the_plaintext() -> None:
    # given a recognisable password
    plaintext = "hunter2-very-recognisable-password"

    # when it is encrypted
    token = SecretBox(SECRET).encrypt(plaintext)

    # then neither the password nor its base64 forms appear in the token
    assert plaintext not in token
    assert "hunter2" not in token
    assert base64.urlsafe_b64encode(plaintext.encode()).decode().rstrip("=") not in token
    assert base64.b64encode(plaintext.encode()).decode().rstrip("=") not in token


@pytest.mark.parametrize("plaintext", ["pässwörd-ß", "密码🔑", "пароль", "", "  spaces  \n"])
def test_unicode_and_edge_case_passwords_round_trip(plaintext: str) -> None:
    # given a box
    box = SecretBox(SECRET)

    # when a non-ASCII (or empty, or whitespace-padded) password is encrypted
    token = box.encrypt(plaintext)

    # then the token is ASCII and decrypts to exactly the same string
    assert token.isascii()
    assert box.decrypt(token) == plaintext


def test_an_empty_secret_key_is_refused() -> None:
    # given no secret key
    # when a box is built
    # then it is refused rather than encrypting with a key anyone can derive
    with pytest.raises(ValueError, match="secret key"):
        SecretBox("")


def test_repr_does_not_leak_the_key() -> None:
    # given a box
    box = SecretBox(SECRET, purpose="smtp")

    # when it is printed (e.g. in a log or traceback)
    # then neither the secret key nor the derived key is shown, only the purpose
    assert repr(box) == "SecretBox(purpose='smtp')"
    assert SECRET not in repr(box)
