"""Secrets at rest: where the encryption key comes from, masking, rotation preparation."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from fedopt_core import crypto
from fedopt_core.config import get_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEDOPT_HOME", str(tmp_path))
    monkeypatch.delenv("FEDOPT_SECRET_KEY", raising=False)
    return tmp_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_file_is_created_with_mode_0600_and_reused(home: Path) -> None:
    token = crypto.encrypt_secret("secret_plain_value_123456")
    path = home / crypto.KEY_FILE_NAME
    assert path.exists() and _mode(path) == 0o600
    key = path.read_bytes().strip()
    assert Fernet(key).decrypt(token) == b"secret_plain_value_123456"
    assert b"secret_plain_value" not in token
    # A second use reads the same file rather than making a new key.
    assert crypto.decrypt_secret(crypto.encrypt_secret("again_value_0000")) == "again_value_0000"
    assert path.read_bytes().strip() == key


def test_a_key_file_readable_by_others_is_tightened(home: Path) -> None:
    path = home / crypto.KEY_FILE_NAME
    path.write_bytes(Fernet.generate_key())
    os.chmod(path, 0o644)
    crypto.encrypt_secret("x" * 20)
    assert _mode(path) == 0o600


def test_a_corrupt_key_file_is_a_clear_error(home: Path) -> None:
    (home / crypto.KEY_FILE_NAME).write_text("not a key\n")
    with pytest.raises(crypto.SecretKeyError, match="does not hold a Fernet key"):
        crypto.encrypt_secret("x" * 20)


def test_concurrent_first_use_agrees_on_one_key(home: Path) -> None:
    tokens: list[bytes] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work() -> None:
        try:
            start.wait()
            tokens.append(crypto.encrypt_secret("shared_secret_value_42"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    key = (home / crypto.KEY_FILE_NAME).read_bytes().strip()
    assert [Fernet(key).decrypt(t) for t in tokens] == [b"shared_secret_value_42"] * 8
    assert not list(home.glob(".*.tmp"))


def test_environment_fernet_key_is_used_as_is(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv("FEDOPT_SECRET_KEY", key.decode())
    token = crypto.encrypt_secret("env_secret_value_77")
    assert Fernet(key).decrypt(token) == b"env_secret_value_77"
    assert not (home / crypto.KEY_FILE_NAME).exists()  # no key file when the environment supplies one


def test_environment_passphrase_is_stretched_and_wrong_passphrase_fails(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEDOPT_SECRET_KEY", "correct horse battery staple")
    token = crypto.encrypt_secret("passphrase_protected_1")
    assert crypto.decrypt_secret(token) == "passphrase_protected_1"
    monkeypatch.setenv("FEDOPT_SECRET_KEY", "another passphrase")
    with pytest.raises(crypto.DecryptionError) as info:
        crypto.decrypt_secret(token)
    text = str(info.value)
    assert "passphrase" not in text and "protected" not in text and token.decode() not in text
    assert "FEDOPT_SECRET_KEY" in text


def test_tokens_from_the_key_file_stay_readable_after_setting_the_variable(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = crypto.encrypt_secret("made_with_key_file_9")
    monkeypatch.setenv("FEDOPT_SECRET_KEY", Fernet.generate_key().decode())
    assert crypto.decrypt_secret(old) == "made_with_key_file_9"
    new = crypto.encrypt_secret("made_with_env_key_10")
    with pytest.raises(InvalidToken):
        Fernet((home / crypto.KEY_FILE_NAME).read_bytes().strip()).decrypt(new)


@pytest.mark.parametrize(
    ("plain", "shown"),
    [
        ("secret_abcdefgh1234", "••••1234"),
        ("short_key1", "••••"),  # under 12 characters nothing of the key is shown
    ],
)
def test_mask(plain: str, shown: str) -> None:
    assert crypto.mask_secret(crypto.last4(plain)) == shown


def test_rotation_with_a_key_file(home: Path) -> None:
    token = crypto.encrypt_secret("rotate_me_please_5678")
    old_key = (home / crypto.KEY_FILE_NAME).read_bytes().strip()
    rotation = crypto.prepare_rotation()
    assert (home / crypto.NEXT_KEY_FILE_NAME).exists()
    assert _mode(home / crypto.NEXT_KEY_FILE_NAME) == 0o600
    new_token = rotation.rotate(token)
    # Before finish() the pending key is already a decryption key: a crash here loses nothing.
    assert crypto.decrypt_secret(new_token) == "rotate_me_please_5678"
    rotation.finish()
    assert not (home / crypto.NEXT_KEY_FILE_NAME).exists()
    new_key = (home / crypto.KEY_FILE_NAME).read_bytes().strip()
    assert new_key != old_key
    assert Fernet(new_key).decrypt(new_token) == b"rotate_me_please_5678"
    with pytest.raises(InvalidToken):
        Fernet(old_key).decrypt(new_token)
    assert "rotate_me" not in repr(rotation) and new_key.decode() not in repr(rotation)


def test_rotation_abandoned_keeps_the_old_key(home: Path) -> None:
    crypto.encrypt_secret("x" * 20)
    old_key = (home / crypto.KEY_FILE_NAME).read_bytes()
    rotation = crypto.prepare_rotation()
    rotation.abandon()
    assert not (home / crypto.NEXT_KEY_FILE_NAME).exists()
    assert (home / crypto.KEY_FILE_NAME).read_bytes() == old_key


def test_rotation_with_the_variable_needs_the_new_key(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDOPT_SECRET_KEY", Fernet.generate_key().decode())
    with pytest.raises(crypto.SecretKeyError, match="give the new key"):
        crypto.prepare_rotation()
    assert crypto.key_source(get_settings()) == "FEDOPT_SECRET_KEY"
