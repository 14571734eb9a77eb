"""The interface's message catalogues (locale/): brought up to date with the code, and compiled.

    python -m config.i18n_catalogues update    # makemessages: new strings into fr and zh_Hans, both domains
    python -m config.i18n_catalogues compile   # compilemessages: the .mo files Docent reads (committed)

Run from the repository root (`make messages` runs both). The tests run `update` on a copy of the tree and
compare, so a string marked for translation but missing from the catalogues fails them (tests/test_i18n.py).
Needs Debian's gettext.
"""

from __future__ import annotations

import os
import sys

LANGUAGES = ["fr", "zh_Hans"]  # English is the source language: its text is the msgids
# Not Docent's interface: dependencies, generated and vendored files, evaluation data, tests.
IGNORE = [".venv", "node_modules", "var", "eval", "docker", "tests", "locale", "static/vendor", "build"]
OPTIONS = {"locale": LANGUAGES, "ignore_patterns": IGNORE, "add_location": "file", "no_wrap": True, "no_obsolete": True}
DOMAINS = ["django", "djangojs"]  # Python and templates; static/ JavaScript (chat page and widget)


def update() -> None:
    from django.core.management import call_command

    for domain in DOMAINS:
        call_command("makemessages", domain=domain, verbosity=0, **OPTIONS)


def compile_catalogues() -> None:
    from django.core.management import call_command

    call_command("compilemessages", locale=LANGUAGES, ignore_patterns=IGNORE, verbosity=0)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in {"update", "compile"}:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    # makemessages and compilemessages open no database connection: a placeholder URL lets the settings load
    # without starting the embedded PostgreSQL.
    os.environ.setdefault("DATABASE_URL", "postgresql:///docent-catalogues-open-no-database")
    import django

    django.setup()
    update() if argv[0] == "update" else compile_catalogues()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
