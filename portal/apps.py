from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from portal import (
            checks,  # registers the key check
            idle,
            twofactor,
        )

        if not checks.running_check_command():
            checks.require_valid_keys()

        user_logged_in.connect(twofactor.on_login, dispatch_uid="twofactor.on_login")
        user_logged_in.connect(idle.on_login, dispatch_uid="idle.on_login")
