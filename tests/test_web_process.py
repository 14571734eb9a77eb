"""The web process holds the chat model: nothing it runs for a question may load torch, whose OpenMP threads
(the same libgomp as llama.cpp's) made the model decode at 0.5-0.7x bare llama.cpp's pace there."""

import subprocess
import sys

from tests.conftest import BASE_DIR

SCRIPT = """
import sys
import config.asgi
from django.urls import get_resolver
get_resolver().url_patterns
from kb import embedder, encoders
for name in (encoders.E5, encoders.USE, encoders.MINILM):
    embedder.embed_query("How do I descale the kettle?", name)
from chat.attribution import attribute
attribute("Hold the buttons for ten seconds to reset it.", {1: "Hold TEMP and POWER for 10 seconds to reset it."})
from kb.refusal import zipf
zipf("warm", "fr")
from kb.language import search_text
search_text("预热", "zh")
print("torch" in sys.modules)
"""


def test_questions_load_no_torch_in_the_web_process():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=BASE_DIR, capture_output=True, text=True, timeout=300, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr[-2000:]
