"""Signal receivers that hand access events from Django's auth app to ``audit.services``.

Logins, group and permission changes and a user's flags are made by Django's own code (the
login view, the auth admin, ``user.groups.add`` anywhere), so its signals are the one hook
every path goes through. The receivers only transport; what is written lives in audit.services.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import m2m_changed, post_save, pre_save

from audit import services as audit


def on_login(sender, request, user, **kwargs) -> None:
    audit.record_login(user=user, request=request)


def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    audit.record_login_failure(username=credentials.get("username", ""), request=request)


def on_membership(sender, instance, action, reverse, model, pk_set, **kwargs) -> None:
    """A user's groups or permissions, or a group's permissions, changed (either side)."""
    if action == "pre_clear":
        # The related rows are gone once cleared: note them now, record them after.
        field = _field(sender)
        if reverse:
            instance._audit_cleared = list(sender.objects.filter(
                **{field[1]: instance}).values_list(field[0], flat=True))
        else:
            instance._audit_cleared = list(sender.objects.filter(
                **{field[0]: instance}).values_list(field[1], flat=True))
        return
    if action == "post_clear":
        pks, added = getattr(instance, "_audit_cleared", []), False
    elif action in ("post_add", "post_remove"):
        pks, added = pk_set or (), action == "post_add"
    else:
        return
    if not pks:
        return
    if not reverse:
        audit.record_membership_change(holder=instance, related_model=model, pks=pks,
                                       added=added)
        return
    for holder in model.objects.filter(pk__in=pks):  # e.g. group.user_set.add(...)
        audit.record_membership_change(holder=holder, related_model=type(instance),
                                       pks=[instance.pk], added=added)


def _field(through) -> tuple[str, str]:
    """(holder column, related column) of an auth through table."""
    names = [f.name for f in through._meta.get_fields() if f.is_relation and f.many_to_one]
    return names[0], names[1]


def on_user_pre_save(sender, instance, update_fields=None, **kwargs) -> None:
    if update_fields is not None and not set(update_fields) & set(audit.USER_FLAGS):
        return  # e.g. last_login on every login
    instance._audit_flag_changes = audit.user_flag_changes(instance)


def on_user_post_save(sender, instance, created, **kwargs) -> None:
    changes = getattr(instance, "_audit_flag_changes", None)
    instance._audit_flag_changes = None
    if changes and not created:
        audit.record_user_flags(user=instance, changes=changes)


def connect() -> None:
    user = get_user_model()
    user_logged_in.connect(on_login, dispatch_uid="audit.login")
    user_login_failed.connect(on_login_failed, dispatch_uid="audit.login_failed")
    for through in (user.groups.through, user.user_permissions.through,
                    Group.permissions.through):
        m2m_changed.connect(on_membership, sender=through,
                            dispatch_uid=f"audit.m2m.{through._meta.label}")
    pre_save.connect(on_user_pre_save, sender=user, dispatch_uid="audit.user_pre")
    post_save.connect(on_user_post_save, sender=user, dispatch_uid="audit.user_post")
