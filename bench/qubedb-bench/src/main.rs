//! `qubedb-bench w1`: workload W1 of `bench/WORKLOADS.md` (OLTP, embedded) against SQLite through
//! rusqlite, the two engines run interleaved (SQLite, QubeDB, SQLite, QubeDB, ...) so that the load of a
//! shared machine hits both alike. Prints one JSON object per engine and run on standard output;
//! `bench/report.py` turns them into `bench/RESULTS.md`.
//!
//! Usage: `qubedb-bench w1 [--runs N] [--directory DIR] [--inserts N] [--engines sqlite,qubedb]`
//! (`--engines qubedb` runs QubeDB alone, for a profile). `qubedb-bench w5` runs W5 embedded (`w5.rs`).
//!
//! Every measurement records wall time and the CPU time of the whole process (every thread: QubeDB's
//! query runtime and committer threads count), from `/proc/self/task/*/schedstat`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use qubedb::{Database, DatabaseOptions, Param, PreparedStatement, Session, Synchronous};
use serde_json::{Map, Value, json};

mod w5;

/// Rows loaded by (a).
const ROWS: i64 = 100_000;
/// Point selects of (b).
const SELECTS: usize = 100_000;
/// Updates of (d).
const UPDATES: usize = 10_000;
/// Index lookups of (e).
const INDEX_LOOKUPS: usize = 10_000;
/// Distinct `score` values: `score = (id * 7919) % 10007`.
const SCORES: u64 = 10_007;

/// The shared PRNG of `shared/bench/WORKLOADS.md`.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `keys(seed, count, n)`: `count` draws in `1..=n`.
fn keys(seed: u64, count: usize, n: u64) -> Vec<i64> {
    let mut random = SplitMix64(seed);
    (0..count)
        .map(|_| i64::try_from(random.next() % n + 1).expect("keys fit in i64"))
        .collect()
}

/// On-CPU nanoseconds of the threads of this process alive now (`schedstat`: nanosecond precision,
/// but a thread that has exited no longer counts).
fn live_threads_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|task| task.ok())
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// User and system CPU nanoseconds of the whole process so far, exited threads included
/// (`/proc/self/stat`, in clock ticks of 10 ms: Linux's USER_HZ is 100).
fn process_cpu_ns() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // The fields after the command name (which may hold spaces) start at the state, field 3;
    // utime and stime are fields 14 and 15.
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return 0;
    };
    let ticks: u64 = fields
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    ticks * 10_000_000
}

/// Wall and CPU seconds of `work`. CPU is the live threads' count (precise: what a run of queries
/// on one thread needs) unless the whole process's is larger by more than its two ticks of slack,
/// which happens when threads worked and ended within `work` (an index build).
fn measure<T>(work: impl FnOnce() -> T) -> (T, f64, f64) {
    let (live, process) = (live_threads_cpu_ns(), process_cpu_ns());
    let start = Instant::now();
    let value = work();
    let wall = start.elapsed().as_secs_f64();
    let live = live_threads_cpu_ns().saturating_sub(live);
    let process = process_cpu_ns().saturating_sub(process);
    let cpu = if process > live + 20_000_000 {
        process
    } else {
        live
    };
    (value, wall, cpu as f64 / 1e9)
}

/// The operations of W1, one implementation per engine.
trait Engine {
    fn name(&self) -> &'static str;
    fn load(&mut self);
    /// Returns a checksum of what was read.
    fn point_selects(&mut self, keys: &[i64]) -> i64;
    fn inserts(&mut self, first: i64, count: i64, sessions: usize);
    fn updates(&mut self, keys: &[i64]);
    /// `CREATE INDEX kv_score ON kv (score)`, before (e) and not timed.
    fn create_index(&mut self);
    fn index_lookups(&mut self, scores: &[i64]) -> i64;
    fn count(&mut self) -> i64;
}

struct Sqlite {
    path: PathBuf,
    connection: rusqlite::Connection,
}

impl Sqlite {
    fn open(path: &Path) -> Sqlite {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let connection = Self::connect(path, "NORMAL");
        connection
            .execute_batch("CREATE TABLE kv (id INTEGER PRIMARY KEY, name TEXT, score INTEGER)")
            .expect("create table");
        Sqlite {
            path: path.to_path_buf(),
            connection,
        }
    }

