"""HTTP/JSON gateway: one route per RPC, served in the gRPC server's process and event loop (aiohttp).

A route parses its body (protobuf's canonical JSON mapping of the very request message), then calls the
same servicer method through the same interceptors (request id, admission, metrics, bearer tokens) as a
gRPC call would, with an in-process call context; no loopback hop. Errors come back as a JSON status
(``{"code", "status", "message"}``) with the HTTP status of their gRPC code
(graphfuse.server.transport.status.HTTP_STATUS).

The streaming ``Ingest`` takes one chunk per HTTP request: the body is an ``IngestChunk`` (its graph from the
path), the answer that chunk's ``IngestAck``. ``AskStream`` has no route: ``Ask`` answers one question.

Deadlines: a ``grpc-timeout`` header (gRPC's format, e.g. ``500m``). Tokens: ``Authorization: Bearer``.
Request ids: ``x-request-id`` in, ``x-request-id`` out.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor

from graphfuse.server.transport.openapi import openapi_document
from graphfuse.server.transport.status import HTTP_STATUS
from graphfuse.v1 import graphfuse_pb2 as pb

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
FORWARDED_HEADERS = ("authorization", "x-request-id")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


@dataclass(frozen=True)
class Route:
    method: str  # HTTP method
    path: str
    rpc: MethodDescriptor
    path_fields: tuple[str, ...] = ()  # request fields taken from the path

    @property
    def full_method(self) -> str:
        return f"/{self.rpc.containing_service.full_name}/{self.rpc.name}"


def _rpc(service: str, method: str) -> MethodDescriptor:
    return pb.DESCRIPTOR.services_by_name[service].methods_by_name[method]


ROUTES = [
    Route("POST", "/v1/ask", _rpc("Reasoner", "Ask")),
    Route("POST", "/v1/lookup", _rpc("Reasoner", "Lookup")),
    Route("POST", "/v1/link", _rpc("Reasoner", "Link")),
    Route("POST", "/v1/embed", _rpc("Embedder", "Embed")),
    Route("GET", "/v1/graphs", _rpc("Graphs", "ListGraphs")),
    Route("GET", "/v1/graphs/{graph}", _rpc("Graphs", "GetGraphInfo"), ("graph",)),
    Route("POST", "/v1/graphs/{graph}/ingest", _rpc("Graphs", "Ingest"), ("graph",)),
    Route("GET", "/v1/info", _rpc("Info", "Info")),
]


class GatewayError(Exception):
    """An HTTP request the gateway refuses before any RPC runs (bad JSON, bad deadline header)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _CallDetails(grpc.HandlerCallDetails):
    def __init__(self, method: str, metadata: tuple[tuple[str, str], ...]) -> None:
        self.method = method
        self.invocation_metadata = metadata


class HttpCallContext:
    """The part of grpc.aio.ServicerContext that servicers and interceptors use, for an HTTP call."""

    def __init__(self, metadata: tuple[tuple[str, str], ...], timeout: float | None, peer: str) -> None:
        self._metadata = metadata
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._peer = peer
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self.trailing_metadata: tuple[tuple[str, str], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.trailing_metadata = tuple(metadata)

    def peer(self) -> str:
        return self._peer

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details
        raise grpc.aio.AbortError(details)


def parse_timeout(value: str | None) -> float | None:
    """Seconds from a ``grpc-timeout`` header value (``500m``, ``2S``), None when absent."""
    if value is None:
        return None
    digits, unit = value[:-1], value[-1:]
    if not (digits.isdigit() and len(digits) <= 8 and unit in _TIMEOUT_UNITS):
        raise GatewayError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"header grpc-timeout {value[:40]!r} is not an integer of at most 8 digits and a unit "
            "(H, M, S, m, u, n), e.g. 500m",
        )
    return int(digits) * _TIMEOUT_UNITS[unit]


