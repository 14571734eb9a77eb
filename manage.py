#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys

# Docent's own commands need the schema; on the embedded Postgres (started on demand) they bring it up to date
# first, so `ingest`, `ask` and the rest work right after `make setup`.
PRODUCT_COMMANDS = {"ingest", "ask", "eval_qa", "eval_retrieval", "bench", "reembed", "widget_key"}


def migrate_embedded_database() -> None:
    import django
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    django.setup()
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        print("[docent] bringing the embedded database's schema up to date (migrate)", file=sys.stderr)
        call_command("migrate", verbosity=0)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    from django.core.management import execute_from_command_line

    if not os.environ.get("DATABASE_URL"):
        # The embedded Postgres, started on demand; stopped again when the command ends if it started it and
        # nothing else is connected (config.embedded_services.embedded_postgres_for_command).
        from config.embedded_services import embedded_postgres_for_command

        os.environ["DATABASE_URL"] = embedded_postgres_for_command()
        if len(sys.argv) > 1 and sys.argv[1] in PRODUCT_COMMANDS:
            migrate_embedded_database()
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
