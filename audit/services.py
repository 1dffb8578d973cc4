"""Writing audit events. Callers run inside the transaction of the change they record.

Besides ``record``, the writers of access events: logins (success and failure), group and
permission changes, and the staff, superuser and active flags of a user. Django's auth app
and admin make those changes, so ``audit.receivers`` hands them here from its signals; the
person who acted comes from the request (``audit.actor``).
"""

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import models

from audit.actor import current_actor
from audit.models import AuditEvent

Action = AuditEvent.Action
# What an auditor reads on the audit page, not order activity for the dashboard.
ACCESS_ACTIONS = (
    Action.LOGGED_IN, Action.LOGIN_FAILED, Action.GROUPS_CHANGED, Action.PERMISSIONS_CHANGED,
    Action.USER_FLAGS_CHANGED, Action.AUDIT_EXPORTED,
)
USER_FLAGS = ("is_active", "is_staff", "is_superuser")


def record(
    *,
    action: str,
    target: models.Model | None = None,
    actor=None,
    order=None,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        action=action,
        actor=actor if actor is not None and actor.is_authenticated else None,
        target_type=ContentType.objects.get_for_model(target) if target is not None else None,
        target_id=str(target.pk) if target is not None else "",
        order=order,
        message=message[:500],
        data=data or {},
    )


def _client_ip(request) -> str:
    return (request.META.get("REMOTE_ADDR", "") if request is not None else "")[:64]


# Logins


def record_login(*, user, request=None) -> AuditEvent:
    return record(action=Action.LOGGED_IN, target=user, actor=user,
                  message=f"{user.get_username()} logged in",
                  data={"ip": _client_ip(request)})


def record_login_failure(*, username: str, request=None) -> AuditEvent:
    """A refused login names the username tried, never the password."""
    username = str(username or "")[:150]
    return record(action=Action.LOGIN_FAILED, message=f"Failed login as {username!r}",
                  data={"username": username, "ip": _client_ip(request)})


# Roles and permissions


def _names(model, pks: Iterable[int]) -> list[str]:
    if model is Permission:
        return sorted(
            f"{p.content_type.app_label}.{p.codename}"
            for p in Permission.objects.filter(pk__in=pks).select_related("content_type")
        )
    if model is Group:
        return sorted(Group.objects.filter(pk__in=pks).values_list("name", flat=True))
    return sorted(str(u) for u in model.objects.filter(pk__in=pks))


def record_membership_change(*, holder: models.Model, related_model, pks: Iterable[int],
                             added: bool) -> AuditEvent:
    """``holder`` (a user or a group) gained or lost the groups or permissions ``pks``."""
    names = _names(related_model, pks)
    what = "groups" if related_model is Group else "permissions"
    action = Action.GROUPS_CHANGED if related_model is Group else Action.PERMISSIONS_CHANGED
    kind = "group" if isinstance(holder, Group) else "user"
    verb = "added" if added else "removed"
    return record(
        action=action, target=holder, actor=current_actor(),
        message=f"{what.capitalize()} of {kind} {holder} {verb}: {', '.join(names)}",
        data={verb: names},
    )


def user_flag_changes(user) -> dict[str, list[bool]]:
    """{flag: [before, after]} for each of USER_FLAGS that differs from the stored row."""
    if user.pk is None:
        return {}
    before = get_user_model().objects.filter(pk=user.pk).values(*USER_FLAGS).first()
    if before is None:
        return {}
    return {flag: [before[flag], getattr(user, flag)] for flag in USER_FLAGS
            if before[flag] != getattr(user, flag)}


def record_user_flags(*, user, changes: dict[str, list[bool]]) -> AuditEvent:
    said = ", ".join(f"{flag} {'on' if after else 'off'}" for flag, (_, after) in changes.items())
    return record(action=Action.USER_FLAGS_CHANGED, target=user, actor=current_actor(),
                  message=f"User {user}: {said}", data=changes)
