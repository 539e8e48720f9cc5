"""Per-call observability: a request id on every call and its log lines, and the call's metrics.

The request id is the caller's ``x-request-id`` metadata when it sends one, else a fresh one; it is returned
in the trailing metadata and appears in every log line written while the call runs (``--log-format json``
writes one JSON object per line).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc

from graphfuse.server.core.errors import InvalidArgument
from graphfuse.server.transport.logs import call_request_id
from graphfuse.server.transport.metrics import Metrics
from graphfuse.server.transport.status import report

REQUEST_ID_KEY = "x-request-id"


def _short_method(full: str) -> str:
    return full.rsplit("/", 1)[-1] if full else "unknown"


def _request_id_of(metadata: Any) -> str:
    for key, value in metadata or ():
        if key.lower() == REQUEST_ID_KEY and value:
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            return "".join(c for c in text[:64] if c.isprintable())
    return uuid.uuid4().hex[:16]


def _code_name(context: grpc.aio.ServicerContext, default: grpc.StatusCode) -> str:
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode):
        return code.name
    return default.name


class MalformedRequest:
    """Stands in for a request whose bytes do not parse: the call gets INVALID_ARGUMENT, not INTERNAL."""

    def __init__(self, error: Exception) -> None:
        self.reason = str(error) or type(error).__name__


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as error:  # noqa: BLE001 - any parse failure is the caller's malformed input
            return MalformedRequest(error)

    return parse


def _malformed_status(method: str, request: MalformedRequest) -> tuple[grpc.StatusCode, str]:
    return (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"the {method} request is not a valid protobuf message: {request.reason}",
    )


async def _checked_stream(requests: Any, method: str) -> Any:
    async for request in requests:
        if isinstance(request, MalformedRequest):
            raise InvalidArgument(_malformed_status(method, request)[1])
        yield request


def wrap_behaviour(
    handler: grpc.RpcMethodHandler,
    wrap: Callable[[Callable, bool], Callable],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """The same handler with ``wrap(behaviour, response_streaming)`` in place of its behaviour (and, when
    given, another request deserializer)."""
    kinds = {
        (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
        (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
        (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
        (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
    }
    attribute, make = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(
        wrap(getattr(handler, attribute), handler.response_streaming),
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Outermost interceptor: request id; admission (beyond ``max_in_flight`` calls, 0 = no limit, a call is
    refused at once with RESOURCE_EXHAUSTED; health checks always pass); status, latency and stage metrics."""

    def __init__(self, metrics: Metrics, max_in_flight: int = 0) -> None:
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = _short_method(handler_call_details.method)
        request_id = _request_id_of(handler_call_details.invocation_metadata)
        metrics = self.metrics
        request_streaming = handler.request_streaming
        limited = self.max_in_flight > 0 and not handler_call_details.method.startswith("/grpc.health.")
        interceptor = self

        async def admit(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if limited and interceptor.in_flight > interceptor.max_in_flight:
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{interceptor.in_flight - 1} calls in flight, the limit is {interceptor.max_in_flight}; "
                    "retry later",
                )
            if request_streaming:
                return _checked_stream(request, method)
            if isinstance(request, MalformedRequest):
                await context.abort(*_malformed_status(method, request))
            return request

        async def observed(request: Any, context: grpc.aio.ServicerContext, respond: Callable) -> Any:
            """``respond``'s responses, under the call's request id, admission and metrics."""
            call_request_id.set(request_id)
            context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
            started, last = time.perf_counter(), None
            interceptor.in_flight += 1
            try:
                request = await admit(request, context)
                async for response in respond(request, context):
                    last = response
                    yield response
            except grpc.aio.AbortError:
                metrics.observe(method, _code_name(context, grpc.StatusCode.UNKNOWN), _since(started))
                raise
            except Exception as error:  # noqa: BLE001 - the safety net: never an unmapped status
                code, message = report(method, error)
                metrics.observe(method, code.name, _since(started))
                await context.abort(code, message)
            finally:
                interceptor.in_flight -= 1
            metrics.observe(method, "OK", _since(started), getattr(last, "timing", None))

        def wrap(behaviour: Callable, streaming: bool) -> Callable:
            if streaming:  # grpc.aio needs an async generator function here, not a function returning one

                async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                    async for response in observed(request, context, behaviour):
                        yield response

                return stream

            async def once(request: Any, context: grpc.aio.ServicerContext) -> Any:
                yield await behaviour(request, context)

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                (response,) = [r async for r in observed(request, context, once)]
                return response

            return unary

        return wrap_behaviour(handler, wrap, _tolerant(handler.request_deserializer))


def _since(started: float) -> float:
    return time.perf_counter() - started
