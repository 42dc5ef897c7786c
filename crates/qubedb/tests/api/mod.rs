//! The embedded API: parameters, prepared statements, streaming, typed rows, concurrency between sessions.

use qubedb::{Database, Param};

#[test]
fn parameters_prepared_statements_and_typed_rows() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    session
        .execute(
            "CREATE TABLE kv (id INTEGER PRIMARY KEY, name TEXT, score DOUBLE PRECISION)",
            &[],
        )
        .expect("create");
    let insert = session
        .prepare("INSERT INTO kv VALUES ($1, $2, $3)")
        .expect("prepare");
    assert_eq!(insert.parameter_count, 3);
    for id in 0..5i64 {
        let params = [
            Param::Integer(id),
            Param::Text(format!("name {id}")),
            Param::Double(id as f64 / 2.0),
        ];
        session.execute_prepared(&insert, &params).expect("insert");
    }
    let rows = session
        .query(
            "SELECT id, name, score FROM kv WHERE id >= $1 ORDER BY id",
            &[3.into()],
        )
        .expect("query")
        .rows()
        .expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<i64>(0).expect("id"), 3);
    assert_eq!(rows[0].get::<String>(1).expect("name"), "name 3");
    assert_eq!(rows[1].get::<f64>(2).expect("score"), 2.0);
    // A parameter is a value, never SQL.
    let rows = session
        .query(
            "SELECT count(*) FROM kv WHERE name = $1",
            &["x' OR '1'='1".into()],
        )
        .expect("query")
        .rows()
        .expect("rows");
    assert_eq!(rows[0].get::<i64>(0).expect("count"), 0);
    let error = session
        .query("SELECT $2", &[1.into()])
        .err()
        .expect("missing parameter");
    assert_eq!(error.code, "08P01");
}

#[test]
fn large_results_stream_in_batches() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    session
        .execute("CREATE TABLE big (id BIGINT PRIMARY KEY)", &[])
        .expect("create");
    session
        .execute(
            "INSERT INTO big SELECT value FROM generate_series(1, 50000) AS t(value)",
            &[],
        )
        .expect("fill");
    let mut result = session.query("SELECT id FROM big", &[]).expect("query");
    let first = result.next_batch().expect("batch").expect("a first batch");
    assert!(
        first.num_rows() < 50_000,
        "the first batch arrives before the whole result"
    );
    let mut total = first.num_rows();
    while let Some(batch) = result.next_batch().expect("batch") {
        total += batch.num_rows();
    }
    assert_eq!(total, 50_000);
}

#[test]
fn write_conflict_gives_40001_and_snapshots_hold() {
    let database = Database::open_in_memory().expect("database");
    let mut setup = database.session();
    setup
        .execute(
            "CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER)",
            &[],
        )
        .expect("create");
    setup
        .execute("INSERT INTO account VALUES (1, 100)", &[])
        .expect("insert");

    let mut first = database.session();
    let mut second = database.session();
    let mut reader = database.session();
    first.execute("BEGIN", &[]).expect("begin");
    second.execute("BEGIN", &[]).expect("begin");
    reader.execute("BEGIN", &[]).expect("begin");
    let balance = |session: &mut qubedb::Session| -> i64 {
        session
            .query("SELECT balance FROM account WHERE id = 1", &[])
            .expect("query")
            .rows()
            .expect("rows")[0]
            .get::<i64>(0)
            .expect("balance")
    };
    assert_eq!(balance(&mut reader), 100);
    first
        .execute(
            "UPDATE account SET balance = balance + 10 WHERE id = 1",
            &[],
        )
        .expect("update");
    second
        .execute(
            "UPDATE account SET balance = balance + 20 WHERE id = 1",
            &[],
        )
        .expect("update");
    first.execute("COMMIT", &[]).expect("first commits");
    let error = second
        .execute("COMMIT", &[])
        .err()
        .expect("second must fail");
    assert_eq!(error.code, "40001");
    assert!(error.is_retryable());
    // The reader's snapshot does not move while writers commit.
    assert_eq!(balance(&mut reader), 100);
    reader.execute("COMMIT", &[]).expect("commit");
    assert_eq!(balance(&mut reader), 110);
}

#[test]
fn sessions_run_concurrently_on_threads() {
    let database = Database::open_in_memory().expect("database");
    database
        .session()
        .execute(
            "CREATE TABLE hits (thread INTEGER, n INTEGER, PRIMARY KEY (thread, n))",
            &[],
        )
        .expect("create");
    let handles: Vec<_> = (0..4)
        .map(|thread| {
            let database = database.clone();
            std::thread::spawn(move || {
                let mut session = database.session();
                for n in 0..25 {
                    session
                        .execute(
                            "INSERT INTO hits VALUES ($1, $2)",
                            &[thread.into(), n.into()],
                        )
                        .expect("insert");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    let rows = database
        .session()
        .query("SELECT count(*) FROM hits", &[])
        .expect("query")
        .rows()
        .expect("rows");
    assert_eq!(rows[0].get::<i64>(0).expect("count"), 100);
}

#[test]
fn second_process_gets_a_clear_error() {
    let directory = tempfile::tempdir().expect("tempdir");
    let _open = Database::open(directory.path()).expect("first open");
    let error = Database::open(directory.path())
        .err()
        .expect("second open must fail");
    assert_eq!(error.code, "55006");
    assert!(error.message.contains("in use"), "{}", error.message);
}
