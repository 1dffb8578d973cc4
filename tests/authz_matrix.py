"""The expected authorization table that tests/test_authz_matrix.py checks every URL against.

Each URL route (as the resolver spells it) has a Rule: which users may GET it and POST it.
The users are an anonymous visitor, an active user who is not staff, a staff user with no
permission, one staff user per role of portal.roles, and a superuser. A user outside a
rule is refused: sent to the login when not signed in as active staff, otherwise 403 or
404. A route missing here fails the suite: a new page needs its row.

Object pages act on fixtures owned by another user (the "placer"): ``ORDER_FOR`` says which
order each order page uses (see the fixture in the test); the bulk upload pages use the
placer's upload.
"""

from dataclasses import dataclass, field

ROLES = ("viewer", "orderer", "approver", "custodian", "operator", "auditor")
USERS = ("anonymous", "nonstaff", "staff", *ROLES, "superuser")
STAFF = frozenset(("staff", *ROLES, "superuser"))
EVERYONE = frozenset(USERS)
NOBODY = frozenset()
SUPERUSER = frozenset({"superuser"})


def users(*names: str) -> frozenset:
    return frozenset((*names, "superuser"))


@dataclass(frozen=True)
class Rule:
    """Who passes a route by GET and by POST. ``*_405``: users who pass the permission
    checks and are then told the method is not allowed. ``public``: no login needed.
    ``not_found``: users who pass but find nothing (the fixture names no real row there)."""

    get: frozenset = NOBODY
    post: frozenset = NOBODY
    get_405: frozenset = NOBODY
    post_405: frozenset = NOBODY
    public: bool = False
    not_found: frozenset = field(default=NOBODY)


def post_only(allowed: frozenset, gate: frozenset | None = None) -> Rule:
    """A POST-only page: ``allowed`` may post; ``gate`` (by default ``allowed``) pass the
    page's permission and then get 405 for a GET."""
    return Rule(post=allowed, get_405=allowed if gate is None else gate)


def same(allowed: frozenset) -> Rule:
    return Rule(get=allowed, post=allowed)


VIEW_ORDER = users("viewer", "orderer", "approver", "custodian")
ALL_ORDERS = users("approver")  # fixture orders belong to someone else
OPERATORS = users("operator")
CATALOG = users("viewer", "orderer", "operator")
REPORTS = users("approver", "operator")

