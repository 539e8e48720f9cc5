"""A Flink job that turns raw events on a Kafka topic into graphfuse updates on another.

Reads JSON events from --source-topic, of either kind:

- interactions ``{"user": ..., "item": ..., "action": ..., "time": ...}`` -> the fact (user, action, item);
- extracted facts ``{"subject": ..., "predicate": ..., "object": ..., "source": ...}`` -> (subject,
  predicate, object);

each optionally with ``"graph"`` (else --graph) and ``"retract": true`` (the fact is withdrawn). It cleans
them (whitespace trimmed and collapsed, relations lower-case with ``_`` for spaces; events missing a part, or
that are not JSON, are dropped), de-duplicates them in tumbling processing-time windows of --window-seconds
(one update per fact and window, the last event's retract flag winning), and writes each as a graphfuse
``Record`` in its canonical JSON (``{"triple": {...}}`` or ``{"removeTriple": {...}}``) to --sink-topic, keyed
by its graph, which `graphfuse serve --kafka` applies. Runs in Flink's local mini-cluster (parallelism 1, so
the updates keep the order of their windows), checkpointing every --checkpoint-seconds, when the source's
offsets are committed to Kafka; after a restart it resumes from them (events since the last checkpoint are
read again; applying a fact twice changes nothing).

Run it in its own environment (flink/setup.sh):
    .flink-venv/bin/python flink/facts_job.py --bootstrap HOST:PORT
"""

from __future__ import annotations

import argparse
from pathlib import Path

LIB = Path(__file__).resolve().parent / "lib"
JARS = ("flink-connector-kafka.jar", "kafka-clients.jar")


def statements(args: argparse.Namespace) -> tuple[list[str], str]:
    """The tables and view the job defines, and its INSERT."""
    kafka = f"'connector' = 'kafka', 'properties.bootstrap.servers' = '{args.bootstrap}'"
    raw = f"""
        CREATE TABLE raw_events (
            `graph` STRING, `user` STRING, `item` STRING, `action` STRING, `time` STRING,
            `subject` STRING, `predicate` STRING, `object` STRING, `source` STRING, `retract` BOOLEAN,
            proctime AS PROCTIME()
        ) WITH (
            {kafka}, 'topic' = '{args.source_topic}', 'properties.group.id' = '{args.group}',
            'scan.startup.mode' = 'group-offsets', 'properties.auto.offset.reset' = 'earliest',
            'format' = 'json', 'json.ignore-parse-errors' = 'true', 'json.fail-on-missing-field' = 'false'
        )"""
    updates = f"""
        CREATE TABLE updates (`graph` STRING, `body` STRING) WITH (
            {kafka}, 'topic' = '{args.sink_topic}', 'sink.delivery-guarantee' = 'at-least-once',
            'key.format' = 'raw', 'key.fields' = 'graph',
            'value.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY'
        )"""
    clean = f"""
        CREATE TEMPORARY VIEW facts AS
        SELECT * FROM (
            SELECT
                COALESCE(NULLIF(TRIM(`graph`), ''), '{args.graph}') AS `graph`,
                REGEXP_REPLACE(TRIM(COALESCE(`subject`, `user`)), '\\s+', ' ') AS head,
                LOWER(REGEXP_REPLACE(TRIM(COALESCE(`predicate`, `action`)), '\\s+', '_')) AS relation,
                REGEXP_REPLACE(TRIM(COALESCE(`object`, `item`)), '\\s+', ' ') AS tail,
                COALESCE(`retract`, FALSE) AS `retract`,
                proctime
            FROM raw_events
        )
        WHERE head <> '' AND relation <> '' AND tail <> ''"""
    triple = "JSON_OBJECT('head' VALUE head, 'relation' VALUE relation, 'tail' VALUE tail)"
    insert = f"""
        INSERT INTO updates
        SELECT `graph`,
            CASE WHEN retracted THEN JSON_OBJECT('removeTriple' VALUE {triple})
                 ELSE JSON_OBJECT('triple' VALUE {triple}) END
        FROM (
            SELECT `graph`, head, relation, tail, LAST_VALUE(`retract`) AS retracted
            FROM TABLE(TUMBLE(TABLE facts, DESCRIPTOR(proctime), INTERVAL '{args.window_seconds}' SECOND))
            GROUP BY window_start, window_end, `graph`, head, relation, tail
        )"""
    return [raw, updates, clean], insert


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", required=True, help="Kafka brokers, HOST:PORT[,HOST:PORT...]")
    parser.add_argument("--source-topic", default="events")
    parser.add_argument("--sink-topic", default="graphfuse.updates")
    parser.add_argument("--graph", default="events", help="the graph of events that name none")
    parser.add_argument("--group", default="graphfuse-facts-job", help="Kafka group of the source's offsets")
    parser.add_argument("--window-seconds", type=int, default=1)
    parser.add_argument("--checkpoint-seconds", type=int, default=10)
    args = parser.parse_args()
    for name in JARS:
        if not (LIB / name).exists():
            parser.error(f"{LIB / name} is missing: run flink/setup.sh")

    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("pipeline.jars", ";".join((LIB / name).as_uri() for name in JARS))
    config.set("parallelism.default", "1")
    config.set("execution.checkpointing.interval", f"{args.checkpoint_seconds} s")
    tables, insert = statements(args)
    for statement in tables:
        env.execute_sql(statement)
    env.execute_sql(insert).wait()


if __name__ == "__main__":
    main()
