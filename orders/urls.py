from django.urls import path

from orders import basket_views, bulk_views, report_views, views, webhooks

app_name = "orders"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("account/alerts/", views.alert_settings, name="alert_settings"),
    path("catalog/", views.catalog, name="catalog"),
    path("catalog/<int:pk>/", views.product_detail, name="product_detail"),
    path("catalog/items/<int:pk>/", views.item_detail, name="item_detail"),
    path("basket/", basket_views.basket_page, name="basket"),
    path("basket/picker/", basket_views.basket_picker, name="basket_picker"),
    path("basket/add/", basket_views.basket_add, name="basket_add"),
    path("basket/lines/<int:pk>/", basket_views.basket_line, name="basket_line"),
    path("basket/place/", basket_views.basket_place, name="basket_place"),
    path("orders/", views.order_list, name="order_list"),
    path("orders/search/", views.order_search, name="order_search"),
    path("orders/new/", views.order_new, name="order_new"),
    path("orders/new/quote/", views.order_quote, name="order_quote"),
    # Bulk orders from a file
    path("orders/bulk/", bulk_views.bulk_upload, name="bulk_upload"),
    path("orders/bulk/template.csv", bulk_views.bulk_template_csv, name="bulk_template_csv"),
    path("orders/bulk/template.xlsx", bulk_views.bulk_template_xlsx,
         name="bulk_template_xlsx"),
    path("orders/bulk/<int:pk>/", bulk_views.bulk_preview, name="bulk_preview"),
    path("orders/bulk/<int:pk>/place/", bulk_views.bulk_place, name="bulk_place"),
    path("orders/export.csv", views.export_list, name="export_list"),
    path("orders/<int:pk>/", views.order_detail, name="order_detail"),
    path("orders/<int:pk>/live/", views.order_live, name="order_live"),
    path("orders/<int:pk>/export.csv", views.export_order, name="export_order"),
    path("orders/<int:pk>/repoll/", views.order_repoll, name="order_repoll"),
    path("orders/<int:pk>/cancel/", views.order_cancel, name="order_cancel"),
    path("orders/<int:pk>/top-up/", views.order_top_up, name="order_top_up"),
    path("orders/<int:pk>/reorder/", basket_views.order_reorder, name="order_reorder"),
    path("orders/<int:pk>/approve/", views.order_approve, name="order_approve"),
    path("orders/<int:pk>/reject/", views.order_reject, name="order_reject"),
    path("reports/", report_views.report_page, name="reports"),
    path("reports/spend.csv", report_views.spend_csv, name="report_spend_csv"),
    path("reports/brands.csv", report_views.brands_csv, name="report_brands_csv"),
    path("reports/scorecard.csv", report_views.scorecard_csv, name="report_scorecard_csv"),
    path("vendor-orders/<int:pk>/resolve/", views.vendor_order_resolve,
         name="vendor_order_resolve"),
    path("vouchers/<uuid:pk>/reveal/", views.voucher_reveal, name="voucher_reveal"),
    path("webhooks/starship/<int:vendor_id>/", webhooks.starship, name="starship_webhook"),
]
