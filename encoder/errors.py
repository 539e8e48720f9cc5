"""What the encoder raises for its callers: bad input, and load it cannot take (the server maps these)."""


class EncoderError(Exception):
    """Base of the encoder's errors for its callers."""


class InvalidText(EncoderError, ValueError):
    """A text the encoder cannot take as given (too long without truncation, not a string, ...)."""


class Overloaded(EncoderError):
    """The queue is full; the caller may retry later."""


class DeadlineExpired(EncoderError, TimeoutError):
    """The caller's deadline passed before its texts reached the model."""


class BatcherClosed(EncoderError):
    """The batcher was closed (shutting down) before these texts were encoded."""
