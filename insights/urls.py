"""/kb/SLUG/analytics/ and /kb/SLUG/gaps/ (included under kb/ by config.urls)."""

from django.urls import path

from insights import views_analytics

app_name = "insights"

urlpatterns = [
    path("<slug:slug>/analytics/", views_analytics.analytics, name="analytics"),
    path("<slug:slug>/analytics.csv", views_analytics.analytics_csv, name="analytics_csv"),
]
