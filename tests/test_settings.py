"""The settings start nothing: with DATABASE_URL unset they refuse to load (naming the ways to start Docent) instead
of starting the embedded PostgreSQL, and importing config's own modules starts no server either."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.embedded_services import postgres_running

BASE_DIR = Path(__file__).resolve().parent.parent

READ_SETTINGS = """
import sys
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
try:
    settings.DATABASES
except ImproperlyConfigured as exc:
    print(exc)
    sys.exit(3)
"""


def _without_database_url(var_dir: Path, settings_module: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(
        DOCENT_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE=settings_module, DJANGO_SECRET_KEY="test-only-secret"
    )
    return env


SETTINGS_MODULES = ["config.settings.local", "config.settings.test", "config.settings.production"]


@pytest.mark.parametrize("settings_module", SETTINGS_MODULES)
def test_the_settings_refuse_to_load_without_database_url_and_start_no_postgres(tmp_path, settings_module):
    result = subprocess.run(
        [sys.executable, "-c", READ_SETTINGS],
        cwd=BASE_DIR,
        env=_without_database_url(tmp_path, settings_module),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, result.stdout + result.stderr[-3000:]
    for named in ("DATABASE_URL", "make run", "manage.py"):
        assert named in result.stdout
    assert not (tmp_path / "pgdata").exists()
    assert not postgres_running(tmp_path / "pgdata")


def test_importing_config_starts_nothing(tmp_path):
    """The Celery app (config/__init__), the launcher, the web server's command and the embedded services' module
    import without DATABASE_URL and without starting a server."""
    script = "import config, config.launcher, config.web, config.dev_servers, config.embedded_services; print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=_without_database_url(tmp_path, "config.settings.local"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"
    assert not (tmp_path / "pgdata").exists()