PORTAL = {
    "healthz": Rule(get=EVERYONE, post_405=EVERYONE, public=True),
    "favicon.ico": Rule(get=EVERYONE, post_405=EVERYONE, public=True),
    # One's own second factor: every staff user.
    "account/two-factor/": same(STAFF),
    "account/two-factor/enrol/": same(STAFF),
    "account/two-factor/verify/": same(STAFF),
    "account/two-factor/reauthenticate/": same(STAFF),
    "account/two-factor/recovery-codes/": post_only(STAFF),
    # One's own alert emails: every staff user.
    "account/alerts/": same(STAFF),
    "audit/": Rule(get=users("auditor"), post_405=users("auditor")),
    "audit/export.csv": post_only(users("auditor")),
    "": same(STAFF),  # the dashboard (and "home", the same path)
    "catalog/": same(CATALOG),
    "catalog/<int:pk>/": same(CATALOG),
    "catalog/items/<int:pk>/": same(CATALOG),
    # One's own basket, for who may order; another user's basket line is not found.
    "basket/": Rule(get=users("orderer"), post_405=users("orderer")),
    "basket/picker/": Rule(get=users("orderer"), post_405=users("orderer")),
    "basket/add/": post_only(users("orderer")),
    "basket/lines/<int:pk>/": Rule(post=users("orderer"), get_405=users("orderer"),
                                   not_found=users("orderer")),
    "basket/place/": post_only(users("orderer")),
    "orders/": same(VIEW_ORDER),
    "orders/search/": post_only(VIEW_ORDER),
    "orders/new/": same(users("orderer")),
    "orders/new/quote/": same(users("orderer")),
    # Bulk orders from a file: who may order. The fixture upload is the placer's, so everyone
    # else who may order finds no such upload (404).
    "orders/bulk/": same(users("orderer")),
    "orders/bulk/template.csv": Rule(get=users("orderer"), post_405=users("orderer")),
    "orders/bulk/template.xlsx": Rule(get=users("orderer"), post_405=users("orderer")),
    "orders/bulk/<int:pk>/": Rule(get=users("orderer"), post_405=users("orderer"),
                                  not_found=users("orderer")),
    "orders/bulk/<int:pk>/place/": Rule(post=users("orderer"), get_405=users("orderer"),
                                        not_found=users("orderer")),
    # Codes of the orders the user sees, for who may export; POST only.
    "orders/export.csv": post_only(users("custodian"), gate=VIEW_ORDER),
    "orders/<int:pk>/": same(ALL_ORDERS),
    "orders/<int:pk>/live/": same(ALL_ORDERS),
    # Someone else's completed order: only who may reveal every order's codes.
    "orders/<int:pk>/export.csv": post_only(SUPERUSER, gate=VIEW_ORDER),
    "vouchers/<uuid:pk>/reveal/": post_only(SUPERUSER, gate=VIEW_ORDER),
    # Re-poll someone else's order: its placer or an operator (who must see the order).
    "orders/<int:pk>/repoll/": post_only(SUPERUSER, gate=VIEW_ORDER),
    # Cancel someone else's unsent order: an approver.
    "orders/<int:pk>/cancel/": post_only(ALL_ORDERS, gate=VIEW_ORDER),
    # Top up someone else's partial order: its placer or an operator.
    "orders/<int:pk>/top-up/": post_only(SUPERUSER, gate=VIEW_ORDER),
    # "Order again" on someone else's order: who may order and sees every order.
    "orders/<int:pk>/reorder/": post_only(SUPERUSER, gate=users("orderer")),
    "orders/<int:pk>/approve/": post_only(ALL_ORDERS),
    "orders/<int:pk>/reject/": post_only(ALL_ORDERS),
    # Spend and supplier reports and their CSVs: GET only.
    "reports/": Rule(get=REPORTS, post_405=REPORTS),
    "reports/spend.csv": Rule(get=REPORTS, post_405=REPORTS),
    "reports/brands.csv": Rule(get=REPORTS, post_405=REPORTS),
    "reports/scorecard.csv": Rule(get=REPORTS, post_405=REPORTS),
    # Settle a supplier order of unknown outcome: who may resolve it and sees its order.
    "vendor-orders/<int:pk>/resolve/": post_only(SUPERUSER, gate=VIEW_ORDER),
    # A supplier's webhook: no login; a POST is answered by its signature alone (the matrix's
    # bare POST is refused, signed or not by any user), a GET is 405 for everyone.
    "webhooks/starship/<int:vendor_id>/": Rule(get_405=EVERYONE, public=True),
}

# Which fixture order the order pages use.
ORDER_FOR = {
    "orders/<int:pk>/": "completed",
    "orders/<int:pk>/live/": "completed",
    "orders/<int:pk>/export.csv": "completed",
    "orders/<int:pk>/repoll/": "in_flight",
    "orders/<int:pk>/cancel/": "pending",
    "orders/<int:pk>/top-up/": "partial",
    "orders/<int:pk>/reorder/": "completed",
    "orders/<int:pk>/approve/": "pending",
    "orders/<int:pk>/reject/": "pending",
}

ADMIN = {
    "admin/": same(STAFF),
    "admin/login/": Rule(get=EVERYONE, post=EVERYONE, public=True),
    # Signed out already: back to the admin (and its login); signing out is a POST.
    "admin/logout/": Rule(get=frozenset({"anonymous", "nonstaff"}), post=EVERYONE,
                          get_405=STAFF, public=True),
    "admin/password_change/": same(STAFF),
    "admin/password_change/done/": Rule(get=STAFF, post_405=STAFF),
    "admin/jsi18n/": Rule(get=STAFF, post_405=STAFF),
    # Without a field to complete, and no get_absolute_url on any model: nothing for anyone.
    "admin/autocomplete/": Rule(post_405=STAFF),
    "admin/r/<path:content_type_id>/<path:object_id>/": same(NOBODY),
    "admin/(?P<url>.*)$": same(NOBODY),  # the admin's catch-all: 404
    # App indexes: for who may see a model of the app.
    "admin/auth/": same(SUPERUSER),
    "admin/axes/": same(SUPERUSER),
    "admin/audit/": same(users("auditor")),
    "admin/otp_totp/": same(SUPERUSER),
    "admin/otp_static/": same(SUPERUSER),
    "admin/django_rq/": same(OPERATORS),
    "admin/vendors/": same(users("viewer", "orderer", "operator")),
    "admin/orders/": same(users("viewer", "orderer", "approver", "custodian", "operator")),
    "admin/auth/user/<id>/password/": same(SUPERUSER),
}


