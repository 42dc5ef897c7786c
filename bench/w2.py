#!/usr/bin/env python3
"""W2 (bench/WORKLOADS.md): pgbench over loopback TCP against QubeDB and PostgreSQL, interleaved.

Starts Debian's PostgreSQL 15 in a throwaway cluster (127.0.0.1:5433, the settings of
shared/bench/pg_setup.sh) and `qubedb serve` from the release build (127.0.0.1:5434), initializes
pgbench's tables in both (`pgbench -i -s SCALE`), then runs each mode RUNS times, alternating PostgreSQL
and QubeDB. Records TPS, failed transactions, average latency, and the server's CPU seconds (from /proc:
QubeDB's process; PostgreSQL's postmaster with its live and reaped backends) -> CPU per transaction.
Writes one JSON object per run to bench/results/w2.jsonl.

Usage: python3 bench/w2.py [--runs 3] [--duration 20] [--scale 10] [--qubedb PATH]
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

PGBIN = "/usr/lib/postgresql/15/bin"
WORK = "/tmp/qubedb-bench/w2"
PG_PORT = 5433
QUBEDB_PORT = 5434
MODES = [
    ("select-only prepared c8", ["-S", "-M", "prepared", "-c", "8", "-j", "2"]),
    ("select-only prepared c1", ["-S", "-M", "prepared", "-c", "1", "-j", "1"]),
    ("tpcb-like c8", ["-c", "8", "-j", "2"]),
    ("tpcb-like c1", ["-c", "1", "-j", "1"]),
]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid, children=True):
    """utime+stime (+ reaped children's) of pid, plus its live children's when asked."""
    def fields(p):
        text = open(f"/proc/{p}/stat").read()
        return text[text.rindex(")") + 2:].split()
    total = sum(int(x) for x in fields(pid)[11:15])
    if children:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    f = fields(int(entry))
                    if int(f[1]) == pid:
                        total += sum(int(x) for x in f[11:15])
                except (FileNotFoundError, ProcessLookupError, IndexError):
                    pass
    return total / TICKS


def as_postgres(command):
    if os.geteuid() == 0:
        return ["su", "postgres", "-s", "/bin/bash", "-c", " ".join(command)]
    return command


def start_postgres():
    data = f"{WORK}/pg"
    if os.path.exists(data):
        subprocess.run(as_postgres([f"{PGBIN}/pg_ctl", "-D", data, "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(data)
    os.makedirs(data)
    os.chmod(WORK, 0o777)
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run(as_postgres([f"{PGBIN}/initdb", "-D", data, "-U", "postgres", "--auth=trust",
                                "-E", "UTF8", "--locale=C.UTF-8"]), check=True, capture_output=True)
    with open(f"{data}/postgresql.conf", "a") as conf:
        conf.write(f"""
listen_addresses = '127.0.0.1'
port = {PG_PORT}
unix_socket_directories = '{WORK}'
max_connections = 50
shared_buffers = 4GB
effective_cache_size = 16GB
work_mem = 64MB
maintenance_work_mem = 2GB
max_wal_size = 8GB
checkpoint_timeout = 15min
wal_buffers = 64MB
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
""")
    subprocess.run(as_postgres([f"{PGBIN}/pg_ctl", "-D", data, "-l", f"{WORK}/pg.log", "-w", "start"]),
                   check=True, capture_output=True)
    pid = int(open(f"{data}/postmaster.pid").readline())
    return pid, data


def stop_postgres(data):
    subprocess.run(as_postgres([f"{PGBIN}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"]),
                   capture_output=True)


def start_qubedb(binary, socket_directory=None):
    """`qubedb serve` on a fresh data directory, on 127.0.0.1:QUBEDB_PORT and, given
    `socket_directory`, also on its Unix-domain socket there."""
    data = f"{WORK}/qubedb"
    shutil.rmtree(data, ignore_errors=True)
    log = open(f"{WORK}/qubedb.log", "w")
    arguments = [binary, "serve", "--data", data, "--pg", f"127.0.0.1:{QUBEDB_PORT}",
                 "--max-connections", "100"]
    if socket_directory:
        arguments += ["--socket-dir", socket_directory]
    process = subprocess.Popen(arguments, stdout=log, stderr=log)
    for _ in range(100):
        if subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(QUBEDB_PORT), "-U", "qubedb", "-d", "qubedb",
                           "-Atc", "SELECT 1"], capture_output=True).returncode == 0:
            return process
        time.sleep(0.1)
    raise SystemExit("qubedb serve did not start; see " + f"{WORK}/qubedb.log")


def pgbench(port, user, database, arguments):
    command = [f"{PGBIN}/pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", user] + arguments + [database]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode not in (0, 2):  # 2: some transactions failed; reported below
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"pgbench failed: {' '.join(command)}")
    return result.stdout + result.stderr


def parse(output):
    def number(pattern):
        match = re.search(pattern, output)
        return float(match.group(1)) if match else None
    return {
        "tps": number(r"tps = ([0-9.]+)"),
        "transactions": number(r"number of transactions actually processed: (\d+)"),
        "failed": number(r"number of failed transactions: (\d+)") or 0.0,
        "latency_ms": number(r"latency average = ([0-9.]+) ms"),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--qubedb", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/qubedb-target")), "release/qubedb"))
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results/w2.jsonl"))
    args = parser.parse_args()
    os.makedirs(WORK, exist_ok=True)
    pg_pid, pg_data = start_postgres()
    qubedb = start_qubedb(args.qubedb)
    systems = {
        "postgresql": {"port": PG_PORT, "user": "postgres", "database": "postgres",
                       "cpu": lambda: cpu_seconds(pg_pid)},
        "qubedb": {"port": QUBEDB_PORT, "user": "qubedb", "database": "qubedb",
                   "cpu": lambda: cpu_seconds(qubedb.pid, children=False)},
    }
    records = []
    try:
        for name, system in systems.items():
            start = time.time()
            output = pgbench(system["port"], system["user"], system["database"],
                             ["-i", "-s", str(args.scale), "-q"])
            if name == "postgresql":
                subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-qc",
                                "VACUUM ANALYZE"], check=True)
            records.append({"workload": "W2", "engine": name, "mode": "init", "scale": args.scale,
                            "wall_s": time.time() - start})
            print(json.dumps(records[-1]), flush=True)
        for run in range(1, args.runs + 1):
            for mode, arguments in MODES:
                for name, system in systems.items():
                    cpu = system["cpu"]()
                    output = pgbench(system["port"], system["user"], system["database"],
                                     arguments + ["-T", str(args.duration)])
                    record = {"workload": "W2", "engine": name, "mode": mode, "run": run,
                              "arguments": " ".join(arguments + ["-T", str(args.duration)]),
                              "server_cpu_s": system["cpu"]() - cpu,
                              "loadavg1": float(open("/proc/loadavg").read().split()[0])}
                    record.update(parse(output))
                    records.append(record)
                    print(json.dumps(record), flush=True)
    finally:
        qubedb.send_signal(signal.SIGINT)
        try:
            qubedb.wait(timeout=30)
        except subprocess.TimeoutExpired:
            qubedb.kill()
        stop_postgres(pg_data)
    with open(args.out, "w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
