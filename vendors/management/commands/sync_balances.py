from vendors import services
from vendors.management.commands._sync import SyncCommand


class Command(SyncCommand):
    help = "Record the balances of one vendor, or of every enabled vendor."
    what = "balance"

    def sync(self, vendor) -> str:
        balances = services.sync_balances(vendor=vendor)
        return ", ".join(f"{b.reported} {b.currency}" for b in balances) or "no balances"
