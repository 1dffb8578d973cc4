"""Demo users and sandbox vendors for the run command. Development only."""

import importlib

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.db import transaction

from vendors.models import Vendor
from vendors.services import vendor_set_credentials

DEMO_USERS = [
    # username, password, group, is_superuser
    ("admin", "demo-admin-pass", None, True),
    ("orderer", "demo-orderer-pass", "Orderers", False),
    ("approver", "demo-approver-pass", "Approvers", False),
]

GROUP_PERMISSIONS = {
    "Orderers": ["orders.view_order", "orders.add_order", "orders.reveal_codes",
                 "orders.export_codes", "vendors.view_product", "vendors.view_balance"],
    "Approvers": ["orders.view_order", "orders.approve_order", "orders.reveal_codes",
                  "orders.export_codes", "vendors.view_product", "vendors.view_balance",
                  "vendors.view_vendor"],
}

DEMO_VENDORS = [
    # name, kind, sandbox module
    ("Kalixo (sandbox)", "kalixo_v2", "vendors.sandbox.kalixo_v2"),
    ("Kalixo v1 (sandbox)", "kalixo_v1", "vendors.sandbox.kalixo_v1"),
    ("EZ Cards (sandbox)", "ezcards", "vendors.sandbox.ezcards"),
    ("Starship Rewards (sandbox)", "starship", "vendors.sandbox.starship"),
]


def _permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


@transaction.atomic
def seed_users() -> list[tuple[str, str]]:
    for name, perms in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set([_permission(p) for p in perms])
    logins = []
    for username, password, group, superuser in DEMO_USERS:
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_password(password)
        user.is_staff = True
        user.is_superuser = superuser
        user.save()
        if group:
            user.groups.add(Group.objects.get(name=group))
        logins.append((username, password))
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
