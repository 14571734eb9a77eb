"""The Content-Security-Policy every response carries unless its view set its own (the widget's frame, which
names the sites that may frame it, and its passage viewer).

Django 5.2 has no CSP of its own (it arrives in 6.0) and django-csp is not installed: this is the one header
Django's SecurityMiddleware does not send. Referrer-Policy, X-Content-Type-Options, Cross-Origin-Opener-Policy
and HSTS come from SecurityMiddleware (settings SECURE_*), X-Frame-Options from XFrameOptionsMiddleware.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

HEADER = "Content-Security-Policy"


def content_security_policy(request: HttpRequest) -> str:
    """The policy of Docent's own pages: scripts, styles, fonts and frames from this origin only (no inline
    script or style, no eval: every script is a static file and data travels in json_script islands, which
    browsers do not execute), the page's websocket, and no framing by anyone (`frame-ancestors 'none'`).

    `connect-src` names the websocket explicitly: CSP 3 lets 'self' match ws(s):// of the same host, older
    browsers do not. `form-action` adds the single sign-on provider, which the sign-in page's form redirects to.
    """
    connect = ["'self'"]
    try:
        connect.append(("wss://" if request.is_secure() else "ws://") + request.get_host())
    except DisallowedHost:  # the 400 answering a bad Host header gets the policy without it
        pass
    form_action = ["'self'"]
    if settings.DOCENT_OIDC_ENABLED and settings.OIDC_OP_AUTHORIZATION_ENDPOINT:
        provider = urlsplit(settings.OIDC_OP_AUTHORIZATION_ENDPOINT)
        form_action.append(f"{provider.scheme}://{provider.netloc}")
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": connect,
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": form_action,
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Adds `content_security_policy(request)` to every response that has no Content-Security-Policy yet.

    Sync and async (MiddlewareMixin): the API's async views are not moved onto a thread by it."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if HEADER not in response:
            response[HEADER] = content_security_policy(request)
        return response