    fn connect(path: &Path, synchronous: &str) -> rusqlite::Connection {
        let connection = rusqlite::Connection::open(path).expect("open sqlite");
        connection
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get::<_, String>(0))
            .expect("WAL");
        connection
            .execute_batch(&format!(
                "PRAGMA synchronous={synchronous}; PRAGMA cache_size=-65536; PRAGMA busy_timeout=60000;"
            ))
            .expect("pragmas");
        connection
    }
}

impl Engine for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn load(&mut self) {
        self.connection.execute_batch("BEGIN").expect("begin");
        {
            let mut statement = self
                .connection
                .prepare_cached("INSERT INTO kv (id, name, score) VALUES (?1, ?2, ?3)")
                .expect("prepare");
            for id in 1..=ROWS {
                statement
                    .execute(rusqlite::params![
                        id,
                        format!("name-{id}"),
                        (id * 7919) % 10007
                    ])
                    .expect("insert");
            }
        }
        self.connection.execute_batch("COMMIT").expect("commit");
    }

    fn point_selects(&mut self, keys: &[i64]) -> i64 {
        let mut statement = self
            .connection
            .prepare_cached("SELECT name, score FROM kv WHERE id = ?1")
            .expect("prepare");
        let mut checksum = 0;
        for key in keys {
            let (length, score): (usize, i64) = statement
                .query_row([key], |row| {
                    Ok((row.get_ref(0)?.as_str()?.len(), row.get(1)?))
                })
                .expect("select");
            checksum += score + length as i64;
        }
        checksum
    }

    fn inserts(&mut self, first: i64, count: i64, sessions: usize) {
        let path = self.path.clone();
        run_sessions(first, count, sessions, move |ids| {
            let connection = Sqlite::connect(&path, "FULL");
            let mut statement = connection
                .prepare_cached("INSERT INTO kv (id, name, score) VALUES (?1, ?2, ?3)")
                .expect("prepare");
            for id in ids {
                statement
                    .execute(rusqlite::params![id, format!("ins-{id}"), id % 1000])
                    .expect("insert");
            }
        });
    }

    fn updates(&mut self, keys: &[i64]) {
        self.connection.execute_batch("BEGIN").expect("begin");
        {
            let mut statement = self
                .connection
                .prepare_cached("UPDATE kv SET score = score + 1 WHERE id = ?1")
                .expect("prepare");
            for key in keys {
                statement.execute([key]).expect("update");
            }
        }
        self.connection.execute_batch("COMMIT").expect("commit");
    }

    fn create_index(&mut self) {
        self.connection
            .execute_batch("CREATE INDEX kv_score ON kv (score)")
            .expect("create index");
    }

    fn index_lookups(&mut self, scores: &[i64]) -> i64 {
        let mut statement = self
            .connection
            .prepare_cached("SELECT id, name FROM kv WHERE score = ?1")
            .expect("prepare");
        let mut checksum = 0;
        for score in scores {
            let mut rows = statement.query([score]).expect("query");
            while let Some(row) = rows.next().expect("row") {
                checksum += row.get::<_, i64>(0).expect("id");
            }
        }
        checksum
    }

    fn count(&mut self) -> i64 {
        self.connection
            .query_row("SELECT count(*) FROM kv", [], |row| row.get(0))
            .expect("count")
    }
}

struct Qubedb {
    database: Database,
    session: Session,
}

/// A new, empty database in `directory` (whatever was there removed), every commit fsynced.
fn fresh_database(directory: &Path) -> Database {
    let _ = std::fs::remove_dir_all(directory);
    Database::open_with(
        directory,
        DatabaseOptions {
            synchronous: Synchronous::Full,
            ..DatabaseOptions::default()
        },
    )
    .expect("open qubedb")
}

impl Qubedb {
    fn open(directory: &Path) -> Qubedb {
        let database = fresh_database(directory);
        let mut session = database.session();
        session
            .execute(
                "CREATE TABLE kv (id INTEGER PRIMARY KEY, name TEXT, score INTEGER)",
                &[],
            )
            .expect("create table");
        Qubedb { database, session }
    }

    fn prepare(&mut self, sql: &str) -> PreparedStatement {
        self.session.prepare(sql).expect("prepare")
    }
}

