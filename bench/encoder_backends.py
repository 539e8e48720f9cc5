"""Candidates for the encoder's fast CPU mode, side by side in one run: speed and cosine against fp32.

Every candidate runs inside the same TextEncoder (same tokenisation, length-sorted batches under the same
padded-token budget), only the forward pass differs:
- torch fp32 (the exact mode), torch bf16, torch.compile (dynamic shapes);
- onnxruntime fp32 (all graph optimisations), dynamic int8, static int8 (QDQ, calibrated);
- OpenVINO fp32, bf16 (the fast mode), int8 post-training quantisation by NNCF (transformer preset).
Calibration uses texts that are not among the measured ones. The fast mode must keep mean cosine >= 0.99
and min >= 0.97 against fp32 on these texts (issue 3); the table says which candidates do.

Needs the bench extra (pip install -e '.[bench]') for onnxruntime, onnx and nncf.
Usage: python -m bench.encoder_backends [--questions 2000] [--names 4000] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.encoder_throughput import hardware_line, make_texts
from graphfuse.encoder import EncoderConfig, TextEncoder
from graphfuse.encoder.backends import OpenVINOBackend, TorchBackend, to_openvino

BOUNDS = (0.99, 0.97)  # mean, min cosine against fp32
NAMES = ["input_ids", "attention_mask", "token_type_ids"]


class HiddenStates(torch.nn.Module):
    """The model with positional inputs and the token states as its only output (for ONNX export)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


def padded(rows: list[list[int]]) -> dict[str, np.ndarray]:
    ids = np.zeros((len(rows), max(map(len, rows))), np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


class OnnxRuntimeBackend:
    def __init__(self, path: Path, precision: str):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.precision = precision

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {k: v.numpy() for k, v in inputs.items()}
        feed.setdefault("token_type_ids", np.zeros_like(feed["input_ids"]))
        return torch.from_numpy(self.session.run(None, feed)[0])


class CompiledBackend(TorchBackend):
    def __init__(self, model: torch.nn.Module):
        super().__init__(model, torch.device("cpu"))
        self.model = torch.compile(self.model, dynamic=True)
        self.precision = "torch.compile fp32"


def export_onnx(model: torch.nn.Module, folder: Path) -> Path:
    path = folder / "model.onnx"
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            HiddenStates(model),
            tuple(torch.ones(2, 8, dtype=torch.long) for _ in names),
            str(path),
            input_names=names,
            output_names=["hidden"],
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*names, "hidden"]},
            dynamo=False,
            opset_version=17,
        )
    return path


def onnx_dynamic_int8(model: torch.nn.Module, folder: Path, calibration) -> OnnxRuntimeBackend:  # noqa: ANN001
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = folder / "dynamic-int8.onnx"
    quantize_dynamic(str(export_onnx(model, folder)), str(out), weight_type=QuantType.QInt8)
    return OnnxRuntimeBackend(out, "onnxruntime dynamic int8")


def onnx_static_int8(model: torch.nn.Module, folder: Path, calibration) -> OnnxRuntimeBackend:  # noqa: ANN001
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self):  # noqa: ANN201
            return next(self.batches, None)

    out = folder / "static-int8.onnx"
    quantize_static(
        str(export_onnx(model, folder)),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Gemm"],  # LayerNorm, Softmax and GELU stay in fp32
    )
    return OnnxRuntimeBackend(out, "onnxruntime static int8")


def openvino_int8(model: torch.nn.Module, folder: Path, calibration) -> Callable:  # noqa: ANN001
    import nncf

    quantized = nncf.quantize(
        to_openvino(model, NAMES),
        nncf.Dataset(calibration),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calibration),
    )
    backend = OpenVINOBackend(quantized, NAMES, bf16=False)  # int8 where quantised, fp32 elsewhere
    backend.precision = "openvino int8 (NNCF)"
    return backend


CANDIDATES: dict[str, Callable] = {
    "torch fp32 (exact)": lambda model, folder, calib: TorchBackend(model, torch.device("cpu")),
    "torch bf16": lambda model, folder, calib: TorchBackend(model, torch.device("cpu"), torch.bfloat16),
    "torch.compile fp32": lambda model, folder, calib: CompiledBackend(model),
    "onnxruntime fp32": lambda model, folder, calib: OnnxRuntimeBackend(
        export_onnx(model, folder), "onnxruntime fp32"
    ),
    "onnxruntime dynamic int8": onnx_dynamic_int8,
    "onnxruntime static int8": onnx_static_int8,
    "openvino fp32": lambda model, folder, calib: OpenVINOBackend(model, NAMES, bf16=False),
    "openvino bf16 (fast)": lambda model, folder, calib: OpenVINOBackend(model, NAMES, bf16=True),
    "openvino int8 (NNCF)": openvino_int8,
}


def throughput(enc: TextEncoder, texts: list[str], repeats: int = 2) -> tuple[float, torch.Tensor]:
    best, vectors = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        vectors = enc.encode(texts).vectors
        best = min(best, time.perf_counter() - start)
    return len(texts) / best, vectors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--names", type=int, default=4000)
    parser.add_argument("--only", nargs="*", default=None, help="candidate names (default: all)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    questions, names, source = make_texts(args.questions, args.names)
    held_q, held_n, _ = make_texts(256, 256, seed=1)  # calibration texts, not measured
    enc = TextEncoder(EncoderConfig(cache_size=0))
    model = enc.backend.model
    calibration = [padded(enc.tokenize(held_q[i : i + 32]).ids) for i in range(0, 256, 32)]
    calibration += [padded(enc.tokenize(held_n[i : i + 64]).ids) for i in range(0, 256, 64)]
    reference = {"q": enc.encode(questions).vectors, "n": enc.encode(names).vectors}

    rows = []
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in CANDIDATES.items():
            if args.only and name not in args.only:
                continue
            folder = Path(tmp) / name.replace(" ", "-")
            folder.mkdir()
            started = time.perf_counter()
            try:
                enc.backend = make(model, folder, calibration)
            except ImportError as e:
                rows.append((name, f"not installed: {e.name}", "", "", "", "", ""))
                continue
            enc.encode(questions[:128])  # warm-up (and torch.compile's compilation)
            prepare = time.perf_counter() - started
            q_tps, q_vec = throughput(enc, questions)
            n_tps, n_vec = throughput(enc, names)
            cos = torch.cat(
                [
                    torch.nn.functional.cosine_similarity(q_vec, reference["q"], dim=1),
                    torch.nn.functional.cosine_similarity(n_vec, reference["n"], dim=1),
                ]
            )
            base = base or (q_tps, n_tps)
            ok = cos.mean() >= BOUNDS[0] and cos.min() >= BOUNDS[1]
            rows.append(
                (
                    name,
                    f"{q_tps:,.0f} ({q_tps / base[0]:.2f}x)",
                    f"{n_tps:,.0f} ({n_tps / base[1]:.2f}x)",
                    f"{cos.mean():.5f}",
                    f"{cos.min():.4f}",
                    "yes" if ok else "no",
                    f"{prepare:.0f}",
                )
            )
            print(" | ".join(rows[-1]), flush=True)

    print()
    print(f"Hardware: {hardware_line()}")
    print(f"Texts: {args.questions:,} questions, {args.names:,} entity names ({source})")
    print()
    print(
        "| candidate | questions texts/s (vs torch fp32) | entity names texts/s | mean cosine | min cosine "
        f"| within bounds (mean >= {BOUNDS[0]}, min >= {BOUNDS[1]}) | preparation s |"
    )
    print("|---|---:|---:|---:|---:|---|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
