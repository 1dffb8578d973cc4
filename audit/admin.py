from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "actor", "target_type", "target_id", "order",
                    "message")
    list_filter = ("action", "target_type")
    search_fields = ("message", "target_id", "order__reference", "actor__username")
    list_select_related = ("actor", "target_type", "order")
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        """No bulk action at all on an append-only table, "delete selected" least."""
        return {}
