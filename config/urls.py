from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts.views import language_set
from config.health import healthz
from config.i18n import javascript_catalog

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("i18n/setlang/", language_set, name="set_language"),
    path("jsi18n/<str:language>/", javascript_catalog, name="javascript-catalog"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(extra_context={"sso": settings.DOCENT_OIDC_ENABLED}),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("kb/", include("kb.urls")),
    path("kb/", include("insights.urls")),
    path("widget/", include("chat.widget.urls")),
    path("", include("api.urls")),
    path("", include("chat.urls")),
]
if settings.DOCENT_OIDC_ENABLED:  # single sign-on (config/sso.py): /oidc/authenticate/, /oidc/callback/
    urlpatterns.insert(3, path("oidc/", include("mozilla_django_oidc.urls")))