def model_pages(prefix: str, *, view: frozenset, add: frozenset = NOBODY,
                change: frozenset = NOBODY, delete: frozenset = NOBODY,
                listing: frozenset = NOBODY) -> dict[str, Rule]:
    """The six routes of one registered model. ``view``: the object page and its history
    (of the fixture object, another user's where rows are scoped), and the list; ``listing``:
    the list only (of their own rows); ``change``: saving the object page; the bare object
    URL redirects any staff user to its page."""
    object_page = Rule(get=view | change, post=change)
    lister = view | change | listing
    return {
        f"admin/{prefix}/": Rule(get=lister, post=lister),
        f"admin/{prefix}/add/": same(add),
        f"admin/{prefix}/<path:object_id>/history/": same(view | change),
        f"admin/{prefix}/<path:object_id>/delete/": same(delete),
        f"admin/{prefix}/<path:object_id>/change/": object_page,
        f"admin/{prefix}/<path:object_id>/": same(STAFF),
    }


MODELS = {
    **model_pages("auth/group", view=SUPERUSER, add=SUPERUSER, change=SUPERUSER,
                  delete=SUPERUSER),
    **model_pages("auth/user", view=SUPERUSER, add=SUPERUSER, change=SUPERUSER,
                  delete=SUPERUSER),
    # django-axes' own records: superusers only (their pages save nothing, all read-only).
    **model_pages("axes/accessattempt", view=SUPERUSER, change=SUPERUSER, delete=SUPERUSER),
    **model_pages("axes/accesslog", view=SUPERUSER, change=SUPERUSER, delete=SUPERUSER),
    **model_pages("axes/accessfailurelog", view=SUPERUSER, change=SUPERUSER,
                  delete=SUPERUSER),
    # The audit trail: read-only for everyone, superusers included.
    **model_pages("audit/auditevent", view=users("auditor")),
    **model_pages("vendors/vendor", view=OPERATORS, add=SUPERUSER, change=OPERATORS,
                  delete=SUPERUSER),
    **model_pages("vendors/product", view=CATALOG, add=SUPERUSER,
                  change=SUPERUSER, delete=SUPERUSER),
    # Catalog items are made by the matching rules: read-only, for who sees products.
    **model_pages("vendors/catalogitem", view=CATALOG),
    **model_pages("vendors/balance", view=OPERATORS, add=SUPERUSER, change=SUPERUSER,
                  delete=SUPERUSER),
    # Orders are scoped as on the portal's pages and never deleted.
    **model_pages("orders/order", view=ALL_ORDERS, change=SUPERUSER, listing=VIEW_ORDER),
    **model_pages("orders/vendororder", view=OPERATORS, change=OPERATORS),
    **model_pages("orders/voucher", view=SUPERUSER),
    # Limits are set by operators for others (the fixture's is the placer's).
    **model_pages("orders/spendlimit", view=OPERATORS, add=OPERATORS, change=OPERATORS,
                  delete=OPERATORS),
    # The ledger is written by the engine only: read-only, for operators.
    **model_pages("orders/ledgerentry", view=OPERATORS),
    # Second factors: superusers only, and never their secrets (the key's page and QR code).
    **model_pages("otp_totp/totpdevice", view=SUPERUSER, add=SUPERUSER, change=SUPERUSER,
                  delete=SUPERUSER),
    **model_pages("otp_static/staticdevice", view=SUPERUSER, add=SUPERUSER,
                  change=SUPERUSER, delete=SUPERUSER),
    "admin/otp_totp/totpdevice/<int:pk>/config/": same(NOBODY),
    "admin/otp_totp/totpdevice/<int:pk>/qrcode/": same(NOBODY),
}
# The dashboard "model" has no object pages: those routes do not exist.
MODELS["admin/django_rq/dashboard/"] = same(OPERATORS)

