"""Text encoder: sentence embeddings from a local Hugging Face model, with an LRU embedding cache."""

from encoder.cache import EmbeddingCache
from encoder.model import Encoded, EncoderConfig, TextEncoder, TextTooLongError

__all__ = ["EmbeddingCache", "Encoded", "EncoderConfig", "TextEncoder", "TextTooLongError"]
