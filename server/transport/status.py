"""The one place where exceptions become gRPC status codes.

Only the error types that gnn, encoder, the store and the service core raise for their callers map to a
caller's status; anything else is INTERNAL, logged with its traceback, and its text is not sent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

from graphfuse.encoder.errors import BatcherClosed, DeadlineExpired, InvalidText, Overloaded
from graphfuse.gnn.errors import InvalidGraphInput, NotInGraph
from graphfuse.server.core.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from graphfuse.server.storage.store import GraphExistsError, GraphNotFoundError, StoreCorruptError

log = logging.getLogger(__name__)

# The errors callers cause or can act on, by where they come from; anything else is an internal error.
STATUS_OF: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (InvalidText, grpc.StatusCode.INVALID_ARGUMENT),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DeadlineExpired, grpc.StatusCode.DEADLINE_EXCEEDED),
    (BatcherClosed, grpc.StatusCode.UNAVAILABLE),
    (InvalidGraphInput, grpc.StatusCode.INVALID_ARGUMENT),
    (NotInGraph, grpc.StatusCode.NOT_FOUND),
    (GraphExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (GraphNotFoundError, grpc.StatusCode.NOT_FOUND),
    (StoreCorruptError, grpc.StatusCode.DATA_LOSS),
    (MemoryError, grpc.StatusCode.RESOURCE_EXHAUSTED),
)
INTERNAL_MESSAGE = "internal error; the server log has it under this call's request id (x-request-id)"

# gRPC status -> HTTP status for the JSON gateway (as google.rpc.Code documents them)
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

MAX_MESSAGE_CHARS = 1024  # messages travel in headers (8 KiB by default): never echo a huge input whole


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client sees for ``error`` (messages clipped to a header's size)."""
    code, message = _status_of(error)
    if len(message) > MAX_MESSAGE_CHARS:
        message = f"{message[: MAX_MESSAGE_CHARS - 30]}... ({len(message)} characters)"
    return code, message


def _status_of(error: BaseException) -> tuple[grpc.StatusCode, str]:
    for kind, code in STATUS_OF:
        if isinstance(error, kind):
            if kind is MemoryError:
                return code, "out of memory"
            if kind is DeadlineExpired:
                return code, str(error) or "the deadline passed before the work started"
            return code, str(error.args[0]) if isinstance(error, LookupError) and error.args else str(error)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


def report(method: str, error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status of ``error``, logged (with its traceback when it is an internal error)."""
    code, message = status_of(error)
    if code == grpc.StatusCode.INTERNAL:
        log.exception("%s failed", method, exc_info=error)
    else:
        log.info("%s -> %s: %s", method, code.name, message)
    return code, message


F = TypeVar("F", bound=Callable[..., Any])


def unary(method: F) -> F:
    """Wrap a unary (or stream-in) servicer method so that any exception aborts with its status."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except (grpc.aio.AbortError, grpc.RpcError):
            raise
        except Exception as error:  # noqa: BLE001 - mapped to a status here, once
            await context.abort(*report(method.__name__, error))

    return wrapper  # type: ignore[return-value]


def streaming(method: F) -> F:
    """Wrap a servicer method that yields responses so that any exception aborts with its status."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for response in method(self, request, context):
                yield response
        except (grpc.aio.AbortError, grpc.RpcError):
            raise
        except Exception as error:  # noqa: BLE001
            await context.abort(*report(method.__name__, error))

    return wrapper  # type: ignore[return-value]
