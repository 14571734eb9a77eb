"""/kb/SLUG/analytics/ and /kb/SLUG/gaps/ (included under kb/ by config.urls)."""

from django.urls import path

from insights import views_analytics, views_gaps

app_name = "insights"

urlpatterns = [
    path("<slug:slug>/analytics/", views_analytics.analytics, name="analytics"),
    path("<slug:slug>/analytics.csv", views_analytics.analytics_csv, name="analytics_csv"),
    path("<slug:slug>/gaps/", views_gaps.gap_report, name="gaps"),
    path("<slug:slug>/gaps/export.csv", views_gaps.gap_report_csv, name="gaps_csv"),
    path("<slug:slug>/gaps/resolve/", views_gaps.gap_resolve, name="gap_resolve"),
    path("<slug:slug>/gaps/resolved/<int:resolution_id>/reopen/", views_gaps.gap_reopen, name="gap_reopen"),
    path("<slug:slug>/gaps/resolved/<int:resolution_id>/recheck/", views_gaps.gap_recheck, name="gap_recheck"),
    path("<slug:slug>/gaps/cases/", views_gaps.saved_case_create, name="saved_case_create"),
    path("<slug:slug>/gaps/cases/<int:case_id>/delete/", views_gaps.saved_case_delete, name="saved_case_delete"),
]
