"""Bearer-token authentication and per-graph permissions.

Tokens come from a JSON file (``--tokens FILE``)::

    {"tokens": [
        {"name": "ingester", "sha256": "<hex digest of the token>", "read": ["*"], "write": ["umls"]},
        {"name": "reader", "token": "<the token itself>", "read": ["umls", "metaqa"]}
    ]}

``read`` and ``write`` list graph names, ``"*"`` for all (write implies read). Storing the digest keeps the
secret out of the file. A caller sends ``authorization: Bearer <token>``; tokens are compared by digest in
constant time and never logged. The interceptor authenticates every call except health checks and puts the
caller on a context variable; the service layer asks :func:`authorize` before it touches a graph.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

from graphfuse.server.core.permissions import EVERY_GRAPH, Principal, set_caller
from graphfuse.server.transport.observability import wrap_behaviour

OPEN_METHODS = ("/grpc.health.v1.Health/",)  # probes need no token


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """Known tokens, held as SHA-256 digests."""

    def __init__(self, principals: dict[bytes, Principal]) -> None:
        if not principals:
            raise ValueError("a token table needs at least one token")
        self._principals = principals

    @classmethod
    def from_file(cls, path: Path) -> TokenTable:
        try:
            entries = json.loads(Path(path).read_text())["tokens"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: expected JSON {{'tokens': [...]}} ({error})") from None
        principals = {}
        for i, entry in enumerate(entries):
            where = f"{path}: tokens[{i}]"
            if not isinstance(entry, dict) or not entry.get("name"):
                raise ValueError(f"{where}: each token needs a 'name'")
            if "sha256" in entry:
                try:
                    digest = bytes.fromhex(entry["sha256"])
                except ValueError:
                    raise ValueError(f"{where}: 'sha256' must be a hex digest") from None
                if len(digest) != 32:
                    raise ValueError(f"{where}: 'sha256' must be 64 hex characters")
            elif entry.get("token"):
                digest = _digest(str(entry["token"]))
            else:
                raise ValueError(f"{where}: give 'token' or 'sha256'")
            principals[digest] = Principal(
                entry["name"], frozenset(entry.get("read", ())), frozenset(entry.get("write", ()))
            )
        return cls(principals)

    @classmethod
    def single(cls, token: str) -> TokenTable:
        """One token that may read and write every graph."""
        return cls({_digest(token): Principal("token", frozenset(), frozenset({EVERY_GRAPH}))})

    def lookup(self, token: str) -> Principal | None:
        digest = _digest(token)
        for known, principal in self._principals.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None


def _bearer(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization":
            value = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = value.partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a known bearer token (UNAUTHENTICATED) and runs the rest as their caller."""

    def __init__(self, tokens: TokenTable) -> None:
        self.tokens = tokens

    async def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_METHODS):
            return handler
        token = _bearer(handler_call_details.invocation_metadata)
        caller = self.tokens.lookup(token) if token else None

        def wrap(behaviour: Callable, streaming: bool) -> Callable:
            if streaming:

                async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                    if caller is None:
                        await context.abort(*_refusal(token))
                    set_caller(caller)
                    async for response in behaviour(request, context):
                        yield response

                return stream

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if caller is None:
                    await context.abort(*_refusal(token))
                set_caller(caller)
                return await behaviour(request, context)

            return unary

        return wrap_behaviour(handler, wrap)


def _refusal(token: str | None) -> tuple[grpc.StatusCode, str]:
    if token is None:
        return (
            grpc.StatusCode.UNAUTHENTICATED,
            "missing bearer token: send metadata 'authorization: Bearer <token>'",
        )
    return grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token"
