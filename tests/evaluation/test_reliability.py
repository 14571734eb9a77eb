"""The fast part of `bench reliability`: killed workers lose and duplicate nothing, and every hostile file is
done or failed within its time and memory allowance, with the product still answering afterwards."""

from __future__ import annotations

import pytest

from evaluation.bench_reliability import kill_corpus, run_hostile, run_kills, still_answering

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_hostile_file_is_done_or_failed_within_its_allowance_and_the_product_still_answers(tmp_path):
    rows = run_hostile(tmp_path / "hostile", log=lambda line: None)
    assert len(rows) >= 15
    for row in rows:
        assert row["within"], row
    outcomes = {row["file"]: row["outcome"] for row in rows}
    assert outcomes["unclosed-brackets.md"].startswith("done")
    assert outcomes["deep-divs.html"].startswith("done")
    assert "zip bomb" in outcomes["zip-bomb.docx"]
    assert outcomes["billion-laughs.docx"].startswith("failed")
    assert "encoding could not be recognised" in outcomes["garbage-high-bytes.txt"]
    assert outcomes["control-characters.txt"].startswith("failed")
    assert still_answering()


def test_worker_sigkills_during_ingestion_lose_and_duplicate_nothing(tmp_path):
    """Two kills over three documents: the pool process, then the whole worker (restarted)."""
    counts = run_kills(kill_corpus(tmp_path / "kills", 3), 2, log=lambda line: None, timeout=600)
    assert counts["kills"] == 2
    assert (counts["lost"], counts["duplicates"], counts["missing"]) == (0, 0, 0), counts
