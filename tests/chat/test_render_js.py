"""Runs the browser scripts' own tests under Node's built-in test runner: the renderer (tests/js/render.test.mjs)
and the chat protocol client shared by the chat page and the widget (tests/js/chat_client.test.mjs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

# No database and no Django fixtures: this only shells out to Node.
pytestmark: list[pytest.MarkDecorator] = []

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_TESTS = ["tests/js/render.test.mjs", "tests/js/chat_client.test.mjs"]


def test_render_js() -> None:
    node = shutil.which("node")
    # Fail rather than skip: these are the renderer's XSS checks, and `make setup` needs Node anyway.
    assert node, "node is not on PATH; it is needed to test static/docent/render.js and chat_client.js"
    result = subprocess.run(
        [node, "--test", *JS_TESTS], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"node --test failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
