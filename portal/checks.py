"""The voucher keys are checked before anything runs: ``manage.py check`` reports a malformed
``VOUCHER_KEYS`` or ``VOUCHER_INDEX_KEY`` as a system check error, and every other process
(web, workers, the scheduler, other commands) refuses to start with one line naming the
variable. A worker that could not store codes must never buy them. Messages never quote a key.
"""

import sys

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from common.crypto import CryptoError, parse_index_key, parse_keys


def key_problems(voucher_keys: str, index_key: str) -> list[str]:
    """What is wrong with the two settings, each message naming its variable."""
    problems = []
    try:
        parse_keys(voucher_keys)
    except CryptoError as exc:
        problems.append(_named(str(exc), "VOUCHER_KEYS"))
    try:
        parse_index_key(index_key)
    except CryptoError as exc:
        problems.append(str(exc))
    return problems


def _named(message: str, name: str) -> str:
    return message if name in message else f"{name}: {message}"


@checks.register(checks.Tags.security)
def check_voucher_keys(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [
        checks.Error(problem, hint="See the README's configuration table.",
                     id=f"portal.E00{i}")
        for i, problem in enumerate(
            key_problems(settings.VOUCHER_KEYS, settings.VOUCHER_INDEX_KEY), start=1
        )
    ]


def require_valid_keys() -> None:
    """Refuse to start on malformed keys: one line on stderr, then ImproperlyConfigured."""
    problems = key_problems(settings.VOUCHER_KEYS, settings.VOUCHER_INDEX_KEY)
    if problems:
        line = f"{'; '.join(problems)}; refusing to start."
        sys.stderr.write(line + "\n")
        raise ImproperlyConfigured(line)


def running_check_command(argv: list[str] | None = None) -> bool:
    """``manage.py check`` reports the problems as system check errors instead."""
    argv = sys.argv if argv is None else argv
    return len(argv) > 1 and argv[1] == "check" and argv[0].endswith(
        ("manage.py", "django-admin")
    )
