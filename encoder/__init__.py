"""Text encoder: sentence embeddings from a local Hugging Face model, with an LRU embedding cache and a
dynamic batcher that merges concurrent callers into shared forward passes."""

from graphfuse.encoder.batcher import (
    BatcherClosed,
    BatcherConfig,
    BatcherStats,
    DeadlineExpired,
    EncodeBatcher,
    Overloaded,
)
from graphfuse.encoder.cache import EmbeddingCache
from graphfuse.encoder.model import Embedded, Encoded, EncoderConfig, TextEncoder, TextTooLongError, Tokens

__all__ = [
    "BatcherClosed",
    "BatcherConfig",
    "BatcherStats",
    "DeadlineExpired",
    "EmbeddingCache",
    "EncodeBatcher",
    "Embedded",
    "Encoded",
    "EncoderConfig",
    "Overloaded",
    "TextEncoder",
    "TextTooLongError",
    "Tokens",
]