# django-rq's views, mounted at /admin/rq/ and inside the admin: operators only.
RQ_ROUTES = {
    "^stats.json/?$": same(OPERATORS),
    "^stats.json/(?P<token>[\\w]+)?/?$": same(OPERATORS),
    "": same(OPERATORS),
    "queues/<int:queue_index>/": same(OPERATORS),
    "queues/<int:queue_index>/details/": same(OPERATORS),
    "queues/<int:queue_index>/finished/": same(OPERATORS),
    "queues/<int:queue_index>/failed/": same(OPERATORS),
    "queues/<int:queue_index>/failed/clear/": same(OPERATORS),
    "queues/<int:queue_index>/scheduled/": same(OPERATORS),
    "queues/<int:queue_index>/started/": same(OPERATORS),
    "queues/<int:queue_index>/deferred/": same(OPERATORS),
    "queues/<int:queue_index>/empty/": same(OPERATORS),
    "queues/<int:queue_index>/requeue-all/": same(OPERATORS),
    "queues/<int:queue_index>/<str:job_id>/": same(OPERATORS),
    "queues/<int:queue_index>/<str:job_id>/results/<str:result_id>/":
        Rule(get=OPERATORS, post=OPERATORS, not_found=OPERATORS),
    "queues/<int:queue_index>/<str:job_id>/delete/": same(OPERATORS),
    "queues/<int:queue_index>/<str:job_id>/requeue/": same(OPERATORS),
    "queues/<int:queue_index>/<str:job_id>/enqueue/": same(OPERATORS),
    "queues/<int:queue_index>/<str:job_id>/stop/": post_only(OPERATORS),
    "queues/confirm-action/<int:queue_index>/": same(OPERATORS),
    "queues/actions/<int:queue_index>/": same(OPERATORS),
    "workers/<int:queue_index>/": same(OPERATORS),
    "workers/<int:queue_index>/<str:key>/":
        Rule(get=OPERATORS, post=OPERATORS, not_found=OPERATORS),
    # No rq-scheduler and no cron scheduler by that name: nothing to show, never a 500.
    "schedulers/<int:scheduler_index>/":
        Rule(get=OPERATORS, post=OPERATORS, not_found=OPERATORS),
    "cron-schedulers/<int:connection_index>/<str:scheduler_name>/":
        Rule(get=OPERATORS, post=OPERATORS, not_found=OPERATORS),
    "cron-schedulers/<int:connection_index>/<str:scheduler_name>/jobs/<path:cron_job_name>/":
        Rule(get=OPERATORS, post=OPERATORS, not_found=OPERATORS),
}
RQ = {f"{mount}{route}": rule for mount in ("admin/rq/", "admin/django_rq/dashboard/")
      for route, rule in RQ_ROUTES.items()}

RULES: dict[str, Rule] = {**PORTAL, **ADMIN, **MODELS, **RQ}

# Admin actions: who runs each on the fixture object (another user's), by admin and name.
# Everyone else is refused: the action is not offered, the object is not in their list, or
# the action says no for it; nothing changes.
ACTIONS = {
    ("orders/order", "mark_reviewed"): ALL_ORDERS,
    ("orders/order", "export_codes"): SUPERUSER,
    ("orders/order", "repoll_now"): SUPERUSER,
    ("orders/vendororder", "repoll_now"): OPERATORS,
    ("orders/vendororder", "resend_confirmed_absent"): OPERATORS,
    ("orders/vendororder", "attach_supplier_order"): OPERATORS,
    ("otp_totp/totpdevice", "delete_selected"): SUPERUSER,
    ("otp_static/staticdevice", "delete_selected"): SUPERUSER,
    ("vendors/vendor", "sync_catalog"): OPERATORS,
    ("vendors/vendor", "sync_balances"): OPERATORS,
    ("vendors/product", "delete_selected"): SUPERUSER,
    # Matching offers to items by hand: operators (who manage vendors).
    ("vendors/product", "match_as_one_item"): OPERATORS,
    ("vendors/product", "split_into_own_items"): OPERATORS,
    ("vendors/product", "return_to_matching_rules"): OPERATORS,
    ("vendors/balance", "delete_selected"): SUPERUSER,
    ("vendors/vendor", "delete_selected"): SUPERUSER,
    ("auth/user", "delete_selected"): SUPERUSER,
    ("auth/group", "delete_selected"): SUPERUSER,
    ("axes/accessattempt", "delete_selected"): SUPERUSER,
    ("axes/accessattempt", "cleanup_expired_attempts"): SUPERUSER,
    ("axes/accesslog", "delete_selected"): SUPERUSER,
    ("axes/accessfailurelog", "delete_selected"): SUPERUSER,
}
