"""The one place where exceptions become gRPC status codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

from graphfuse.encoder import BatcherClosed, DeadlineExpired, Overloaded
from graphfuse.server.storage.store import GraphExistsError, StoreCorruptError

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error the client can act on; ``code`` names the gRPC status it maps to."""

    code = grpc.StatusCode.INTERNAL


class InvalidArgument(ServiceError, ValueError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError, LookupError):
    code = grpc.StatusCode.NOT_FOUND


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


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
    if isinstance(error, ServiceError):
        return error.code, str(error)
    if isinstance(error, Overloaded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)
    if isinstance(error, DeadlineExpired):
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(error) or "the deadline passed before the work started"
    if isinstance(error, BatcherClosed):
        return grpc.StatusCode.UNAVAILABLE, str(error)
    if isinstance(error, GraphExistsError):
        return grpc.StatusCode.ALREADY_EXISTS, str(error)
    if isinstance(error, StoreCorruptError):
        return grpc.StatusCode.DATA_LOSS, str(error)
    if isinstance(error, ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(error)
    if isinstance(error, LookupError):
        return grpc.StatusCode.NOT_FOUND, str(error.args[0]) if error.args else str(error)
    if isinstance(error, MemoryError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, "out of memory"
    return grpc.StatusCode.INTERNAL, f"internal error ({type(error).__name__}); see the server log"


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
