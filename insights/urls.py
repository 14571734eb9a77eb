"""/kb/SLUG/analytics/ and /kb/SLUG/gaps/ (included under kb/ by config.urls)."""

from django.urls import path  # noqa: F401 - the pages add their routes here

app_name = "insights"

urlpatterns: list = []  # type: ignore[type-arg]
