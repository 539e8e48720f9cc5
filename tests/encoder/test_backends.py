import pytest
import torch

from graphfuse.encoder import EncoderConfig, TextEncoder
from graphfuse.encoder.backends import OpenVINOBackend, TorchBackend, backend_plan
from tests.encoder.test_model import LONG, TEXTS, ForwardCounter, cosines

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(scope="module")
def exact() -> TextEncoder:
    return TextEncoder(EncoderConfig(cache_size=0))


@pytest.fixture(scope="module")
def fast() -> TextEncoder:
    return TextEncoder(EncoderConfig(precision="fast", cache_size=0))


def test_plans_per_device():
    assert backend_plan("exact", CPU) == ("torch", torch.float32)
    assert backend_plan("fast", CPU) == ("openvino", torch.float32)
    assert backend_plan("exact", CUDA) == ("torch", torch.float32)
    assert backend_plan("fast", CUDA) == ("torch", torch.float16)
    assert backend_plan("fp16", CUDA) == ("torch", torch.float16)
    assert backend_plan("bf16", CUDA) == ("torch", torch.bfloat16)


def test_bad_precisions_raise_naming_the_fix():
    with pytest.raises(ValueError, match="needs a CUDA device; on CPU use 'fast'"):
        backend_plan("fp16", CPU)
    with pytest.raises(ValueError, match="Expected 'precision' in"):
        TextEncoder(EncoderConfig(precision="int3"))


def test_exact_is_default_fp32(exact):
    assert exact.precision == "fp32"
    assert isinstance(exact.backend, TorchBackend)


def test_fast_mode_keeps_the_cosine_bounds(exact, fast):
    assert isinstance(fast.backend, OpenVINOBackend)
    assert fast.precision in ("openvino-bf16", "openvino-fp32")
    texts = TEXTS + [LONG]
    ours = fast.encode(texts, truncate=True)
    reference = exact.encode(texts, truncate=True)
    assert ours.vectors.dtype == torch.float32 and ours.vectors.shape == reference.vectors.shape
    assert ours.tokens == reference.tokens
    similarity = cosines(ours.vectors, reference.vectors)
    assert similarity.mean() >= 0.99 and similarity.min() >= 0.97
    torch.testing.assert_close(ours.vectors.norm(dim=1), torch.ones(len(texts)))


def test_fast_mode_batches_of_every_shape(fast, monkeypatch):
    """Dynamic batch and length: one text, then many texts in several padded lengths."""
    counter = ForwardCounter(fast, monkeypatch)
    one = fast.encode(["a single question"]).vectors
    many = fast.encode(["a single question"] + TEXTS * 3).vectors
    assert len({length for _, length in counter.shapes}) > 2
    assert cosines(one, many[:1]).item() >= 0.999


def test_openvino_fp32_matches_exact(exact):
    model = exact.backend.model
    names = ["input_ids", "attention_mask", "token_type_ids"]
    enc = TextEncoder(EncoderConfig(cache_size=0))
    enc.backend = OpenVINOBackend(model, names, bf16=False)
    assert enc.backend.precision == "openvino-fp32"
    similarity = cosines(enc.encode(TEXTS).vectors, exact.encode(TEXTS).vectors)
    assert similarity.min() >= 0.9999


def test_half_precision_weights_pool_in_fp32(exact):
    """The CUDA half-precision path (cast weights, fp32 pooling) runs on CPU with bf16 weights."""
    enc = TextEncoder(EncoderConfig(cache_size=0))
    enc.backend = TorchBackend(enc.backend.model, CPU, torch.bfloat16)
    assert enc.backend.precision == "bf16"
    out = enc.encode(TEXTS).vectors
    assert out.dtype == torch.float32
    assert cosines(out, exact.encode(TEXTS).vectors).mean() >= 0.99


def test_stage_timings_add_up(exact):
    before = exact.timings.as_dict()
    exact.encode(["timed text one", "timed text two"])
    after = exact.timings.as_dict()
    assert set(after) == {"tokenize", "forward", "pool"}
    assert all(after[stage] > before[stage] for stage in after)


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)"
)
@pytest.mark.parametrize("precision", ["fast", "fp16", "bf16"])
def test_cuda_half_precisions(exact, precision):
    gpu = TextEncoder(EncoderConfig(device="cuda", precision=precision, cache_size=0))
    assert gpu.precision == {"fast": "fp16"}.get(precision, precision)
    similarity = cosines(gpu.encode(TEXTS).vectors, exact.encode(TEXTS).vectors)
    assert similarity.mean() >= 0.99 and similarity.min() >= 0.97
