from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(extra_context={"sso": settings.DOCENT_OIDC_ENABLED}),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("kb/", include("kb.urls")),
    path("widget/", include("chat.widget.urls")),
    path("", include("chat.urls")),
]
if settings.DOCENT_OIDC_ENABLED:  # single sign-on (config/sso.py): /oidc/authenticate/, /oidc/callback/
    urlpatterns.insert(3, path("oidc/", include("mozilla_django_oidc.urls")))
