"""Re-encrypt every voucher and vendor credential with the current key of VOUCHER_KEYS.

Works in batches, each its own transaction, so it can be interrupted and run again: rows
already on the current key are skipped.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from audit import services as audit
from common.crypto import default_keyring
from orders.custody import reseal
from orders.models import Voucher
from vendors.credentials import needs_rotation, open_credentials, seal_credentials
from vendors.models import Vendor


class Command(BaseCommand):
    help = "Re-encrypt voucher codes and vendor credentials with the current voucher key."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options) -> None:
        keyring = default_keyring()
        current = keyring.current_version
        vouchers = 0
        while True:
            with transaction.atomic():
                batch = list(
                    Voucher.objects.select_for_update()
                    .exclude(key_version=current)
                    .order_by("pk")[:batch_size]
                )
                for voucher in batch:
                    reseal(voucher, keyring=keyring)
                Voucher.objects.bulk_update(
                    batch, ["code_encrypted", "pin_encrypted", "claim_url_encrypted",
                            "key_version"]
                )
            vouchers += len(batch)
            if batch:
                self.stdout.write(f"re-encrypted {vouchers} vouchers so far")
            if len(batch) < batch_size:
                break

        vendors = 0
        for vendor in Vendor.objects.exclude(credentials_encrypted=""):
            with transaction.atomic():
                vendor = Vendor.objects.select_for_update().get(pk=vendor.pk)
                if needs_rotation(vendor, keyring):
                    seal_credentials(vendor, open_credentials(vendor, keyring=keyring),
                                     keyring=keyring)
                    vendor.save(update_fields=["credentials_encrypted", "updated_at"])
                    vendors += 1

        remaining = Voucher.objects.exclude(key_version=current).count()
        with transaction.atomic():
            audit.record(
                action=audit.Action.KEYS_ROTATED,
                message=f"Re-encrypted {vouchers} vouchers and {vendors} vendor credentials "
                f"with key {current}",
                data={"vouchers": vouchers, "vendors": vendors, "key_version": current},
            )
        self.stdout.write(
            f"key {current}: re-encrypted {vouchers} vouchers and {vendors} vendor credentials; "
            f"{remaining} vouchers left on older keys"
        )
