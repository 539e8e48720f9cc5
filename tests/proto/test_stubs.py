"""The committed stubs must be exactly what protoc generates from the committed .proto files."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_match_the_proto() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "stubs up to date" in result.stdout


def test_stub_check_detects_drift(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    sys.path.insert(0, str(ROOT / "proto"))
    try:
        import generate
    finally:
        sys.path.pop(0)
    copy = tmp_path / "graphfuse" / "v1"
    copy.mkdir(parents=True)
    source = (ROOT / "proto/graphfuse/v1/graphfuse.proto").read_text()
    (copy / "graphfuse.proto").write_text(
        source.replace("string question = 2;", "string question = 2;\n  bool x = 99;")
    )
    for stub in ("graphfuse_pb2.py", "graphfuse_pb2.pyi", "graphfuse_pb2_grpc.py"):
        (copy / stub).write_bytes((ROOT / "proto/graphfuse/v1" / stub).read_bytes())
    monkeypatch.setattr(generate, "PROTO_ROOT", tmp_path)
    monkeypatch.setattr(generate, "PROTO_FILES", [copy / "graphfuse.proto"])
    assert "graphfuse/v1/graphfuse_pb2.py" in generate.stale_stubs()
