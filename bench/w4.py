#!/usr/bin/env python3
"""W4 (bench/WORKLOADS.md): 200,000 JSON documents in QubeDB, PostgreSQL JSONB and SQLite json_extract.

The documents are shared/bench's W4 set (splitmix64 seed 4; the file's sha256 prefix is checked). QubeDB
(`qubedb serve`, release build, 127.0.0.1:5434) and PostgreSQL 15 (a throwaway cluster, 127.0.0.1:5433,
the settings of shared/bench/pg_setup.sh) are driven the same way, over loopback with psycopg; SQLite
in-process with Python's sqlite3. Each engine: load (COPY docs(id, doc) FROM STDIN for the servers, one
executemany transaction for SQLite), then the queries, each timed RUNS times after a warm-up:
  city_eq      count(*) WHERE doc->'user'->>'city' = 'city07'     (4,072 rows)
  name_eq      count(*) WHERE doc->'user'->>'name' = <doc 100000's>  (1 row)
  containment  count(*) WHERE doc @> '{"user":{"city":"city07"}}'
  group_by     doc->'user'->>'city', count(*), avg((doc->>'amount')::float8) GROUP BY 1
without indexes, then with GIN (jsonb_path_ops) for containment and expression B-trees on the city and
name paths (SQLite: json_extract expression indexes). Every count is checked.
Writes one JSON object per measurement to bench/results/w4.jsonl.

Usage: python3 bench/w4.py [--runs 3] [--qubedb PATH]
"""
import argparse
import hashlib
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from w2 import PG_PORT, QUBEDB_PORT, WORK, start_postgres, start_qubedb, stop_postgres  # noqa: E402

NDOCS = 200_000
CITY = "city07"
PATH = f"{WORK}/w4_docs.ndjson"
SHA256_PREFIX = "951d5d9e4ee4a25b"
MASK64 = (1 << 64) - 1


