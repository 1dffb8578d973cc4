"""What the two sync commands (vendors: sync_catalog, orders: sync_balances) share: choosing
vendors and reporting per vendor."""

from django.core.management.base import BaseCommand, CommandError

from common.http import SupplierError
from vendors.selectors import enabled_vendors


class SyncCommand(BaseCommand):
    what = ""

    def add_arguments(self, parser) -> None:
        parser.add_argument("--vendor", help="the vendor's name; every enabled vendor if absent")

    def sync(self, vendor) -> str:
        raise NotImplementedError

    def handle(self, *args, vendor=None, **options) -> None:
        vendors = list(enabled_vendors(vendor))
        if vendor and not vendors:
            raise CommandError(f"no enabled vendor named {vendor!r}")
        failed = 0
        for v in vendors:
            try:
                self.stdout.write(f"{v.name}: {self.sync(v)}")
            except SupplierError as exc:
                failed += 1
                self.stderr.write(f"{v.name}: {self.what} sync failed: {exc}")
        if failed:
            raise CommandError(f"{failed} of {len(vendors)} vendors failed")
