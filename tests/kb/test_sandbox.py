"""The parser child's pipe: answers are read whenever the parent gets to them."""

from __future__ import annotations

import select
import time

from kb.ingest import sandbox


def test_an_answer_written_before_the_parent_reads_the_ready_frame_is_not_lost(tmp_path, settings):
    # Under load the parent may come back only after the child has started *and* answered: both frames then wait in
    # the pipe together. A buffered read of the first took the second with it, and select() on the pipe waited for
    # bytes already read until the parse "timed out".
    settings.DOCENT_PARSE_TIMEOUT_MIN_S = 5
    settings.DOCENT_PARSE_TIMEOUT_S_PER_MB = 0
    path = tmp_path / "payroll.txt"
    path.write_text("Payroll closes on the 25th.")
    sandbox.cancel()
    sandbox.submit(path, "payroll.txt")
    parser = sandbox._parser()
    assert parser.process is not None and parser.process.stdout is not None
    ready, _, _ = select.select([parser.process.stdout.fileno()], [], [], 120)
    assert ready, "the parser child did not start"
    time.sleep(2)  # the child answers a 27-byte text in well under a millisecond once it is ready
    started = time.monotonic()
    parsed = sandbox.result()
    assert time.monotonic() - started < 1
    assert "Payroll closes on the 25th." in " ".join(block.text for block in parsed.blocks)
    sandbox.parse_file(path, "payroll.txt")  # and the next parse in the same child
