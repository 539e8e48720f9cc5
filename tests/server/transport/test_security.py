"""TLS, bearer tokens with per-graph permissions, and the refusal to serve a network address unprotected."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import json
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from graphfuse.gnn.data.records import TripleRecord
from graphfuse.server.app import App
from graphfuse.server.client import Client
from graphfuse.server.core.config import ServerConfig
from tests.server.conftest import RunningServer, server_config
from tests.server.test_server import rpc_error

ADMIN, READER = "admin-secret-token", "reader-secret-token"


def write_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    folder = tmp_path_factory.mktemp("secured")
    cert, key = write_certificate(folder)
    tokens = folder / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "tokens": [
                    {"name": "admin", "token": ADMIN, "write": ["*"]},
                    {
                        "name": "reader",
                        "sha256": hashlib.sha256(READER.encode()).hexdigest(),
                        "read": ["public"],
                    },
                ]
            }
        )
    )
    config = server_config(folder / "data", demo=False)
    config.tls_cert, config.tls_key, config.tokens_file = cert, key, tokens
    server = RunningServer(config)
    ca = cert.read_bytes()
    with Client(server.target, 30, token=ADMIN, tls_ca=ca, tls_server_name="localhost") as admin:
        for graph in ("public", "private"):
            assert all(
                a.accepted for a in admin.ingest(graph, [TripleRecord("aspirin", "treats", "headache")])
            )
    yield server, ca
    server.stop()


def test_tls_with_tokens_end_to_end(secured) -> None:  # noqa: ANN001
    server, ca = secured
    with Client(server.target, 30, token=READER, tls_ca=ca, tls_server_name="localhost") as reader:
        assert reader.serving()
        response = reader.lookup("public", head="aspirin")
        assert [t.tail_id for t in response.triples] == ["headache"]
        assert [g.name for g in reader.list_graphs().graphs] == ["public"]  # only what it may read


def test_missing_or_wrong_tokens_are_unauthenticated(secured) -> None:  # noqa: ANN001
    server, ca = secured
    for token in (None, "not-a-known-token"):
        with Client(server.target, 30, token=token, tls_ca=ca, tls_server_name="localhost") as client:
            assert client.serving()  # health checks need no token (probes)
            error = rpc_error(client.lookup, "public", head="aspirin")
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            assert ("missing" if token is None else "unknown") in error.details()
            assert token is None or token not in error.details()


def test_permissions_are_per_graph(secured) -> None:  # noqa: ANN001
    server, ca = secured
    with Client(server.target, 30, token=READER, tls_ca=ca, tls_server_name="localhost") as reader:
        error = rpc_error(reader.lookup, "private", head="aspirin")
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "private" in error.details()
        error = rpc_error(lambda: list(reader.ingest("public", [TripleRecord("a", "r", "b")])))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "write" in error.details()
        error = rpc_error(reader.delete_graph, "public")
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    with Client(server.target, 30, token=ADMIN, tls_ca=ca, tls_server_name="localhost") as admin:
        assert admin.graph_info("public").triples == 1  # the refused ingest wrote nothing


def test_plaintext_client_cannot_talk_to_a_tls_server(secured) -> None:  # noqa: ANN001
    server, _ = secured
    with Client(server.target, 5, token=ADMIN) as plaintext:
        assert rpc_error(plaintext.list_graphs).code() == grpc.StatusCode.UNAVAILABLE


def bound_port(config: ServerConfig) -> int:
    async def build() -> int:  # a grpc.aio server belongs to an event loop
        return App(config).port

    return asyncio.run(build())


def test_a_network_address_needs_tls_tokens_or_insecure(tmp_path: Path) -> None:
    config = ServerConfig(host="0.0.0.0", port=0, data_dir=tmp_path, demo=False)
    with pytest.raises(ValueError, match="--insecure"):
        bound_port(config)
    config.token = "x"
    assert bound_port(config) > 0
    config.token, config.insecure = None, True
    assert bound_port(config) > 0


def test_tls_files_must_come_in_pairs(tmp_path: Path) -> None:
    cert, _ = write_certificate(tmp_path)
    with pytest.raises(ValueError, match="go together"):
        bound_port(ServerConfig(port=0, data_dir=tmp_path, tls_cert=cert))


def test_the_token_never_appears_in_the_config_repr() -> None:
    assert "s3cret" not in repr(ServerConfig(token="s3cret"))
