"""Where the transformer's forward pass runs, by precision mode.

- ``exact``: the PyTorch model in fp32 on the configured device (the default; matches
  sentence-transformers to ~1e-7).
- ``fast``: on CPU, the same weights compiled by OpenVINO, computing in bf16 where the CPU has native
  bf16 instructions (AVX512-BF16, AMX) and in fp32 elsewhere; on CUDA, fp16.
- ``fp16`` / ``bf16``: the PyTorch model cast to that dtype, CUDA only (on CPU, PyTorch's half
  precision is slower than fp32; ``fast`` is the CPU mode).

``bench/encoder_backends.py`` measures the candidates for ``fast`` (OpenVINO fp32/bf16/int8 with NNCF,
onnxruntime fp32 and int8, torch.compile) side by side; OpenVINO bf16 won on this project's CPUs, and int8
lost too much accuracy on short texts.
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

import numpy as np
import torch

PRECISIONS = ("exact", "fast", "fp16", "bf16")
_CUDA_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class Backend(Protocol):
    precision: str  # what actually runs, e.g. "fp32", "fp16", "openvino-bf16"

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Token states (B, T, D) for padded inputs (B, T), on the backend's device."""
        ...


class TorchBackend:
    """The Hugging Face model itself, in fp32 or cast to a CUDA half precision."""

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype = torch.float32):
        self.model = model.eval().to(device=device, dtype=dtype)
        self.device = device
        self.precision = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v.to(self.device, non_blocking=True) for k, v in inputs.items()}
        return self.model(**inputs).last_hidden_state


class OpenVINOBackend:
    """The model converted to OpenVINO and compiled for this CPU, with dynamic batch and length.

    Args:
        model: the fp32 PyTorch model (only read while converting; the compiled copy holds its own
            weights), or a model already converted by `to_openvino` (e.g. then quantised).
        input_names: the model inputs the encoder passes (``input_ids``, ``attention_mask``, maybe
            ``token_type_ids``).
        threads: inference threads (default: torch's intra-op thread count, so the two never add up).
        bf16: compute in bf16 (default: when the CPU supports it natively; else fp32).
    """

    def __init__(
        self,
        model: torch.nn.Module | Any,
        input_names: list[str],
        threads: int | None = None,
        bf16: bool | None = None,
    ):
        try:
            import openvino as ov
        except ImportError as e:  # a core dependency, but a slim install may lack it
            raise ValueError("precision 'fast' on CPU needs the 'openvino' package") from e
        core = ov.Core()
        if bf16 is None:
            bf16 = "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        converted = to_openvino(model, input_names) if isinstance(model, torch.nn.Module) else model
        self.input_names = [port.get_any_name() for port in converted.inputs]
        self.compiled = core.compile_model(
            converted,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
                "PERFORMANCE_HINT": "LATENCY",  # one stream: the encoder's batches are its parallelism
                "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
            },
        )
        self._request = self.compiled.create_infer_request()  # callers serialise (TextEncoder's model lock)
        self.device = torch.device("cpu")
        self.precision = f"openvino-{'bf16' if bf16 else 'fp32'}"

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {name: inputs[name].numpy() for name in self.input_names}
        result = self._request.infer(feed, share_inputs=True)
        return torch.from_numpy(np.array(result[0]))  # copy: the request reuses its output buffer


def to_openvino(model: torch.nn.Module, input_names: list[str]):
    """`model` as an OpenVINO model with dynamic batch and length (inputs named as `input_names`)."""
    import openvino as ov

    example = {name: torch.ones(2, 8, dtype=torch.long) for name in input_names}
    with warnings.catch_warnings():
        # transformers' mask code branches on shapes; for a bidirectional encoder with a padding mask
        # the traced branches hold for every shape (tests encode many shapes against fp32)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return ov.convert_model(model.eval(), example_input=example)


def backend_plan(precision: str, device: torch.device) -> tuple[str, torch.dtype]:
    """``("torch", dtype)`` or ``("openvino", torch.float32)`` for `precision` on `device`.

    Raises:
        ValueError: an unknown precision, or a CUDA-only one on another device.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Expected 'precision' in {PRECISIONS} (got {precision!r})")
    if device.type == "cuda":
        return "torch", _CUDA_DTYPES.get("fp16" if precision == "fast" else precision, torch.float32)
    if precision in _CUDA_DTYPES:
        raise ValueError(f"precision {precision!r} needs a CUDA device; on CPU use 'fast' (or 'exact')")
    return ("openvino", torch.float32) if precision == "fast" else ("torch", torch.float32)


def make_backend(
    model: torch.nn.Module, precision: str, device: torch.device, input_names: list[str]
) -> TorchBackend | OpenVINOBackend:
    """The backend that runs `model` at `precision` on `device` (see `backend_plan`)."""
    kind, dtype = backend_plan(precision, device)
    if kind == "openvino":
        return OpenVINOBackend(model, input_names)
    return TorchBackend(model, device, dtype)