/// Reads every row of a result, calling `each` with its batch and row index.
fn read_rows(
    session: &mut Session,
    prepared: &PreparedStatement,
    params: &[Param],
    mut each: impl FnMut(&qubedb::arrow::array::RecordBatch, usize),
) {
    let mut result = session
        .execute_prepared(prepared, params)
        .expect("statement runs");
    while let Some(batch) = result.next_batch().expect("rows") {
        for row in 0..batch.num_rows() {
            each(&batch, row);
        }
    }
}

impl Engine for Qubedb {
    fn name(&self) -> &'static str {
        "qubedb"
    }

    fn load(&mut self) {
        let insert = self.prepare("INSERT INTO kv (id, name, score) VALUES ($1, $2, $3)");
        self.session.execute("BEGIN", &[]).expect("begin");
        for id in 1..=ROWS {
            let params = [
                Param::Integer(id),
                Param::Text(format!("name-{id}")),
                Param::Integer((id * 7919) % 10007),
            ];
            self.session
                .execute_prepared(&insert, &params)
                .expect("insert");
        }
        self.session.execute("COMMIT", &[]).expect("commit");
    }

    fn point_selects(&mut self, keys: &[i64]) -> i64 {
        use qubedb::arrow::array::{Array, AsArray};
        use qubedb::arrow::datatypes::Int32Type;
        let select = self.prepare("SELECT name, score FROM kv WHERE id = $1");
        let mut checksum = 0;
        for &key in keys {
            read_rows(
                &mut self.session,
                &select,
                &[Param::Integer(key)],
                |batch, row| {
                    let name = batch.column(0).as_string::<i32>();
                    let score = batch.column(1).as_primitive::<Int32Type>();
                    if !name.is_null(row) {
                        checksum += i64::from(score.value(row)) + name.value(row).len() as i64;
                    }
                },
            );
        }
        checksum
    }

    fn inserts(&mut self, first: i64, count: i64, sessions: usize) {
        let database = self.database.clone();
        run_sessions(first, count, sessions, move |ids| {
            let mut session = database.session();
            let insert = session
                .prepare("INSERT INTO kv (id, name, score) VALUES ($1, $2, $3)")
                .expect("prepare");
            for id in ids {
                let params = [
                    Param::Integer(id),
                    Param::Text(format!("ins-{id}")),
                    Param::Integer(id % 1000),
                ];
                session.execute_prepared(&insert, &params).expect("insert");
            }
        });
    }

    fn updates(&mut self, keys: &[i64]) {
        let update = self.prepare("UPDATE kv SET score = score + 1 WHERE id = $1");
        self.session.execute("BEGIN", &[]).expect("begin");
        for &key in keys {
            self.session
                .execute_prepared(&update, &[Param::Integer(key)])
                .expect("update");
        }
        self.session.execute("COMMIT", &[]).expect("commit");
    }

    fn create_index(&mut self) {
        self.session
            .execute("CREATE INDEX kv_score ON kv (score)", &[])
            .expect("create index");
    }

    fn index_lookups(&mut self, scores: &[i64]) -> i64 {
        use qubedb::arrow::array::AsArray;
        use qubedb::arrow::datatypes::Int32Type;
        let select = self.prepare("SELECT id, name FROM kv WHERE score = $1");
        let mut checksum = 0;
        for &score in scores {
            read_rows(
                &mut self.session,
                &select,
                &[Param::Integer(score)],
                |batch, row| {
                    checksum += i64::from(batch.column(0).as_primitive::<Int32Type>().value(row));
                },
            );
        }
        checksum
    }

    fn count(&mut self) -> i64 {
        self.session
            .query("SELECT count(*) FROM kv", &[])
            .expect("count")
            .rows()
            .expect("rows")[0]
            .get::<i64>(0)
            .expect("count value")
    }
}

/// Splits ids `first..first + count` over `sessions` threads, each running `work` on its share.
fn run_sessions(
    first: i64,
    count: i64,
    sessions: usize,
    work: impl Fn(Vec<i64>) + Send + Sync + 'static,
) {
    let work = std::sync::Arc::new(work);
    let sessions_count = i64::try_from(sessions).expect("few sessions");
    let threads: Vec<_> = (0..sessions_count)
        .map(|session| {
            let work = work.clone();
            let ids: Vec<i64> = (first..first + count)
                .filter(|id| id % sessions_count == session)
                .collect();
            std::thread::spawn(move || work(ids))
        })
        .collect();
    for thread in threads {
        thread.join().expect("session thread");
    }
}

