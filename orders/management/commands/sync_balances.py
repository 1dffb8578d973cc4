from orders import balances
from vendors.management.sync_command import SyncCommand


class Command(SyncCommand):
    help = "Record the balances of one vendor, or of every enabled vendor."
    what = "balance"

    def sync(self, vendor) -> str:
        reported = balances.sync_balances(vendor=vendor)
        return ", ".join(f"{b.reported} {b.currency}" for b in reported) or "no balances"
