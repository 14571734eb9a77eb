"""The embedder exported to ONNX, run by onnxruntime: in fp32 for questions, optionally int8 for documents.

fp32 gives the model's own vectors (measured: largest difference 1.5e-7) and embeds one short question
in ~6-8 ms here against ~20 ms through sentence-transformers and torch, whose per-call overhead
dominates a single short text; for batches of documents torch stays faster (17.9 against 13.1 chunks/s),
so documents keep the torch model unless `DOCENT_EMBED_BACKEND=onnx-int8`.

sentence-transformers documents its ONNX int8 backend at several times the speed of torch fp32 on CPU;
its own export path needs `optimum`, which pins an older transformers than the one installed here. So
the export is done directly: the transformer with its pooling and normalisation, traced by
`torch.onnx.export`, then weights quantized per channel by `onnxruntime.quantization.quantize_dynamic`
(per-tensor quantization moved vectors too far: mean cosine to fp32 0.94, per channel 0.99). It runs
once, locally, at set-up (`python -m kb.embed_onnx`, called by `make setup`), from the configured
model's files — nothing comes from a hub. Chosen with `DOCENT_EMBED_BACKEND=onnx-int8`; the choice was
made on `eval_qa` (README, "Embedding backend").
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from kb.encoder_base import MINILM, NAMED, minilm_path

META = "docent-onnx.json"
MODEL_FILE = "model.int8.onnx"
FP32_FILE = "model.fp32.onnx"


def export_dir(source: str, name: str, precision: str = "int8") -> Path:
    # Derived from installed model files, so it lives with the installed packages (like the Q4_0 chat model).
    return Path(sys.prefix) / "share" / "docent" / "embedders" / f"{name}-onnx-{precision}"


def export(source: str, target: Path, *, quantize: bool = True) -> float:
    """Export the sentence-transformers model at `source` to `target` (int8 weights unless `quantize` is
    False); returns seconds spent. RuntimeError when the model is no transformer of known length and dimension."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    model = SentenceTransformer(source, device="cpu")
    auto_model = model[0].auto_model
    max_seq_length, dimension = model.max_seq_length, model.get_embedding_dimension()
    if not isinstance(auto_model, torch.nn.Module) or max_seq_length is None or dimension is None:
        raise RuntimeError(f"{source}: not a transformer model with a known input length and dimension")
    transformer: torch.nn.Module = auto_model.eval()
    pooling = next((m for m in model if type(m).__name__ == "Pooling"), None)
    mode = "cls" if pooling is not None and getattr(pooling, "pooling_mode_cls_token", False) else "mean"
    tokenizer = model.tokenizer
    inputs = [name for name in tokenizer.model_input_names if name in ("input_ids", "attention_mask", "token_type_ids")]

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            named = dict(zip(inputs, tensors, strict=True))
            hidden = transformer(**named).last_hidden_state  # the submodule registered above
            if mode == "cls":
                pooled = hidden[:, 0]
            else:
                mask = named["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    sample = tokenizer(["a sample sentence", "another, longer sample sentence"], padding=True, return_tensors="pt")
    target.mkdir(parents=True, exist_ok=True)
    fp32 = target / "model.fp32.onnx"
    with torch.no_grad():
        torch.onnx.export(
            Encoder(),
            tuple(sample[name] for name in inputs),
            str(fp32),
            input_names=inputs,
            output_names=["embedding"],
            dynamic_axes={**{name: {0: "batch", 1: "tokens"} for name in inputs}, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    final = MODEL_FILE if quantize else FP32_FILE
    partial = target / (final + ".partial")
    if quantize:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.WARNING)  # the quantizer logs a line per tensor at INFO
        try:
            quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root.setLevel(level)
        fp32.unlink()
    else:
        fp32.rename(partial)
    tokenizer.save_pretrained(str(target))
    meta = {
        "file": final,
        "source": source,
        "inputs": inputs,
        "pooling": mode,
        "max_seq_length": int(max_seq_length),
        "dimension": int(dimension),
    }
    (target / META).write_text(json.dumps(meta, indent=2))
    partial.rename(target / final)  # only a complete export has the final name
    return time.perf_counter() - started


def exported(target: Path) -> bool:
    if not (target / META).is_file():
        return False
    return (target / json.loads((target / META).read_text()).get("file", MODEL_FILE)).is_file()


class OnnxEncoder:
    """The subset of SentenceTransformer that Docent uses: encode, tokenizer, max_seq_length, dimension."""

    def __init__(self, path: Path, threads: int = 0, *, spin: bool = True) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.meta: dict[str, Any] = json.loads((path / META).read_text())
        self.max_seq_length = int(self.meta["max_seq_length"])
        # The `tokenizers` library itself, not transformers' AutoTokenizer, which imports torch: in the web process
        # torch's OpenMP threads slow the chat model's (README, "The chat model's threads in the web process").
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        config = (
            json.loads((path / "tokenizer_config.json").read_text())
            if (path / "tokenizer_config.json").exists()
            else {}
        )
        pad_token = config.get("pad_token") or "[PAD]"
        pad_token = pad_token["content"] if isinstance(pad_token, dict) else pad_token
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id(pad_token) or 0, pad_token=pad_token)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        if not spin:
            # Idle pool threads otherwise busy-wait after each call, on the cores the chat model needs next.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model_file = path / self.meta.get("file", MODEL_FILE)
        self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])

    def get_embedding_dimension(self) -> int:
        return int(self.meta["dimension"])

    def encode(self, texts: list[str], batch_size: int = 32, **_: Any) -> np.ndarray:
        """Normalised float32 vectors, one row per text, batched by length like sentence-transformers."""
        if not texts:
            return np.zeros((0, self.get_embedding_dimension()), dtype="float32")
        order = np.argsort([-len(t) for t in texts], kind="stable")
        result = np.zeros((len(texts), self.get_embedding_dimension()), dtype="float32")
        for start in range(0, len(texts), batch_size):
            picked = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in picked])
            arrays = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            feeds = {name: arrays[name] for name in self.meta["inputs"]}
            result[picked] = self.session.run(None, feeds)[0]
        return result

    def count_tokens(self, text: str) -> int:
        """Word-pieces of `text` without special tokens (nor truncation)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)


def main() -> None:
    """Export all-MiniLM-L6-v2 (a shipped option) and the configured sentence-transformers embedder, if any.

    The fp32 export embeds a base's questions in the web process without torch, whose OpenMP threads would slow
    the chat model there (README, "The chat model's threads in the web process"); the default
    multilingual-e5-small and USE need no export.
    """
    # No Django here: importing the settings would start the embedded Postgres, and set-up needs no database.
    configured = os.environ.get("DOCENT_EMBED_MODEL", "")
    models = {MINILM: minilm_path()}
    if configured and configured not in NAMED:
        models[Path(configured).name] = configured
    for name, source in models.items():
        for precision in ("fp32", "int8"):
            target = export_dir(source, name, precision)
            if exported(target):
                print(f"[docent] {precision} ONNX embedder present: {target}")
                continue
            seconds = export(source, target, quantize=precision == "int8")
            print(f"[docent] exported {name} to {precision} ONNX in {seconds:.1f} s: {target}")


if __name__ == "__main__":
    main()
