"""Secrets at rest: API keys are stored as Fernet tokens, never as plain text.

Where the encryption key comes from, in order:

1. ``FEDOPT_SECRET_KEY`` (``settings.secret_key``).  A Fernet key (``Fernet.generate_key()``) is
   used as it is; any other text is treated as a passphrase and stretched with PBKDF2-SHA256.
2. Otherwise a key file, ``<FEDOPT_HOME>/secret.key``, created on first use with mode 0600.

Decryption also tries the key file when the environment key is primary (so setting
``FEDOPT_SECRET_KEY`` after the key file was in use keeps old tokens readable), and a
``secret.key.next`` left behind by an interrupted rotation.

Rotation re-encrypts every token with a new key in one database transaction (see
``accounts.rotate_secret_key``); this module prepares the new key and publishes it afterwards.

Neither the plain API key nor any encryption key is ever logged, put in an exception text or
returned by a repr: only ``••••`` plus the last four characters of an API key are shown.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from fedopt_core.config import Settings, get_settings

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"
NEXT_KEY_FILE_NAME = "secret.key.next"
MASK = "••••"
#: Shorter keys are shown as ``••••`` only: four characters of a short key give too much away.
MIN_LENGTH_TO_SHOW_LAST4 = 12

# A fixed salt: the derived key must be the same in every process that has the passphrase.
# The salt only separates fedopt's derivation from others; strength comes from the passphrase.
_PASSPHRASE_SALT = b"fedopt/secret-key/v1"
_PASSPHRASE_ITERATIONS = 480_000


class SecretKeyError(RuntimeError):
    """The encryption key cannot be obtained or used; the message says what to do."""


class DecryptionError(SecretKeyError):
    """A stored token cannot be decrypted with any configured key."""


# --------------------------------------------------------------------------- showing


def last4(plain: str) -> str | None:
    """What may be shown of a key: its last four characters, or None for a short key."""
    return plain[-4:] if len(plain) >= MIN_LENGTH_TO_SHOW_LAST4 else None


def mask_secret(last_four: str | None) -> str:
    """``••••1234`` (or ``••••`` when nothing may be shown); ``""`` is never returned."""
    return MASK + (last_four or "")


# --------------------------------------------------------------------------- keys


def _is_fernet_key(value: bytes) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value)) == 32
    except (binascii.Error, ValueError):
        return False


@functools.lru_cache(maxsize=8)
def _derive(passphrase: str) -> bytes:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=_PASSPHRASE_SALT, iterations=_PASSPHRASE_ITERATIONS)
    return base64.urlsafe_b64encode(kdf.derive(passphrase.encode("utf-8")))


def key_from_text(value: str | bytes) -> bytes:
    """A Fernet key from a Fernet key or a passphrase (the form ``FEDOPT_SECRET_KEY`` accepts)."""
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    raw = raw.strip()
    if not raw:
        raise SecretKeyError("the secret key is empty")
    if _is_fernet_key(raw):
        return raw
    return _derive(raw.decode("utf-8", errors="strict"))


def generate_key() -> bytes:
    """A new random Fernet key."""
    return Fernet.generate_key()


def key_file_path(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / KEY_FILE_NAME


def _next_key_file_path(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / NEXT_KEY_FILE_NAME


def _read_key_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            # A key readable by others is a leak waiting to happen; tighten it rather than refuse.
            os.chmod(path, 0o600)
            logger.warning("key file %s was readable by other users; its mode is now 0600", path)
        raw = path.read_bytes().strip()
    except OSError as exc:
        raise SecretKeyError(f"cannot read the key file {path}: {exc.strerror}") from None
    if not _is_fernet_key(raw):
        raise SecretKeyError(f"the key file {path} does not hold a Fernet key")
    return raw


def _write_new_key_file(path: Path, key: bytes, *, replace: bool) -> None:
    """Write ``key`` to ``path`` with mode 0600, atomically (readers never see a partial file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            if replace:
                os.replace(tmp, path)
            else:
                # link() refuses to overwrite: if another process created the file first, theirs wins.
                os.link(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    except FileExistsError:
        raise
    except OSError as exc:
        raise SecretKeyError(f"cannot write the key file {path}: {exc.strerror}") from None


def _key_file_key(settings: Settings, *, create: bool) -> bytes | None:
    path = key_file_path(settings)
    if path.exists():
        return _read_key_file(path)
    if not create:
        return None
    try:
        _write_new_key_file(path, generate_key(), replace=False)
        logger.info("created a new encryption key file %s (mode 0600)", path)
    except FileExistsError:
        pass  # another process created it between our check and our write
    return _read_key_file(path)


def _keys(settings: Settings) -> list[bytes]:
    """The configured keys, primary first, without duplicates."""
    keys: list[bytes] = []
    if settings.secret_key:
        keys.append(key_from_text(settings.secret_key))
        fallback = _key_file_key(settings, create=False)
        if fallback is not None:
            keys.append(fallback)
    else:
        keys.append(_key_file_key(settings, create=True))  # type: ignore[arg-type]
    pending = _next_key_file_path(settings)
    if pending.exists():
        keys.append(_read_key_file(pending))
    unique: list[bytes] = []
    for key in keys:
        if key not in unique:
            unique.append(key)
    return unique


def keyring(settings: Settings | None = None) -> MultiFernet:
    """Encrypts with the primary key; decrypts with any configured key."""
    return MultiFernet([Fernet(k) for k in _keys(settings or get_settings())])


def key_source(settings: Settings | None = None) -> str:
    """Where the primary key comes from, for messages (never the key itself)."""
    settings = settings or get_settings()
    return "FEDOPT_SECRET_KEY" if settings.secret_key else f"the key file {key_file_path(settings)}"


# --------------------------------------------------------------------------- use


def encrypt_secret(plain: str, settings: Settings | None = None) -> bytes:
    """A Fernet token for ``plain`` (made with the primary key)."""
    return keyring(settings).encrypt(plain.encode("utf-8"))


def decrypt_secret(token: bytes, settings: Settings | None = None) -> str:
    """The plain text of ``token``; :class:`DecryptionError` when no configured key opens it."""
    try:
        return keyring(settings).decrypt(bytes(token)).decode("utf-8")
    except InvalidToken:
        raise DecryptionError(
            f"a stored API key cannot be decrypted with {key_source(settings)}; the secret key was "
            "changed without re-encrypting (rotate with the old key still configured)"
        ) from None


@dataclass
class KeyRotation:
    """A prepared change of the primary key: rotate each token, then ``finish`` (or ``abandon``)."""

    new_key: bytes = field(repr=False)
    settings: Settings = field(repr=False)
    _old: MultiFernet = field(repr=False, default=None)  # type: ignore[assignment]
    _pending_file: Path | None = field(repr=False, default=None)

    def rotate(self, token: bytes) -> bytes:
        """``token`` re-encrypted with the new key (it may be under any configured key)."""
        try:
            plain = self._old.decrypt(bytes(token))
        except InvalidToken:
            raise DecryptionError(
                f"a stored API key cannot be decrypted with {key_source(self.settings)}; nothing was re-encrypted"
            ) from None
        return Fernet(self.new_key).encrypt(plain)

    def finish(self) -> str:
        """Publish the new key; returns what the operator must do next (if anything)."""
        if self._pending_file is not None:
            os.replace(self._pending_file, key_file_path(self.settings))
            return f"the new key is in {key_file_path(self.settings)}"
        return "set FEDOPT_SECRET_KEY to the new key and restart every fedopt process"

    def abandon(self) -> None:
        if self._pending_file is not None and self._pending_file.exists():
            self._pending_file.unlink()


def prepare_rotation(new_key: str | bytes | None = None, settings: Settings | None = None) -> KeyRotation:
    """Get ready to re-encrypt with a new key.

    With a key file (no ``FEDOPT_SECRET_KEY``) the new key (random when not given) is written to
    ``secret.key.next`` first, so that a crash after the database commit loses nothing: that file
    is one of the keys tried when decrypting.  With ``FEDOPT_SECRET_KEY`` the new key must be given,
    and the operator sets the variable to it afterwards.
    """
    settings = settings or get_settings()
    old = keyring(settings)
    if settings.secret_key:
        if new_key is None:
            raise SecretKeyError("FEDOPT_SECRET_KEY is set: give the new key, then set FEDOPT_SECRET_KEY to it")
        return KeyRotation(key_from_text(new_key), settings, old, None)
    key = key_from_text(new_key) if new_key is not None else generate_key()
    pending = _next_key_file_path(settings)
    _write_new_key_file(pending, key, replace=True)
    return KeyRotation(key, settings, old, pending)
