from vendors import services
from vendors.management.sync_command import SyncCommand


class Command(SyncCommand):
    help = "Upsert the catalog of one vendor, or of every enabled vendor."
    what = "catalog"

    def sync(self, vendor) -> str:
        counts = services.sync_catalog(vendor=vendor)
        return ", ".join(f"{n} {k}" for k, n in counts.items())
