"""Demo users and sandbox vendors for the run command. Development only."""

import importlib

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from portal.roles import role_group
from vendors.models import Vendor
from vendors.services import vendor_set_credentials

DEMO_USERS = [
    # username, password, roles (portal.roles), is_superuser
    ("admin", "demo-admin-pass", [], True),
    ("orderer", "demo-orderer-pass", ["orderer", "custodian"], False),
    ("approver", "demo-approver-pass", ["approver", "custodian"], False),
    ("viewer", "demo-viewer-pass", ["viewer"], False),
    ("custodian", "demo-custodian-pass", ["viewer", "custodian"], False),
    ("operator", "demo-operator-pass", ["operator"], False),
    ("auditor", "demo-auditor-pass", ["auditor"], False),
]

DEMO_VENDORS = [
    # name, kind, sandbox module
    ("Kalixo (sandbox)", "kalixo_v2", "vendors.sandbox.kalixo_v2"),
    ("Kalixo v1 (sandbox)", "kalixo_v1", "vendors.sandbox.kalixo_v1"),
    ("EZ Cards (sandbox)", "ezcards", "vendors.sandbox.ezcards"),
    ("Starship Rewards (sandbox)", "starship", "vendors.sandbox.starship"),
]


@transaction.atomic
def seed_users() -> list[tuple[str, str, list[str]]]:
    """The demo users, each in its role groups (created by the migration portal.0002_roles).
    Returns (username, password, roles) of each."""
    logins = []
    for username, password, roles, superuser in DEMO_USERS:
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_password(password)
        user.is_staff = True
        user.is_superuser = superuser
        user.save()
        user.groups.set([role_group(role) for role in roles])
        logins.append((username, password, roles))
    return logins


@transaction.atomic
def seed_vendors(sandbox_url: str | None = None) -> list[Vendor]:
    """One vendor per sandbox supplier; credentials are set only when the vendor is new."""
    sandbox_url = (sandbox_url or settings.SANDBOX_URL).rstrip("/")
    vendors = []
    for name, kind, module_path in DEMO_VENDORS:
        module = importlib.import_module(module_path)
        vendor, created = Vendor.objects.get_or_create(
            name=name, defaults={"kind": kind, "base_url": sandbox_url + module.BASE_PATH},
        )
        if created:
            vendor_set_credentials(vendor=vendor, credentials=module.DEMO_CREDENTIALS)
        vendors.append(vendor)
    return vendors