class SplitMix64:
    """splitmix64, as shared/bench/benchlib.py draws it."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):
        return self.next() % int(n)


def generate():
    r = SplitMix64(4)
    cities = [f"city{i:02d}" for i in range(50)]
    tags = [f"t{i:02d}" for i in range(20)]
    with open(PATH, "w") as out:
        for i in range(NDOCS):
            user = {"name": f"user{r.below(1_000_000):06d}", "age": 18 + r.below(63),
                    "city": cities[r.below(50)]}
            tag_list = [tags[r.below(20)] for _ in range(r.below(5))]
            doc = {"id": i + 1, "user": user, "tags": tag_list, "amount": r.below(1_000_000) / 100,
                   "ts": 1_700_000_000 + i * 60 + r.below(60)}
            out.write(json.dumps(doc, separators=(",", ":")) + "\n")


def timed(function, runs):
    function()  # warm-up
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - start) * 1000)
    return times, result


SERVER_QUERIES = {
    "city_eq": "SELECT count(*) FROM docs WHERE doc->'user'->>'city' = %s",
    "name_eq": "SELECT count(*) FROM docs WHERE doc->'user'->>'name' = %s",
    "containment": "SELECT count(*) FROM docs WHERE doc @> %s::jsonb",
    "group_by": "SELECT doc->'user'->>'city', count(*), avg((doc->>'amount')::float8) FROM docs GROUP BY 1",
}
SQLITE_QUERIES = {
    "city_eq": "SELECT count(*) FROM docs WHERE json_extract(doc, '$.user.city') = ?",
    "name_eq": "SELECT count(*) FROM docs WHERE json_extract(doc, '$.user.name') = ?",
    "group_by": "SELECT json_extract(doc, '$.user.city'), count(*), avg(json_extract(doc, '$.amount')) "
                "FROM docs GROUP BY 1",
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--qubedb", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/qubedb-target")), "release/qubedb"))
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results/w4.jsonl"))
    args = parser.parse_args()
    import psycopg

    os.makedirs(WORK, exist_ok=True)
    if not os.path.exists(PATH):
        generate()
    digest = hashlib.sha256(open(PATH, "rb").read()).hexdigest()
    if not digest.startswith(SHA256_PREFIX):
        raise SystemExit(f"generated documents differ from WORKLOADS.md's (sha256 {digest[:16]})")
    lines = open(PATH).read().splitlines()
    name = json.loads(lines[99_999])["user"]["name"]
    expected = {
        "city_eq": sum(1 for line in lines if json.loads(line)["user"]["city"] == CITY),
        "name_eq": sum(1 for line in lines if json.loads(line)["user"]["name"] == name),
    }
    expected["containment"] = expected["city_eq"]
    parameters = {"city_eq": (CITY,), "name_eq": (name,),
                  "containment": (json.dumps({"user": {"city": CITY}}),), "group_by": ()}
    records = []

    def record(engine, measure, values, unit, **extra):
        item = {"workload": "W4", "engine": engine, "measure": measure, "unit": unit,
                "median": statistics.median(values), "values": [round(v, 3) for v in values],
                "loadavg1": float(open("/proc/loadavg").read().split()[0])}
        item.update(extra)
        records.append(item)
        print(json.dumps(item), flush=True)

    def server_run(engine, connection):
        loads = []
        for _ in range(args.runs):
            connection.execute("DROP TABLE IF EXISTS docs")
            connection.execute("CREATE TABLE docs (id int PRIMARY KEY, doc jsonb NOT NULL)")
            start = time.perf_counter()
            with connection.cursor() as cursor:
                with cursor.copy("COPY docs (id, doc) FROM STDIN") as copy:
                    for i, line in enumerate(lines):
                        copy.write(f"{i + 1}\t{line}\n")
            loads.append(NDOCS / (time.perf_counter() - start))
        record(engine, "load", loads, "docs/s", method="COPY text via psycopg")
        connection.execute("ANALYZE docs")

        def query(key):
            def run():
                rows = connection.execute(SERVER_QUERIES[key], parameters[key]).fetchall()
                return rows[0][0] if key != "group_by" else len(rows)
            return run

        for key in SERVER_QUERIES:
            times, result = timed(query(key), args.runs)
            want = expected.get(key, 50)
            record(engine, f"{key}_noindex", times, "ms", correct=result == want)
        start = time.perf_counter()
        connection.execute("CREATE INDEX docs_gin ON docs USING gin (doc jsonb_path_ops)")
        gin_s = time.perf_counter() - start
        times, result = timed(query("containment"), args.runs)
        record(engine, "containment_gin", times, "ms", correct=result == expected["containment"],
               index_build_s=round(gin_s, 3))
        start = time.perf_counter()
        connection.execute("CREATE INDEX docs_city ON docs ((doc->'user'->>'city'))")
        connection.execute("CREATE INDEX docs_name ON docs ((doc->'user'->>'name'))")
        btree_s = time.perf_counter() - start
        connection.execute("ANALYZE docs")
        for key in ("city_eq", "name_eq"):
            times, result = timed(query(key), args.runs)
            record(engine, f"{key}_btree", times, "ms", correct=result == expected[key],
                   index_build_s_both=round(btree_s, 3))

    pg_pid, pg_data = start_postgres()
    qubedb = start_qubedb(args.qubedb)
    try:
        with psycopg.connect(host="127.0.0.1", port=PG_PORT, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            server_run("postgresql", connection)
        with psycopg.connect(host="127.0.0.1", port=QUBEDB_PORT, user="qubedb", dbname="qubedb",
                             autocommit=True) as connection:
            server_run("qubedb", connection)
    finally:
        qubedb.send_signal(signal.SIGINT)
        try:
            qubedb.wait(timeout=60)
        except subprocess.TimeoutExpired:
            qubedb.kill()
        stop_postgres(pg_data)

    database = f"{WORK}/w4.sqlite"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(database + suffix):
            os.remove(database + suffix)
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    loads = []
    for _ in range(args.runs):
        connection.execute("DROP TABLE IF EXISTS docs")
        connection.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
        start = time.perf_counter()
        connection.execute("BEGIN")
        connection.executemany("INSERT INTO docs (id, doc) VALUES (?, ?)",
                               ((i + 1, line) for i, line in enumerate(lines)))
        connection.execute("COMMIT")
        loads.append(NDOCS / (time.perf_counter() - start))
    record("sqlite", "load", loads, "docs/s", method="executemany, one transaction",
           version=sqlite3.sqlite_version)

    def sqlite_query(key):
        def run():
            rows = connection.execute(SQLITE_QUERIES[key], parameters[key]).fetchall()
            return rows[0][0] if key != "group_by" else len(rows)
        return run

    for key in SQLITE_QUERIES:
        times, result = timed(sqlite_query(key), args.runs)
        record("sqlite", f"{key}_noindex", times, "ms", correct=result == expected.get(key, 50))
    start = time.perf_counter()
    connection.execute("CREATE INDEX docs_city ON docs (json_extract(doc, '$.user.city'))")
    connection.execute("CREATE INDEX docs_name ON docs (json_extract(doc, '$.user.name'))")
    btree_s = time.perf_counter() - start
    connection.execute("ANALYZE")
    for key in ("city_eq", "name_eq"):
        times, result = timed(sqlite_query(key), args.runs)
        record("sqlite", f"{key}_btree", times, "ms", correct=result == expected[key],
               index_build_s_both=round(btree_s, 3))
    connection.close()
    with open(args.out, "w") as out:
        for item in records:
            out.write(json.dumps(item) + "\n")


if __name__ == "__main__":
    main()
