import base64
import os

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from common.crypto import CryptoError, Keyring, default_keyring
from orders.custody import open_voucher
from orders.models import Voucher
from vendors.credentials import open_credentials
from vendors.services import vendor_set_credentials


@pytest.fixture
def fresh_keyring(settings):
    default_keyring.cache_clear()
    yield settings
    default_keyring.cache_clear()


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.mark.django_db
def test_it_reencrypts_every_code_so_the_current_key_alone_decrypts(
    fresh_keyring, make_voucher, make_vendor, capsys
):
    settings = fresh_keyring
    codes = {f"CODE-{i:04d}-ROTATE" for i in range(7)}
    for code in codes:
        make_voucher(code, pin="1234")
    vendor = make_vendor()
    vendor_set_credentials(vendor=vendor, credentials={"api_key": "kal_test_rotate"})
    old_keys = settings.VOUCHER_KEYS

    new = new_key()
    settings.VOUCHER_KEYS = f"9:{new},{old_keys}"
    default_keyring.cache_clear()
    call_command("rotate_voucher_keys", batch_size=3)
    out = capsys.readouterr().out
    assert "re-encrypted 7 vouchers and 1 vendor credentials" in out
    assert "0 vouchers left on older keys" in out

    only_new = Keyring(voucher_keys=f"9:{new}", index_key=settings.VOUCHER_INDEX_KEY)
    vouchers = list(Voucher.objects.all())
    assert {v.key_version for v in vouchers} == {9}
    assert {open_voucher(v, keyring=only_new).code for v in vouchers} == codes
    assert {open_voucher(v, keyring=only_new).pin for v in vouchers} == {"1234"}
    vendor.refresh_from_db()
    assert open_credentials(vendor, keyring=only_new) == {"api_key": "kal_test_rotate"}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.KEYS_ROTATED).exists()


@pytest.mark.django_db
def test_it_can_be_run_again_and_skips_what_is_done(fresh_keyring, make_voucher, capsys):
    settings = fresh_keyring
    make_voucher("CODE-AAAA-0001")
    settings.VOUCHER_KEYS = f"2:{new_key()},{settings.VOUCHER_KEYS}"
    default_keyring.cache_clear()
    call_command("rotate_voucher_keys")
    call_command("rotate_voucher_keys")
    out = capsys.readouterr().out
    assert "re-encrypted 1 vouchers" in out
    assert "re-encrypted 0 vouchers and 0 vendor credentials" in out


@pytest.mark.django_db
def test_it_keeps_the_old_ciphertext_unreadable_with_the_new_key_before_rotation(
    fresh_keyring, make_voucher
):
    settings = fresh_keyring
    voucher = make_voucher("CODE-BBBB-0002")
    only_new = Keyring(voucher_keys=f"3:{new_key()}", index_key=settings.VOUCHER_INDEX_KEY)
    with pytest.raises(CryptoError):
        open_voucher(voucher, keyring=only_new)