/// Runs W1 once on `engine`, returning one JSON record.
fn run_w1(engine: &mut dyn Engine, run: usize, inserts: i64) -> Value {
    let mut record = Map::new();
    record.insert("workload".into(), json!("W1"));
    record.insert("engine".into(), json!(engine.name()));
    record.insert("run".into(), json!(run));
    let mut put = |name: &str, count: f64, wall: f64, cpu: f64| {
        record.insert(
            name.into(),
            json!({"count": count, "wall_s": wall, "cpu_s": cpu}),
        );
    };
    let ((), wall, cpu) = measure(|| engine.load());
    put("a_load", ROWS as f64, wall, cpu);
    let select_keys = keys(42, SELECTS, ROWS as u64);
    let (checksum_b, wall, cpu) = measure(|| engine.point_selects(&select_keys));
    put("b_point_select", SELECTS as f64, wall, cpu);
    let mut next_id = ROWS + 1;
    for sessions in [1, 8, 32] {
        let ((), wall, cpu) = measure(|| engine.inserts(next_id, inserts, sessions));
        put(
            &format!("c_durable_insert_{sessions}"),
            inserts as f64,
            wall,
            cpu,
        );
        next_id += inserts;
    }
    let update_keys = keys(43, UPDATES, ROWS as u64);
    let ((), wall, cpu) = measure(|| engine.updates(&update_keys));
    put("d_update", UPDATES as f64, wall, cpu);
    let scores: Vec<i64> = keys(44, INDEX_LOOKUPS, SCORES)
        .into_iter()
        .map(|score| score - 1)
        .collect();
    engine.create_index();
    let (checksum_e, wall, cpu) = measure(|| engine.index_lookups(&scores));
    put("e_index_lookup", INDEX_LOOKUPS as f64, wall, cpu);
    let count = engine.count();
    assert_eq!(count, ROWS + 3 * inserts, "{} row count", engine.name());
    record.insert("checksum_b".into(), json!(checksum_b));
    record.insert("checksum_e".into(), json!(checksum_e));
    Value::Object(record)
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let option = |name: &str| {
        arguments
            .iter()
            .position(|argument| argument == name)
            .and_then(|at| arguments.get(at + 1))
            .cloned()
    };
    if arguments.get(1).map(String::as_str) == Some("w5") {
        w5::run(&option);
        return;
    }
    if arguments.get(1).map(String::as_str) != Some("w1") {
        eprintln!(
            "usage: qubedb-bench w1 [--runs N] [--directory DIR] [--inserts N] [--engines sqlite,qubedb]\n       \
             qubedb-bench w5 --data DIR [--dimensions 128] [--ef-construction 64] [--ef-search 32,64,128]"
        );
        std::process::exit(2);
    }
    let runs: usize = option("--runs").map_or(3, |runs| runs.parse().expect("--runs N"));
    let inserts: i64 = option("--inserts").map_or(10_000, |n| n.parse().expect("--inserts N"));
    let directory = PathBuf::from(option("--directory").unwrap_or("/tmp/qubedb-bench".into()));
    std::fs::create_dir_all(&directory).expect("bench directory");
    let engines = option("--engines").unwrap_or("sqlite,qubedb".into());
    let engines: Vec<&str> = engines.split(',').collect();
    if let Some(unknown) = engines
        .iter()
        .find(|engine| !["sqlite", "qubedb"].contains(engine))
    {
        eprintln!("unknown engine {unknown}: the engines are sqlite and qubedb");
        std::process::exit(2);
    }
    let mut checksums: Option<(Value, Value)> = None;
    for run in 1..=runs {
        for &engine in &engines {
            let record = if engine == "sqlite" {
                run_w1(
                    &mut Sqlite::open(&directory.join("w1.sqlite")),
                    run,
                    inserts,
                )
            } else {
                run_w1(
                    &mut Qubedb::open(&directory.join("w1.qubedb")),
                    run,
                    inserts,
                )
            };
            // Both engines must have read the same rows.
            let sums = (record["checksum_b"].clone(), record["checksum_e"].clone());
            match &checksums {
                None => checksums = Some(sums),
                Some(expected) => assert_eq!(&sums, expected, "{engine} read other rows"),
            }
            println!("{record}");
        }
    }
}
