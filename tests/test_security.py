"""Security headers on every page, and `manage.py check --deploy` with the production settings.

The walk takes every HTTP route of the URL conf (tests/test_authorization.py reads them), fills its parameters
with objects of the authorization matrix's world, and GETs it as a superuser over HTTPS with HSTS configured as
production configures it under DOCENT_HTTPS=1: whatever the answer (a page, a redirect, a 404, a 405 for a
POST-only view), it carries the headers.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.test import Client, override_settings

from config.security import content_security_policy
from kb.models import KnowledgeBase
from tests.test_authorization import MISSING, SHOP, World, _resolution, _saved_case, build_world, http_routes

BASE_DIR = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db(transaction=True)


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0].lower()] = words[1:]
    return parsed


def _admin_object(pattern: str) -> Any:
    """The first object of the model an admin route is about (its pk), or MISSING."""
    match = re.match(r"admin/(\w+)/(\w+)/", pattern)
    if match:
        for model in admin.site._registry:
            if (model._meta.app_label, model._meta.model_name) == match.groups():
                first = model._default_manager.order_by("pk").first()
                return first.pk if first else MISSING
    return MISSING


def route_path(pattern: str, world: World, superuser: Any) -> str:
    """The pattern with every parameter given a value from the world."""
    if pattern.startswith("admin/^(?P<app_label>"):
        return "/admin/kb/"
    if pattern == "admin/(?P<url>.*)$":
        return "/admin/no-such-page/"
    values = {
        "slug": world.kbs["A"].slug,
        "document_id": world.docs["A-public"].pk,
        "chunk_id": world.chunks["A-public"].pk,
        "membership_id": world.memberships["A"],
        "conversation_id": world.conversations["owner-A"].pk,
        "message_id": world.answers["owner-A"].pk,
        "key_id": world.api_keys["owner"][0],
        "key": world.keys["A"].key,
        "model_id": f"kb:{world.kbs['A'].slug}",
        "language": "fr",
        "pk": world.kbs["A"].pk,
        "id": superuser.pk,
        "content_type_id": ContentType.objects.get_for_model(KnowledgeBase).pk,
    }
    # the knowledge-gap report's resolved group and saved evaluation case, made (when a route needs one) as the
    # access matrix makes them
    made = {"resolution_id": _resolution("A"), "case_id": _saved_case("A")}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "object_id":
            if pattern.startswith("admin/r/"):
                return str(world.kbs["A"].pk)
            return str(_admin_object(pattern))
        if name in made:
            return str(made[name](world))
        return str(values[name])

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", value, pattern)


@override_settings(SECURE_HSTS_SECONDS=31_536_000, SECURE_HSTS_INCLUDE_SUBDOMAINS=True)
def test_every_page_sends_the_security_headers(django_user_model):
    world = build_world(django_user_model)
    superuser = django_user_model.objects.create_superuser("root", password="root-password-1")
    client = Client()
    client.force_login(superuser)
    pages = 0
    for route in http_routes():
        path = route_path(route.pattern, world, superuser)
        headers = {"Sec-Fetch-Dest": "iframe", "Referer": SHOP + "/"} if route.name == "widget:frame" else {}
        response = client.get(path, secure=True, headers=headers)
        where = f"{route.name} GET {path}: {response.status_code}"
        assert response.status_code < 500 or route.name == "healthz", where  # 503: no worker in this test
        pages += response.status_code == 200
        policy = directives(response.get("Content-Security-Policy", ""))
        assert policy, f"{where}: no Content-Security-Policy"
        scripts = policy.get("script-src", policy.get("default-src"))
        if "sandbox" in policy:  # a download: no script runs at all
            assert "allow-scripts" not in policy["sandbox"], where
        else:
            assert scripts, f"{where}: the policy leaves scripts unrestricted"
            assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, where
        if route.name == "widget:frame":
            assert response.status_code == 200, where
            assert policy["frame-ancestors"] == [SHOP], where  # the key's allowed origins, nobody else
            assert "X-Frame-Options" not in response, where
        else:
            assert policy.get("frame-ancestors") == ["'none'"], where
            assert response.get("X-Frame-Options") == "DENY", where
        assert response.get("X-Content-Type-Options") == "nosniff", where
        assert response.get("Referrer-Policy") in ("same-origin", "no-referrer"), where
        assert response.get("Strict-Transport-Security") == "max-age=31536000; includeSubDomains", where
    assert pages >= 40, f"only {pages} routes answered 200: the walk is not reaching the pages"
    # over plain HTTP no HSTS (browsers ignore it there, and it would say nothing true)
    assert "Strict-Transport-Security" not in client.get("/", secure=False)


@override_settings(ALLOWED_HOSTS=["docent.example"])
def test_the_policy_names_the_pages_websocket_and_allows_no_inline_code(rf):
    policy = directives(content_security_policy(rf.get("/", secure=True, HTTP_HOST="docent.example")))
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert "wss://docent.example" in policy["connect-src"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]


def _check_deploy(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in os.environ.items() if name != "DOCENT_HTTPS"}
    environment |= {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_check_deploy_reports_nothing_with_production_settings_behind_tls():
    result = _check_deploy(DOCENT_HTTPS="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout


def test_without_tls_check_deploy_names_only_what_needs_tls():
    """Served over plain HTTP (the image's port 8000 without a TLS proxy), cookies cannot be HTTPS-only and there
    is no HTTPS to redirect to or to pin: those four warnings, and no other."""
    result = _check_deploy()
    assert result.returncode != 0
    found = set(re.findall(r"\(security\.(W\d+)\)", result.stdout + result.stderr))
    assert found == {"W004", "W008", "W012", "W016"}, result.stdout + result.stderr


def test_production_static_files_fingerprint_the_scripts_module_imports(tmp_path):
    """The chat page's and the widget's scripts import the shared websocket client as an ES module: collected for
    production, each fingerprinted script imports the fingerprinted module (cached as long as they are)."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DOCENT_STATIC_ROOT": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    client = manifest["docent/chat_client.js"].rsplit("/", 1)[-1]
    assert client != "chat_client.js"
    assert f'from "./{client}"' in (tmp_path / manifest["docent/chat.js"]).read_text()
    assert f'from "../docent/{client}"' in (tmp_path / manifest["widget/frame.js"]).read_text()
