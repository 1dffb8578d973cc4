from django.contrib import admin
from django.urls import include, path
from django_rq.urls import urlpatterns as rq_urlpatterns

from portal import audit_views, views
from portal.access import guarded_patterns

admin.site.site_header = "Voucher portal"
admin.site.site_title = "Voucher portal"
admin.site.index_title = "Operator console"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("account/two-factor/", include("portal.twofactor_views")),
    path("audit/", audit_views.audit_list, name="audit_list"),
    path("audit/export.csv", audit_views.audit_csv, name="audit_export"),
    path("admin/rq/", include((guarded_patterns(rq_urlpatterns), "django_rq"))),
    path("admin/", admin.site.urls),
    path("", include("orders.urls")),
    # "home" names the root, which the dashboard serves.
    path("", views.home, name="home"),
]
