from django.contrib import admin
from django.urls import include, path

from portal import views

admin.site.site_header = "Voucher portal"
admin.site.site_title = "Voucher portal"
admin.site.index_title = "Operator console"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("", include("orders.urls")),
    # "home" names the root, which the dashboard serves.
    path("", views.home, name="home"),
]
