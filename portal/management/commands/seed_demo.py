from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from portal import demo
from portal.twofactor import requires_two_factor


class Command(BaseCommand):
    help = "Create the demo users and the sandbox vendors (development only)."

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("demo data is for development: DEBUG is off")
        for username, password, roles in demo.seed_users():
            user = get_user_model().objects.get(username=username)
            role = ", ".join(roles) or "superuser"
            note = "; two-factor: set up at first login" if requires_two_factor(user) else ""
            self.stdout.write(f"  user {username:<9} password {password:<20} {role}{note}")
        for vendor in demo.seed_vendors():
            self.stdout.write(f"  vendor {vendor.name} -> {vendor.base_url}")
