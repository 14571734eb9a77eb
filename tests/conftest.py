"""Fixtures on the real stack: `make test` has started a throwaway Postgres and Redis (config.launcher)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from kb.models import Document, KnowledgeBase
from tests.ingested import IngestedCopies

BASE_DIR = Path(__file__).resolve().parent.parent
DEMO_DIR = BASE_DIR / "kb" / "demo"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker) -> None:
    """Use the throwaway database as it is (the worker process connects to the same one)."""
    with django_db_blocker.unblock():
        call_command("migrate", verbosity=0)


@pytest.fixture(scope="session")
def celery_worker() -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process on the test database and Redis."""
    from config.celery import app
    from config.launcher import worker_command

    log = open(Path(os.environ.get("DOCENT_VAR_DIR", "/tmp")) / "worker.log", "wb")
    process = subprocess.Popen(
        worker_command(f"test-{os.getpid()}@%h"),
        cwd=BASE_DIR,
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not app.control.ping(timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the Celery worker did not start; see {log.name}")
    yield process
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def wait_for_documents(ids: list[int], timeout: float = 180) -> list[Document]:
    deadline = time.monotonic() + timeout
    while True:
        documents = list(Document.objects.filter(pk__in=ids).order_by("pk"))
        if all(d.status in (Document.Status.READY, Document.Status.FAILED) for d in documents):
            return documents
        if time.monotonic() > deadline:
            raise AssertionError(
                f"documents still processing after {timeout} s: {[(d.pk, d.status) for d in documents]}"
            )
        time.sleep(0.3)


READERS = "readers"  # the group the `user` fixture is in; the shared fixture bases give it the reader role


def share(knowledge_base: KnowledgeBase, who: Any, role: str = "reader") -> None:
    """Give a user or a group (`who`) `role` in the base, as a manager would."""
    from django.contrib.auth.models import Group

    from kb.services import membership_set

    if isinstance(who, Group):
        membership_set(knowledge_base=knowledge_base, role=role, actor=None, group=who)
    else:
        membership_set(knowledge_base=knowledge_base, role=role, actor=None, user=who)


def readers_group() -> Any:
    from django.contrib.auth.models import Group

    return Group.objects.get_or_create(name=READERS)[0]


@pytest.fixture
def user(django_user_model):
    """An ordinary user in the group `readers`, which the fixture bases (manual_kb, trilingual_kb) are shared with."""
    created = django_user_model.objects.create_user(username="reader", password="reader-password-1")
    created.groups.add(readers_group())
    return created


MANUAL_PATHS = (BASE_DIR / "kb" / "demo_source" / "lumen-k3-manual.en.md", FIXTURES / "travel-policy.en.txt")
TRILINGUAL_PATHS = (
    BASE_DIR / "kb" / "demo_source" / "lumen-k3-manual.en.md",
    DEMO_DIR / "lumen-k3-manual.fr.html",
    DEMO_DIR / "lumen-k3-manual.zh.html",
    FIXTURES / "travel-policy.en.txt",
)


@pytest.fixture(scope="session")
def ingested_copies(django_db_setup, django_db_blocker) -> Iterator[IngestedCopies]:
    """The fixture bases' ingestions, kept for the session so that each test gets a fresh copy (tests/ingested.py)."""
    copies = IngestedCopies()
    with django_db_blocker.unblock():
        copies.drop()  # none kept yet: a database used before starts clean
    yield copies
    with django_db_blocker.unblock():
        copies.drop()


@pytest.fixture
def manual_kb(transactional_db, ingested_copies) -> KnowledgeBase:
    """A knowledge base with the kettle manual (Markdown) and an unrelated document, ingested by the pipeline.

    The first test to ask for it ingests the files in-process; later tests get a copy of that ingestion's rows and
    files under new ids (tests/ingested.py), a base of their own that they may change."""
    knowledge_base = ingested_copies.base(slug="manuals", name="Manuals", paths=MANUAL_PATHS)
    share(knowledge_base, readers_group())
    return knowledge_base


@pytest.fixture
def trilingual_kb(transactional_db, ingested_copies) -> KnowledgeBase:
    """The kettle manual in English (Markdown), French and Chinese (HTML), plus an unrelated policy; ingested
    once per session by the pipeline and copied for each test, as `manual_kb`."""
    knowledge_base = ingested_copies.base(slug="trilingual", name="Trilingual", paths=TRILINGUAL_PATHS)
    share(knowledge_base, readers_group())
    return knowledge_base