def status_body(code: grpc.StatusCode, message: str) -> dict[str, Any]:
    return {"code": code.value[0], "status": code.name, "message": message}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(
    code: grpc.StatusCode, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response(status_body(code, message), HTTP_STATUS.get(code, 500), headers)


class Gateway:
    """The aiohttp application: RPC routes, health, the OpenAPI document and the explorer page.

    Args:
        servicers: servicer instance per service full name (e.g. ``graphfuse.v1.Reasoner``).
        interceptors: the gRPC server's interceptors, outermost first.
        ready: whether the service is ready (readiness route).
        max_body_bytes: the largest request body accepted.
    """

    def __init__(
        self,
        servicers: dict[str, Any],
        interceptors: Sequence[grpc.aio.ServerInterceptor],
        ready: Callable[[], bool],
        max_body_bytes: int,
    ) -> None:
        self.interceptors = list(interceptors)
        self.ready = ready
        self.handlers = {
            route.full_method: (
                grpc.stream_stream_rpc_method_handler
                if route.rpc.client_streaming
                else grpc.unary_unary_rpc_method_handler
            )(getattr(servicers[route.rpc.containing_service.full_name], route.rpc.name))
            for route in ROUTES
        }
        self.openapi = openapi_document(
            ROUTES, "graphfuse HTTP/JSON gateway (graphfuse.v1)", importlib.metadata.version("graphfuse")
        )
        self.app = web.Application(client_max_size=max_body_bytes, middlewares=[_json_errors])
        for route in ROUTES:
            self.app.router.add_route(route.method, route.path, functools.partial(self._call, route))
        self.app.router.add_get("/healthz", self._live)
        self.app.router.add_get("/readyz", self._ready)
        self.app.router.add_get("/openapi.json", self._openapi)
        self.app.router.add_get("/", self._index)
        self.app.router.add_static("/static/", STATIC_DIR, append_version=True)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = any free port); returns the port."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------------------------------ RPCs
    async def _call(self, route: Route, request: web.Request) -> web.Response:
        metadata = tuple(
            (name, request.headers[name]) for name in FORWARDED_HEADERS if name in request.headers
        )
        try:
            timeout = parse_timeout(request.headers.get("grpc-timeout"))
            message = await self._request_message(route, request)
        except GatewayError as error:
            return error_response(error.code, error.message)
        handler = await self._handler(route.full_method, metadata)
        context = HttpCallContext(metadata, timeout, f"http:{request.remote}")
        try:
            async with asyncio.timeout(timeout):
                if handler.request_streaming:  # Ingest: one chunk in, its one acknowledgement out
                    (response,) = [r async for r in handler.stream_stream(_one(message), context)]
                else:
                    response = await handler.unary_unary(message, context)
        except grpc.aio.AbortError:
            code, body = context.code() or grpc.StatusCode.UNKNOWN, None
        except TimeoutError:
            code, body = grpc.StatusCode.DEADLINE_EXCEEDED, None
        else:
            code, body = grpc.StatusCode.OK, response
        headers = dict(context.trailing_metadata)
        if body is None:
            message_text = context.details() or "the deadline passed before the call finished"
            return error_response(code, message_text, headers)
        return json_response(
            json_format.MessageToDict(body, always_print_fields_with_no_presence=True), headers=headers
        )

    async def _request_message(self, route: Route, request: web.Request) -> Any:
        cls = message_factory.GetMessageClass(route.rpc.input_type)
        message = cls()
        if route.method == "POST":
            body = await request.read()
            try:
                json_format.Parse(body or b"{}", message)
            except (json_format.ParseError, UnicodeDecodeError, RecursionError) as error:
                raise GatewayError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the body is not a JSON {route.rpc.input_type.full_name}: {str(error)[:300]}",
                ) from None
        for name in route.path_fields:
            setattr(message, name, request.match_info[name])
        return message

    async def _handler(self, method: str, metadata: tuple[tuple[str, str], ...]) -> grpc.RpcMethodHandler:
        """The method's handler as the gRPC server would run it: wrapped by every interceptor."""

        async def innermost(details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
            return self.handlers[details.method]

        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]] = innermost
        for interceptor in reversed(self.interceptors):
            continuation = functools.partial(interceptor.intercept_service, continuation)
        return await continuation(_CallDetails(method, metadata))

    # ------------------------------------------------------------------------------------- the rest
    async def _live(self, request: web.Request) -> web.Response:
        return json_response({"status": "alive"})

    async def _ready(self, request: web.Request) -> web.Response:
        if self.ready():
            return json_response({"status": "SERVING"})
        return json_response({"status": "NOT_SERVING"}, status=503)

    async def _openapi(self, request: web.Request) -> web.Response:
        return json_response(self.openapi)

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")


async def _one(message: Any) -> AsyncIterator[Any]:
    yield message


_FROM_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


@web.middleware
async def _json_errors(request: web.Request, handler: Callable) -> web.StreamResponse:
    """aiohttp's own refusals (no such route, wrong method, body too large) as JSON statuses too."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = _FROM_HTTP.get(error.status, grpc.StatusCode.UNKNOWN)
        return json_response(
            status_body(code, f"{request.method} {request.path}: {error.reason}"), error.status
        )
