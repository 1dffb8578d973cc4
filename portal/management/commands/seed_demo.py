from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal import demo


class Command(BaseCommand):
    help = "Create the demo users and the sandbox vendors (development only)."

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("demo data is for development: DEBUG is off")
        for username, password in demo.seed_users():
            self.stdout.write(f"  user {username:<9} password {password}")
        for vendor in demo.seed_vendors():
            self.stdout.write(f"  vendor {vendor.name} -> {vendor.base_url}")
