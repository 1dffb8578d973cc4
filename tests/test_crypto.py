import base64
import os

import pytest

from common.crypto import CryptoError, Keyring, parse_keys


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(voucher_keys=f"1:{key()}", index_key=key())


def test_it_encrypts_the_same_code_to_different_ciphertexts(keyring):
    first = keyring.encrypt("ABCD-1234-EFGH", context="orders.voucher:1:code")
    second = keyring.encrypt("ABCD-1234-EFGH", context="orders.voucher:1:code")
    assert first != second
    assert "ABCD" not in first
    assert keyring.decrypt(first, context="orders.voucher:1:code") == "ABCD-1234-EFGH"
    assert keyring.decrypt(second, context="orders.voucher:1:code") == "ABCD-1234-EFGH"


def test_it_uses_a_96_bit_nonce_and_the_current_key_version(keyring):
    token = keyring.encrypt("X", context="c")
    version, _, body = token.partition(":")
    raw = base64.b64decode(body)
    assert version == "1"
    assert len(raw) == 12 + 1 + 16  # nonce, one byte of ciphertext, GCM tag


def test_it_fails_loudly_on_a_tampered_ciphertext(keyring):
    token = keyring.encrypt("ABCD-1234", context="c")
    version, _, body = token.partition(":")
    raw = bytearray(base64.b64decode(body))
    raw[14] ^= 0x01
    tampered = f"{version}:{base64.b64encode(bytes(raw)).decode()}"
    with pytest.raises(CryptoError):
        keyring.decrypt(tampered, context="c")


def test_it_fails_loudly_with_a_wrong_key(keyring):
    token = keyring.encrypt("ABCD-1234", context="c")
    other = Keyring(voucher_keys=f"1:{key()}", index_key=key())
    with pytest.raises(CryptoError):
        other.decrypt(token, context="c")


def test_it_fails_loudly_when_a_ciphertext_moves_to_another_row_or_field(keyring):
    token = keyring.encrypt("ABCD-1234", context="orders.voucher:1:code")
    with pytest.raises(CryptoError):
        keyring.decrypt(token, context="orders.voucher:2:code")
    with pytest.raises(CryptoError):
        keyring.decrypt(token, context="orders.voucher:1:pin")


def test_it_fails_loudly_when_the_key_version_is_not_configured(keyring):
    token = keyring.encrypt("ABCD-1234", context="c")
    newer_only = Keyring(voucher_keys=f"2:{key()}", index_key=key())
    with pytest.raises(CryptoError, match="no key with version 1"):
        newer_only.decrypt(token, context="c")


def test_it_decrypts_old_tokens_with_older_keys_and_encrypts_with_the_first():
    old, new = key(), key()
    index = key()
    before = Keyring(voucher_keys=f"1:{old}", index_key=index)
    token = before.encrypt("CODE", context="c")
    after = Keyring(voucher_keys=f"2:{new},1:{old}", index_key=index)
    assert after.decrypt(token, context="c") == "CODE"
    assert after.needs_rotation(token)
    assert after.encrypt("CODE", context="c").startswith("2:")


def test_it_gives_a_blind_index_that_ignores_spacing_and_case_but_not_content(keyring):
    assert keyring.blind_index("abcd-1234 efgh") == keyring.blind_index("ABCD1234EFGH")
    assert keyring.blind_index("ABCD1234EFGH") != keyring.blind_index("ABCD1234EFGI")
    assert len(keyring.blind_index("X")) == 64


@pytest.mark.parametrize("setting", ["", "abc", "1:notbase64!", "x:" + "A" * 44, "1:" + "QQ=="])
def test_it_rejects_malformed_key_settings(setting):
    with pytest.raises(CryptoError):
        parse_keys(setting)


def test_it_rejects_a_version_listed_twice():
    k = key()
    with pytest.raises(CryptoError, match="twice"):
        parse_keys(f"1:{k},1:{k}")
