"""The portal's roles: each a Django group holding a fixed set of permissions.

A user may hold several roles. The data migration ``portal.0002_roles`` creates the groups
from ``ROLES``; the demo users (portal.demo) hold them too. Deciding what a user may do with
one order is the job of the ``can_*`` functions in ``orders.services``; these permissions
are what those functions ask about.
"""

VIEWER = ["orders.view_order", "vendors.view_product"]

ROLES: dict[str, list[str]] = {
    # Own orders with their codes masked, and the catalog.
    "viewer": VIEWER,
    # Places orders (within limits; above them an approver decides).
    "orderer": [*VIEWER, "orders.add_order"],
    # Decides other people's orders; sees every order, and the reports over them.
    "approver": ["orders.view_order", "orders.approve_order", "orders.view_reports"],
    # Reveals and exports the codes of the orders they may see.
    "custodian": ["orders.view_order", "orders.reveal_codes", "orders.export_codes"],
    # Vendors and their credentials, balances, the catalog's matching of offers, stuck
    # supplier orders, the RQ dashboard, users' spend limits, the reports over every
    # supplier order.
    "operator": [
        "vendors.view_vendor", "vendors.change_vendor", "vendors.view_balance",
        "vendors.view_product",
        "orders.view_vendororder", "orders.change_vendororder", "django_rq.admin",
        "orders.view_spendlimit", "orders.change_spendlimit", "orders.view_reports",
    ],
    # The audit trail.
    "auditor": ["audit.view_auditevent"],
}

# The permission that opens the RQ dashboard (django-rq's own "Access admin page").
QUEUE_DASHBOARD_PERMISSION = "django_rq.admin"


def role_group(name: str):
    """The group of role ``name`` with exactly its permissions, created if missing (the
    migration creates them; a test database flushed between tests does not keep them)."""
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=name)
    permissions = []
    for dotted in ROLES[name]:
        app_label, codename = dotted.split(".")
        permissions.append(Permission.objects.get(content_type__app_label=app_label,
                                                  codename=codename))
    group.permissions.set(permissions)
    return group
