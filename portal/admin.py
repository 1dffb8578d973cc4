from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard

from portal.access import can_use_queue_dashboard, guarded_patterns


class QueueDashboardAdmin(QueueAdmin):
    """django-rq's dashboard in the admin, for operators only: its own pages behind the
    same check as /admin/rq/, and none of a model's add, change, history or delete pages
    (the dashboard has no rows)."""

    def has_module_permission(self, request) -> bool:
        return can_use_queue_dashboard(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return can_use_queue_dashboard(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        info = f"{self.opts.app_label}_{self.opts.model_name}_"
        return guarded_patterns([
            url for url in super().get_urls()
            if url.name and (not url.name.startswith(info) or url.name == f"{info}changelist")
        ])


admin.site.unregister(Dashboard)
admin.site.register(Dashboard, QueueDashboardAdmin)


class PortalAccessAttemptAdmin(AccessAttemptAdmin):
    """django-axes' admin, whose clean-up action reads an attribute only a login request
    has (without it, a 500)."""

    @admin.action(description="Clean up expired attempts")
    def cleanup_expired_attempts(self, request, queryset) -> None:
        request.axes_attempt_time = None  # "now", for axes.attempts.get_cool_off_threshold
        super().cleanup_expired_attempts(request, queryset)


admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, PortalAccessAttemptAdmin)
