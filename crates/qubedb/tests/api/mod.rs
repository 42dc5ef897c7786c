//! The embedded API: parameters, prepared statements, streaming, typed rows, concurrency between sessions.

use qubedb::{Database, Param};

mod vectors;

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

fn balance(session: &mut qubedb::Session, id: i64) -> i64 {
    session
        .query("SELECT balance FROM account WHERE id = $1", &[id.into()])
        .expect("query")
        .rows()
        .expect("rows")[0]
        .get::<i64>(0)
        .expect("balance")
}

#[test]
fn concurrent_writers_of_a_row_wait_and_snapshots_hold() {
    let database = Database::open_in_memory().expect("database");
    let mut setup = database.session();
    setup
        .run("CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER); INSERT INTO account VALUES (1, 100), (2, 100)")
        .expect("setup");

    // READ COMMITTED (the default): the second writer waits for the first, then updates the row as
    // the first one committed it.
    let mut first = database.session();
    let mut reader = database.session();
    reader
        .execute("BEGIN ISOLATION LEVEL REPEATABLE READ", &[])
        .expect("begin");
    assert_eq!(balance(&mut reader, 1), 100);
    first.execute("BEGIN", &[]).expect("begin");
    first
        .execute(
            "UPDATE account SET balance = balance + 10 WHERE id = 1",
            &[],
        )
        .expect("update");
    let second_database = database.clone();
    let second = std::thread::spawn(move || {
        let mut second = second_database.session();
        second
            .run("BEGIN; UPDATE account SET balance = balance + 20 WHERE id = 1; COMMIT")
            .expect("the second writer waits, then commits");
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !second.is_finished(),
        "the second writer waits for the first"
    );
    first.execute("COMMIT", &[]).expect("first commits");
    second.join().expect("second writer");
    assert_eq!(balance(&mut setup, 1), 130);
    // The reader's snapshot does not move while writers commit.
    assert_eq!(balance(&mut reader, 1), 100);
    reader.execute("COMMIT", &[]).expect("commit");
    assert_eq!(balance(&mut reader, 1), 130);

    // REPEATABLE READ: writing a row committed by another transaction since the snapshot fails.
    let mut repeatable = database.session();
    repeatable
        .execute("BEGIN ISOLATION LEVEL REPEATABLE READ", &[])
        .expect("begin");
    assert_eq!(balance(&mut repeatable, 1), 130);
    setup
        .execute("UPDATE account SET balance = 0 WHERE id = 1", &[])
        .expect("autocommit update");
    let error = repeatable
        .execute("UPDATE account SET balance = balance + 1 WHERE id = 1", &[])
        .expect_err("must fail");
    assert_eq!(error.code, "40001");
    assert!(error.is_retryable());
    repeatable.execute("ROLLBACK", &[]).expect("rollback");

    // Two transactions that each wait for a row the other holds: one gets 40P01, the other goes on.
    let mut left = database.session();
    left.run("BEGIN; UPDATE account SET balance = 1 WHERE id = 1")
        .expect("left holds row 1");
    let right_database = database.clone();
    let right = std::thread::spawn(move || {
        let mut right = right_database.session();
        right
            .run("BEGIN; UPDATE account SET balance = 2 WHERE id = 2")
            .expect("right holds row 2");
        let result = right.execute("UPDATE account SET balance = 2 WHERE id = 1", &[]);
        let _ = right.execute("ROLLBACK", &[]);
        result
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let left_result = left.execute("UPDATE account SET balance = 1 WHERE id = 2", &[]);
    // The chosen one's transaction still holds its locks until it rolls back, as in PostgreSQL.
    if left_result.is_err() {
        left.execute("ROLLBACK", &[]).expect("rollback");
    }
    let right_result = right.join().expect("right session");
    let codes: Vec<&str> = [&left_result, &right_result]
        .iter()
        .filter_map(|result| result.as_ref().err().map(|error| error.code))
        .collect();
    assert_eq!(
        codes,
        vec!["40P01"],
        "one of the two is chosen: {left_result:?} {right_result:?}"
    );
    if left_result.is_ok() {
        left.execute("COMMIT", &[]).expect("commit");
    }
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

fn plan(session: &mut qubedb::Session, sql: &str) -> String {
    let outcome = session
        .run(&format!("EXPLAIN {sql}"))
        .expect("explain")
        .pop()
        .expect("outcome");
    outcome
        .text_rows()
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(Option::unwrap_or_default)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks that each query's EXPLAIN contains the expected text.
fn assert_plans(session: &mut qubedb::Session, cases: &[(&str, &str)]) {
    for (sql, expected) in cases {
        let plan = plan(session, sql);
        assert!(
            plan.contains(expected),
            "{sql}: expected {expected:?} in\n{plan}"
        );
    }
}

#[test]
fn lateral_subqueries_run_per_row_and_show_in_explain() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    session
        .run("CREATE TABLE t (id INTEGER PRIMARY KEY, val INTEGER)")
        .expect("create");
    assert_plans(
        &mut session,
        &[
            (
                "SELECT * FROM t CROSS JOIN LATERAL (SELECT t2.id FROM t t2 ORDER BY abs(t2.val - t.val) LIMIT 1) s",
                "LateralExec: per-row subquery, join_type=Inner",
            ),
            (
                "SELECT * FROM t LEFT JOIN LATERAL (SELECT t2.id FROM t t2 WHERE t2.val > t.val LIMIT 1) s ON s.id > t.id",
                "Lateral: join_type=Left, condition=s.id > t.id",
            ),
            // What DataFusion decorrelates stays an ordinary join.
            (
                "SELECT * FROM t, LATERAL (SELECT t2.id FROM t t2 WHERE t2.val = t.val) s",
                "HashJoinExec",
            ),
        ],
    );
    // The substituted value is a key: the per-row plan is a point lookup.
    session
        .run("INSERT INTO t VALUES (1, 2), (2, 3), (3, 1)")
        .expect("insert");
    let rows = session
        .run("SELECT t.id, s.val FROM t, LATERAL (SELECT t2.val FROM t t2 WHERE t2.id = t.val LIMIT 1) s ORDER BY t.id")
        .expect("query")
        .pop()
        .expect("outcome")
        .text_rows();
    let expected: Vec<Vec<Option<String>>> = [["1", "3"], ["2", "1"], ["3", "2"]]
        .iter()
        .map(|row| row.iter().map(|value| Some(value.to_string())).collect())
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn correlated_subqueries_run_per_row_and_show_in_explain() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    session
        .run("CREATE TABLE t1 (a INTEGER PRIMARY KEY, c INTEGER)")
        .expect("create");
    let explained = plan(
        &mut session,
        "SELECT a, (SELECT count(*) FROM t1 x WHERE x.c > t1.c) FROM t1",
    );
    assert!(
        explained.contains("Apply: __qubedb_apply_0 := scalar subquery"),
        "{explained}"
    );
    assert!(
        explained.contains("ApplyExec: per-row subqueries=[scalar]"),
        "{explained}"
    );
    // The subquery's output column names the result, as in PostgreSQL.
    let outcome = session
        .run("SELECT a, (SELECT count(*) FROM t1 x WHERE x.c > t1.c) FROM t1")
        .expect("query")
        .pop()
        .expect("outcome");
    let schema = outcome.schema.expect("rows");
    assert_eq!(schema.field(1).name(), "count");
    // The key of the substituted value still becomes a point lookup inside the subquery.
    session
        .run("INSERT INTO t1 VALUES (1, 10), (2, 20), (3, 5)")
        .expect("insert");
    let rows = session
        .run(
            "SELECT a, (SELECT x.c FROM t1 x WHERE x.a = t1.a + 1 OR x.a > 100) FROM t1 ORDER BY a",
        )
        .expect("query")
        .pop()
        .expect("outcome")
        .text_rows();
    let expected: Vec<Vec<Option<String>>> = vec![
        vec![Some("1".into()), Some("20".into())],
        vec![Some("2".into()), Some("5".into())],
        vec![Some("3".into()), None],
    ];
    assert_eq!(rows, expected);
}

#[test]
fn primary_key_predicates_become_key_lookups_and_ranges() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    session
        .run("CREATE TABLE emp (id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE pair (a INTEGER, b TEXT, PRIMARY KEY (a, b))")
        .expect("create");
    let cases = [
        (
            "SELECT name FROM emp WHERE id = 3",
            "KvScanExec: table=emp, point lookup (1 key)",
        ),
        (
            "SELECT name FROM emp WHERE id IN (1, 4) OR id = 5",
            "KvScanExec: table=emp, point lookup (3 keys)",
        ),
        (
            "SELECT name FROM emp WHERE id > 2 AND id <= 4",
            "KvScanExec: table=emp, range scan (1 range)",
        ),
        (
            "SELECT name FROM emp WHERE id BETWEEN 4 AND 100",
            "KvScanExec: table=emp, range scan (1 range)",
        ),
        (
            "SELECT name FROM emp WHERE name = 'x'",
            "KvScanExec: table=emp, full scan",
        ),
        (
            "SELECT * FROM pair WHERE a = 1",
            "KvScanExec: table=pair, range scan (1 range, 1 key column fixed)",
        ),
        (
            "SELECT * FROM pair WHERE a = 1 AND b = 'x'",
            "KvScanExec: table=pair, point lookup (1 key)",
        ),
        (
            "SELECT * FROM pair WHERE a = 1 AND b > 'm'",
            "KvScanExec: table=pair, range scan (1 range, 1 key column fixed)",
        ),
    ];
    assert_plans(&mut session, &cases);
    // And the ranges return exactly the rows of a full scan.
    session
        .run("INSERT INTO pair VALUES (1, 'a'), (1, 'n'), (1, 'z'), (2, 'n'), (0, 'n')")
        .expect("insert");
    let rows = session
        .query("SELECT b FROM pair WHERE a = 1 AND b > 'm' ORDER BY b", &[])
        .expect("query")
        .rows()
        .expect("rows");
    let values: Vec<String> = rows
        .iter()
        .map(|row| row.get::<String>(0).expect("b"))
        .collect();
    assert_eq!(values, vec!["n", "z"]);
    let analyzed = plan(&mut session, "ANALYZE SELECT * FROM pair WHERE a = 1");
    assert!(analyzed.contains("output_rows=3"), "{analyzed}");
}

#[test]
fn output_columns_are_named_as_postgresql_names_them() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    session
        .execute("CREATE TABLE t (a INTEGER, b TEXT)", &[])
        .expect("create");
    let result = session
        .query("SELECT a, t.b, count(*), a + 1, '2024-01-01'::date, b::text, 1 AS one, 2 AS one FROM t GROUP BY a, t.b", &[])
        .expect("query");
    let schema = result.schema().expect("rows");
    let names: Vec<&str> = schema
        .fields()
        .iter()
        .map(|field| field.name().as_str())
        .collect();
    assert_eq!(
        names,
        vec!["a", "b", "count", "?column?", "date", "b", "one", "one"]
    );
}

#[test]
fn async_api_runs_inside_another_runtime_and_drops_cleanly() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let database = Database::open_in_memory().expect("database");
        let mut session = database.session();
        let outcomes = session
            .run_async(
                "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2); SELECT sum(x) FROM t",
                &[],
            )
            .await
            .expect("run");
        assert_eq!(outcomes[2].text_rows(), vec![vec![Some("3".to_string())]]);
        // Dropping the last handle inside an async context must not panic.
        drop(session);
        drop(database);
    });
}

/// What Describe reports for a statement: `(parameter types, column names and types)`.
fn describe(
    session: &mut qubedb::Session,
    sql: &str,
    declared: &[Option<&str>],
) -> (Vec<String>, Vec<String>) {
    let prepared = session.prepare(sql).expect("prepare");
    let declared: Vec<Option<String>> = declared
        .iter()
        .map(|name| name.map(str::to_string))
        .collect();
    let description = session
        .describe_prepared(&prepared, &declared)
        .expect("describe");
    let type_of = |field: &qubedb::arrow::datatypes::Field| {
        field
            .metadata()
            .get("qubedb.type")
            .cloned()
            .unwrap_or_else(|| field.data_type().to_string())
    };
    let parameters = description
        .parameters
        .iter()
        .map(|field| field.as_deref().map(type_of).unwrap_or("?".into()))
        .collect();
    let columns = description
        .columns
        .map(|schema| {
            schema
                .fields()
                .iter()
                .map(|field| format!("{} {}", field.name(), type_of(field)))
                .collect()
        })
        .unwrap_or_default();
    (parameters, columns)
}

#[test]
fn prepared_statements_describe_parameters_and_columns_without_running() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    session
        .execute(
            "CREATE TABLE kv (id INTEGER PRIMARY KEY, name VARCHAR(20), score DOUBLE PRECISION, \
             born DATE)",
            &[],
        )
        .expect("create");
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Compared with a column: the column's type; LIMIT: bigint; untyped: unknown (a server reports
    // text, as PostgreSQL resolves unknown).
    assert_eq!(
        describe(
            &mut session,
            "SELECT id, name AS n, $3 FROM kv WHERE id = $1 AND score > $2 LIMIT $4",
            &[]
        ),
        (
            strings(&["integer", "double precision", "?", "Int64"]),
            strings(&["id integer", "n character varying(20)", "?column? Null"])
        )
    );
    // Declared types win; casts type a parameter.
    let (parameters, _) = describe(
        &mut session,
        "SELECT * FROM kv WHERE born = $1::date AND id = $2",
        &[None, Some("bigint")],
    );
    assert_eq!(parameters, strings(&["Date32", "Int64"]));
    // Stored into a column: the column's type; RETURNING describes the returned columns.
    assert_eq!(
        describe(
            &mut session,
            "INSERT INTO kv (born, id) VALUES ($1, $2) RETURNING id, born",
            &[]
        ),
        (
            strings(&["date", "integer"]),
            strings(&["id integer", "born date"])
        )
    );
    assert_eq!(
        describe(&mut session, "UPDATE kv SET name = $1 WHERE id = $2", &[]),
        (strings(&["character varying(20)", "integer"]), vec![])
    );
    assert_eq!(
        describe(
            &mut session,
            "DELETE FROM kv WHERE name LIKE $1 RETURNING score",
            &[]
        ),
        (
            strings(&["character varying(20)"]),
            strings(&["score double precision"])
        )
    );
    assert_eq!(
        describe(&mut session, "SHOW TimeZone", &[]),
        (vec![], strings(&["timezone Utf8"]))
    );
    // Describing runs nothing and leaves no transaction open.
    assert!(!session.in_transaction());
    let count = session
        .query("SELECT count(*) FROM kv", &[])
        .expect("count")
        .rows()
        .expect("rows");
    assert_eq!(count[0].get::<i64>(0).expect("count"), 0);
    // A missing table is reported when describing, as PostgreSQL reports it at Parse.
    let prepared = session.prepare("SELECT * FROM missing").expect("prepare");
    let error = session
        .describe_prepared(&prepared, &[])
        .expect_err("missing table");
    assert_eq!(error.code, "42P01");
}

/// Every row of a query's result in text form (NULL as `None`).
fn text_rows(session: &mut qubedb::Session, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut result = session.query(sql, &[]).expect("query");
    let mut rows = Vec::new();
    while let Some(batch) = result.next_batch().expect("rows") {
        rows.extend(qubedb::result::batch_text_rows(&batch));
    }
    rows
}

fn scalar_text(session: &mut qubedb::Session, sql: &str) -> String {
    let rows = session
        .query(sql, &[])
        .expect("query")
        .rows()
        .expect("rows");
    rows[0].get::<String>(0).expect("text")
}

#[test]
fn a_first_open_interrupted_half_way_is_completed_by_the_next() {
    let directory = tempfile::tempdir().expect("tempdir");
    // A process killed while building the folder of other databases leaves only its staging folder.
    std::fs::create_dir_all(directory.path().join("databases.new/5.new")).expect("leftover");
    let cluster = qubedb::Cluster::open(directory.path()).expect("cluster");
    let names: Vec<String> = cluster.databases().into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["postgres", "qubedb"]);
    let mut session = cluster.database("postgres").expect("postgres").session();
    assert_eq!(
        scalar_text(&mut session, "SELECT current_database()"),
        "postgres"
    );
    assert!(!directory.path().join("databases.new").exists());
}

#[test]
fn a_data_directory_holds_isolated_databases() {
    let directory = tempfile::tempdir().expect("tempdir");
    {
        let cluster = qubedb::Cluster::open(directory.path()).expect("cluster");
        let names: Vec<String> = cluster.databases().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["postgres", "qubedb"]);
        let mut default = cluster.default_database().expect("qubedb").session();
        default
            .run("CREATE DATABASE shop")
            .expect("create database");
        let error = default.run("CREATE DATABASE shop").expect_err("exists");
        assert_eq!(
            (error.code, error.message.as_str()),
            ("42P04", "database \"shop\" already exists")
        );
        default
            .run("CREATE DATABASE IF NOT EXISTS shop")
            .expect("if not exists");
        default
            .run("CREATE DATABASE \"Two Words\" WITH OWNER = qubedb TEMPLATE template0 ENCODING 'UTF8' LOCALE = 'C'")
            .expect("options of pg_dump");
        let error = default
            .run("CREATE DATABASE latin ENCODING 'LATIN1'")
            .expect_err("encoding");
        assert_eq!(error.code, "0A000");
        let error = default
            .run("BEGIN; CREATE DATABASE inside")
            .expect_err("in a block");
        assert_eq!(error.code, "25001");
        default.run("ROLLBACK").expect("rollback");
        default
            .run("CREATE TABLE t (id INT PRIMARY KEY)")
            .expect("table in qubedb");

        let shop = cluster.database("shop").expect("shop");
        let mut session = shop.session();
        assert_eq!(
            scalar_text(&mut session, "SELECT current_database()"),
            "shop"
        );
        // Isolated: the table of `qubedb` does not exist here.
        let error = session.run("SELECT * FROM t").expect_err("isolated");
        assert_eq!(error.code, "42P01");
        session
            .run("CREATE TABLE items (id INT PRIMARY KEY); INSERT INTO items VALUES (7)")
            .expect("items");
        assert_eq!(
            scalar_text(
                &mut session,
                "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"
            ),
            "Two Words,postgres,qubedb,shop"
        );
        // In use: not dropped. The current database: never.
        let error = default.run("DROP DATABASE shop").expect_err("in use");
        assert_eq!(error.code, "55006");
        let error = session.run("DROP DATABASE shop").expect_err("current");
        assert_eq!(error.message, "cannot drop the currently open database");
        let error = session.run("DROP DATABASE qubedb").expect_err("default");
        assert_eq!(error.code, "55006");
        default
            .run("DROP DATABASE \"Two Words\"")
            .expect("drop unused");
        let error = default
            .run("DROP DATABASE \"Two Words\"")
            .expect_err("gone");
        assert_eq!(
            (error.code, error.message.as_str()),
            ("3D000", "database \"Two Words\" does not exist")
        );
        default
            .run("DROP DATABASE IF EXISTS \"Two Words\"")
            .expect("if exists");
        let error = cluster.database("nope").err().expect("unknown");
        assert_eq!(error.code, "3D000");
    }
    // After a reopen: the databases and their data are there; an interrupted CREATE left nothing.
    std::fs::create_dir_all(directory.path().join("databases/99999.new")).expect("leftover");
    let cluster = qubedb::Cluster::open(directory.path()).expect("reopen");
    let names: Vec<String> = cluster.databases().into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["postgres", "qubedb", "shop"]);
    assert!(!directory.path().join("databases/99999.new").exists());
    let mut session = cluster.database("shop").expect("shop").session();
    assert_eq!(scalar_text(&mut session, "SELECT id::text FROM items"), "7");
    drop(session);
    let mut default = cluster.default_database().expect("qubedb").session();
    default.run("DROP DATABASE shop").expect("drop once unused");
    // In memory: the same, without files.
    let memory = qubedb::Cluster::open_in_memory().expect("in memory");
    let mut session = memory.database("postgres").expect("postgres").session();
    session.run("CREATE DATABASE scratch").expect("create");
    let mut scratch = memory.database("scratch").expect("scratch").session();
    scratch
        .run("CREATE TABLE x (a INT); INSERT INTO x VALUES (1)")
        .expect("x");
    drop(scratch);
    let mut scratch = memory.database("scratch").expect("scratch again").session();
    assert_eq!(scalar_text(&mut scratch, "SELECT a::text FROM x"), "1");
}

#[test]
fn roles_carry_privileges_and_store_only_scram_verifiers() {
    let cluster = qubedb::Cluster::open_in_memory().expect("cluster");
    let database = cluster.default_database().expect("qubedb");
    let mut admin = database.session();
    admin
        .run("CREATE ROLE maker LOGIN CREATEROLE PASSWORD 'pencil'; CREATE ROLE root SUPERUSER LOGIN; CREATE ROLE plain LOGIN")
        .expect("roles");
    // The password is stored as a verifier that checks against the password, never as the password.
    let stored = cluster
        .role("maker")
        .and_then(|role| role.password)
        .expect("verifier");
    assert!(!stored.contains("pencil"), "{stored}");
    let verifier = qubedb::ScramVerifier::parse(&stored).expect("parses");
    let again = qubedb::ScramVerifier::derive("pencil", verifier.salt.clone(), verifier.iterations);
    assert_eq!(again, verifier);

    let mut maker = database.session();
    maker.set_user("maker");
    maker
        .run("CREATE ROLE helper")
        .expect("CREATEROLE creates roles");
    let denied = |session: &mut qubedb::Session, sql: &str| {
        let error = session.run(sql).expect_err(sql);
        (error.code, error.message)
    };
    assert_eq!(
        denied(&mut maker, "CREATE ROLE boss SUPERUSER"),
        ("42501", "permission denied to grant SUPERUSER".to_string())
    );
    assert_eq!(
        denied(&mut maker, "ALTER ROLE root NOLOGIN"),
        (
            "42501",
            "permission denied to alter role \"root\"".to_string()
        )
    );
    assert_eq!(
        denied(&mut maker, "CREATE DATABASE mine"),
        ("42501", "permission denied to create database".to_string())
    );
    maker
        .run("ALTER ROLE helper LOGIN")
        .expect("manages non-superusers");
    let mut plain = database.session();
    plain.set_user("plain");
    plain
        .run("ALTER ROLE plain PASSWORD 'mine'")
        .expect("own password");
    assert_eq!(denied(&mut plain, "ALTER ROLE plain CREATEDB").0, "42501");
    assert_eq!(denied(&mut plain, "CREATE ROLE other").0, "42501");
    assert_eq!(denied(&mut plain, "DROP ROLE helper").0, "42501");
    let mut root = database.session();
    root.set_user("root");
    assert_eq!(
        denied(&mut root, "DROP ROLE qubedb"),
        (
            "2BP01",
            "cannot drop role qubedb because it is required by the database system".to_string()
        )
    );
    assert_eq!(
        denied(&mut root, "ALTER ROLE qubedb NOSUPERUSER").0,
        "42501"
    );
    root.run("DROP ROLE helper, plain").expect("drop");
    assert!(cluster.role("plain").is_none());
}

#[test]
fn statements_raise_notices_as_postgresql_does() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    let notices = |session: &mut qubedb::Session, sql: &str| -> Vec<String> {
        session
            .run(sql)
            .expect(sql)
            .into_iter()
            .flat_map(|outcome| outcome.notices)
            .map(|notice| format!("{} {} {}", notice.severity, notice.code, notice.message))
            .collect()
    };
    assert_eq!(
        notices(&mut session, "DROP TABLE IF EXISTS nope"),
        ["NOTICE 00000 table \"nope\" does not exist, skipping"]
    );
    session.run("CREATE TABLE t (a INT)").expect("create");
    assert_eq!(
        notices(
            &mut session,
            "CREATE TABLE IF NOT EXISTS t (a INT); ALTER TABLE t ADD COLUMN IF NOT EXISTS a INT"
        ),
        [
            "NOTICE 42P07 relation \"t\" already exists, skipping",
            "NOTICE 42701 column \"a\" of relation \"t\" already exists, skipping"
        ]
    );
    assert_eq!(
        notices(&mut session, "COMMIT; BEGIN; BEGIN; ROLLBACK; ROLLBACK"),
        [
            "WARNING 25P01 there is no transaction in progress",
            "WARNING 25001 there is already a transaction in progress",
            "WARNING 25P01 there is no transaction in progress"
        ]
    );
    assert_eq!(
        notices(
            &mut session,
            "DROP ROLE IF EXISTS ghost; CREATE SCHEMA IF NOT EXISTS public; DROP DATABASE IF EXISTS ghost"
        ),
        [
            "NOTICE 00000 role \"ghost\" does not exist, skipping",
            "NOTICE 42P06 schema \"public\" already exists, skipping",
            "NOTICE 3D000 database \"ghost\" does not exist, skipping"
        ]
    );
    // A failed statement's notices are not reported.
    assert!(
        session
            .run("DROP TABLE IF EXISTS nope, t, also_missing_but_then_error; SELECT 1/0")
            .is_err()
    );
}

/// The rows of a prepared statement as text, with the command tag.
fn prepared_text(
    session: &mut qubedb::Session,
    prepared: &qubedb::PreparedStatement,
    params: &[Param],
) -> (String, Vec<Vec<Option<String>>>) {
    let mut result = session
        .execute_prepared(prepared, params)
        .expect("prepared statement runs");
    let mut rows = Vec::new();
    while let Some(batch) = result.next_batch().expect("rows") {
        rows.extend(qubedb::result::batch_text_rows(&batch));
    }
    (result.tag(), rows)
}

#[test]
fn point_statements_take_the_fast_path_with_the_general_paths_results() {
    let database = Database::open_in_memory().expect("database");
    let statements = [
        ("INSERT INTO kv VALUES ($1, $2, $3)", 3),
        ("SELECT name, score FROM kv WHERE id = $1", 1),
        ("UPDATE kv SET score = score + $1 WHERE id = $2", 2),
        ("SELECT * FROM kv WHERE id = $1", 1),
        ("DELETE FROM kv WHERE id = $1", 1),
    ];
    let mut transcripts = Vec::new();
    for fast_path in ["on", "off"] {
        let mut session = database.session();
        session
            .run(&format!(
                "DROP TABLE IF EXISTS kv; CREATE TABLE kv (id INTEGER PRIMARY KEY, name TEXT, score INTEGER); SET qubedb.fast_path = {fast_path}"
            ))
            .expect("setup");
        let prepared: Vec<qubedb::PreparedStatement> = statements
            .iter()
            .map(|(sql, _)| session.prepare(sql).expect("prepare"))
            .collect();
        let mut transcript = Vec::new();
        for id in 1..=20i64 {
            let params: [Vec<Param>; 5] = [
                vec![
                    id.into(),
                    Param::Text(format!("name-{id}")),
                    (id * 7).into(),
                ],
                vec![(id / 2).into()],
                vec![3.into(), (id - 1).into()],
                vec![(id - 1).into()],
                vec![(id - 2).into()],
            ];
            for (statement, params) in prepared.iter().zip(&params) {
                transcript.push(prepared_text(&mut session, statement, params));
            }
        }
        // Type mismatches and errors behave the same way on both paths.
        let duplicate = session
            .execute_prepared(&prepared[0], &[20.into(), "again".into(), 1.into()])
            .err()
            .expect("duplicate key");
        transcript.push((duplicate.code.to_string(), Vec::new()));
        let range = session
            .execute_prepared(
                &prepared[0],
                &[Param::Integer(1 << 40), "big".into(), 1.into()],
            )
            .err()
            .expect("out of range");
        transcript.push((range.code.to_string(), Vec::new()));
        transcript.push(prepared_text(&mut session, &prepared[1], &["19".into()]));
        if fast_path == "on" {
            assert!(
                session.fast_path_statements() >= 100,
                "point statements took the fast path: {}",
                session.fast_path_statements()
            );
        } else {
            assert_eq!(session.fast_path_statements(), 0);
        }
        transcripts.push(transcript);
    }
    assert_eq!(transcripts[0], transcripts[1]);
    assert!(
        transcripts[0]
            .iter()
            .any(|(tag, rows)| tag == "SELECT 1" && !rows.is_empty())
    );
}

#[test]
fn a_prepared_fast_statement_follows_catalog_changes() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    session
        .run("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t VALUES (1, 'x')")
        .expect("setup");
    let select = session
        .prepare("SELECT * FROM t WHERE id = $1")
        .expect("prepare");
    let (_, rows) = prepared_text(&mut session, &select, &[1.into()]);
    assert_eq!(rows, vec![vec![Some("1".into()), Some("x".into())]]);
    session
        .run("ALTER TABLE t ADD COLUMN b INTEGER DEFAULT 5")
        .expect("alter");
    let (_, rows) = prepared_text(&mut session, &select, &[1.into()]);
    assert_eq!(
        rows,
        vec![vec![Some("1".into()), Some("x".into()), Some("5".into())]]
    );
    // Inside a block, DDL of the block itself is seen, and rolled back with it.
    session
        .run("BEGIN; ALTER TABLE t DROP COLUMN a")
        .expect("drop column");
    let (_, rows) = prepared_text(&mut session, &select, &[1.into()]);
    assert_eq!(rows, vec![vec![Some("1".into()), Some("5".into())]]);
    session.run("ROLLBACK").expect("rollback");
    let (_, rows) = prepared_text(&mut session, &select, &[1.into()]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].len(), 3);
    session.run("DROP TABLE t").expect("drop");
    let error = session
        .execute_prepared(&select, &[1.into()])
        .err()
        .expect("table is gone");
    assert_eq!(error.code, "42P01");
}

#[test]
fn secondary_indexes_serve_equality_ranges_and_in_lists() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    session
        .run(
            "CREATE TABLE person (id INTEGER PRIMARY KEY, email TEXT UNIQUE, city TEXT, age INTEGER);
             CREATE INDEX person_city_age ON person (city, age);
             CREATE INDEX person_age ON person (age)",
        )
        .expect("create");
    let cases = [
        (
            "SELECT id FROM person WHERE email = 'a@x'",
            "KvScanExec: table=person, index person_email_key: point lookup (1 key)",
        ),
        (
            "SELECT id FROM person WHERE city = 'oslo'",
            "KvScanExec: table=person, index person_city_age: range scan (1 range, 1 key column fixed)",
        ),
        (
            "SELECT id FROM person WHERE city IN ('oslo', 'rome') AND age > 30",
            "KvScanExec: table=person, index person_city_age: range scan (2 ranges, 1 key column fixed)",
        ),
        (
            "SELECT id FROM person WHERE city = 'oslo' AND age = 40",
            "KvScanExec: table=person, index person_city_age: point lookup (1 key)",
        ),
        (
            "SELECT id FROM person WHERE age BETWEEN 20 AND 29",
            "KvScanExec: table=person, index person_age: range scan (1 range)",
        ),
        // The primary key wins over an index when it fixes the row.
        (
            "SELECT id FROM person WHERE id = 3 AND age = 40",
            "KvScanExec: table=person, point lookup (1 key)",
        ),
        // Only leading columns of an index help.
        (
            "SELECT id FROM person WHERE email > 'm' OR city = 'x'",
            "KvScanExec: table=person, full scan",
        ),
    ];
    assert_plans(&mut session, &cases);
    // The index paths return exactly what a full scan returns, inside a transaction's own writes too.
    session
        .run(
            "INSERT INTO person VALUES (1, 'a@x', 'oslo', 40), (2, 'b@x', 'rome', 25), (3, 'c@x', 'oslo', 31),
             (4, NULL, NULL, NULL), (5, 'e@x', 'rome', 40), (6, 'f@x', 'oslo', NULL)",
        )
        .expect("insert");
    session
        .run("BEGIN; UPDATE person SET age = 41 WHERE id = 1; DELETE FROM person WHERE id = 2; INSERT INTO person VALUES (7, 'g@x', 'oslo', 35)")
        .expect("changes in a block");
    let queries = [
        "SELECT id FROM person WHERE city = 'oslo' ORDER BY id",
        "SELECT id FROM person WHERE city IN ('oslo', 'rome') AND age > 30 ORDER BY id",
        "SELECT id FROM person WHERE age >= 35 ORDER BY id",
        "SELECT id FROM person WHERE age < 40 ORDER BY id",
        "SELECT id FROM person WHERE email = 'e@x'",
        "SELECT id FROM person WHERE city = 'oslo' AND age BETWEEN 31 AND 41 ORDER BY id",
    ];
    let expected = ["1,3,6,7", "1,3,5,7", "1,5,7", "3,7", "5", "1,3,7"];
    let ids = |session: &mut qubedb::Session, sql: &str| -> String {
        session
            .query(sql, &[])
            .expect("query")
            .rows()
            .expect("rows")
            .iter()
            .map(|row| row.get::<i64>(0).expect("id").to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    for (sql, expected) in queries.iter().zip(expected) {
        assert_eq!(ids(&mut session, sql), expected, "{sql}");
    }
    session.run("COMMIT").expect("commit");
    for (sql, expected) in queries.iter().zip(expected) {
        assert_eq!(ids(&mut session, sql), expected, "{sql} after commit");
    }
}

#[test]
fn order_by_reads_in_key_order_and_indexes_answer_alone() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    // `person` has indexes; `plain` holds the same rows with none, to compare answers with.
    session
        .run(
            "CREATE TABLE person (id INTEGER PRIMARY KEY, email TEXT UNIQUE, city TEXT, age INTEGER);
             CREATE INDEX person_city_age ON person (city, age);
             CREATE INDEX person_age ON person (age);
             CREATE TABLE plain (id INTEGER PRIMARY KEY, email TEXT, city TEXT, age INTEGER);
             INSERT INTO person SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'p' || g || '@x' END,
                 CASE g % 3 WHEN 0 THEN 'oslo' WHEN 1 THEN 'rome' ELSE NULL END,
                 CASE WHEN g % 7 = 0 THEN NULL ELSE 20 + g % 11 END
               FROM generate_series(1, 60) g;
             INSERT INTO plain SELECT * FROM person",
        )
        .expect("create");
    let cases = [
        (
            "SELECT * FROM person ORDER BY id LIMIT 5",
            "KvScanExec: table=person, full scan, projection=[id, email, city, age], limit=5",
        ),
        (
            "SELECT * FROM person ORDER BY id DESC LIMIT 5",
            "KvScanExec: table=person, full scan, backward, projection=[id, email, city, age], limit=5",
        ),
        (
            "SELECT id, email FROM person ORDER BY age, id LIMIT 7",
            "KvScanExec: table=person, index person_age: full scan, projection=[id, email, age]",
        ),
        (
            "SELECT id, age FROM person ORDER BY age DESC, id DESC LIMIT 7",
            "KvScanExec: table=person, index person_age: full scan, index only, backward",
        ),
        (
            "SELECT id, age FROM person WHERE age BETWEEN 22 AND 25 ORDER BY age, id",
            "KvScanExec: table=person, index person_age: range scan (1 range), index only",
        ),
        (
            "SELECT city, age FROM person WHERE city = 'oslo' ORDER BY age DESC LIMIT 3",
            "index person_city_age: range scan (1 range, 1 key column fixed), index only, backward",
        ),
        (
            "SELECT email FROM person ORDER BY email LIMIT 4",
            "KvScanExec: table=person, index person_email_key: full scan, index only",
        ),
        // Without a LIMIT a sort of the table beats a primary-key lookup per row.
        (
            "SELECT id, email FROM person ORDER BY age",
            "SortExec: expr=[age@",
        ),
        // A point lookup by the primary key is not given up for an order.
        (
            "SELECT id FROM person WHERE id = 3 ORDER BY age LIMIT 1",
            "KvScanExec: table=person, point lookup (1 key)",
        ),
    ];
    assert_plans(&mut session, &cases);
    let queries = [
        "SELECT * FROM person ORDER BY id LIMIT 5",
        "SELECT * FROM person ORDER BY id DESC LIMIT 5",
        "SELECT id, email FROM person ORDER BY age, id LIMIT 7",
        "SELECT id, age FROM person ORDER BY age DESC, id DESC LIMIT 7",
        "SELECT id, age FROM person ORDER BY age DESC NULLS LAST, id LIMIT 7",
        "SELECT id, age FROM person WHERE age BETWEEN 22 AND 25 ORDER BY age, id",
        "SELECT city, age, id FROM person WHERE city = 'oslo' ORDER BY age DESC, id DESC LIMIT 3",
        "SELECT city, age, id FROM person ORDER BY city, age, id LIMIT 25",
        "SELECT email FROM person ORDER BY email LIMIT 4",
        "SELECT email FROM person ORDER BY email DESC LIMIT 14",
        "SELECT id FROM person WHERE age > 24 AND city IS NOT NULL ORDER BY age, id LIMIT 6",
        "SELECT age, count(*) FROM person GROUP BY age ORDER BY age",
    ];
    let compare = |session: &mut qubedb::Session, when: &str| {
        for sql in queries {
            let expected = text_rows(session, &sql.replace("person", "plain"));
            assert!(!expected.is_empty(), "{sql}: no rows");
            assert_eq!(text_rows(session, sql), expected, "{sql} ({when})");
        }
    };
    compare(&mut session, "committed rows");
    // The transaction's own writes are merged in key order too.
    session
        .run(
            "BEGIN;
             UPDATE person SET age = 99, city = 'oslo' WHERE id IN (4, 8);
             UPDATE plain SET age = 99, city = 'oslo' WHERE id IN (4, 8);
             DELETE FROM person WHERE id IN (1, 60); DELETE FROM plain WHERE id IN (1, 60);
             INSERT INTO person VALUES (0, 'a@x', 'oslo', 20), (61, NULL, NULL, NULL);
             INSERT INTO plain VALUES (0, 'a@x', 'oslo', 20), (61, NULL, NULL, NULL)",
        )
        .expect("changes in a block");
    compare(&mut session, "inside a block");
    session.run("COMMIT").expect("commit");
    compare(&mut session, "after commit");
}

#[test]
fn analyze_statistics_choose_the_join_build_side() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    session
        .run(
            "CREATE TABLE big (id INTEGER PRIMARY KEY, small_id INTEGER, v TEXT);
             CREATE TABLE small (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO big SELECT g, g % 10, 'v' || g FROM generate_series(1, 3000) g;
             INSERT INTO small SELECT g, 'n' || g FROM generate_series(1, 10) g",
        )
        .expect("create");
    let query = "SELECT count(*) FROM big JOIN small ON big.small_id = small.id";
    // Without statistics DataFusion cannot tell the sides apart and partitions both.
    assert_plans(&mut session, &[(query, "HashJoinExec: mode=Partitioned")]);
    session.run("ANALYZE").expect("analyze");
    // With them, the small table is the hash table every partition of the big one probes.
    let explained = plan(&mut session, query);
    assert!(
        explained.contains("HashJoinExec: mode=CollectLeft"),
        "{explained}"
    );
    let small = explained.find("table=small").expect("small is scanned");
    let big = explained.find("table=big").expect("big is scanned");
    assert!(small < big, "small is the build (left) side:\n{explained}");
    let outcome = session
        .query(query, &[])
        .expect("join")
        .rows()
        .expect("rows");
    assert_eq!(outcome[0].get::<i64>(0).expect("count"), 2700);
}

#[test]
fn expression_partial_and_covering_indexes_answer_like_the_table() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    // `stock` has an expression, a partial and a covering index; `plain` the same rows and none.
    session
        .run(
            "CREATE TABLE stock (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, done BOOLEAN);
             CREATE TABLE plain (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, done BOOLEAN);
             INSERT INTO stock SELECT g, CASE WHEN g % 9 = 0 THEN NULL ELSE 'Item' || (g % 13) END,
                 CASE WHEN g % 11 = 0 THEN NULL ELSE g % 17 END, g % 4 = 0
               FROM generate_series(1, 400) g;
             INSERT INTO plain SELECT * FROM stock;
             CREATE INDEX stock_lower ON stock (lower(name));
             CREATE INDEX stock_sum ON stock ((qty + id), id);
             CREATE INDEX stock_open ON stock (qty) WHERE NOT done;
             CREATE INDEX stock_big ON stock (qty) WHERE qty > 10;
             CREATE INDEX stock_name ON stock (name) INCLUDE (qty)",
        )
        .expect("create");
    let cases = [
        (
            "SELECT id FROM stock WHERE lower(name) = 'item7'",
            "KvScanExec: table=stock, index stock_lower: point lookup (1 key)",
        ),
        // EXPLAIN shows the predicates the ranges come from.
        (
            "SELECT id FROM stock WHERE lower(name) = 'item7'",
            "key=(lower(name) = 'item7')",
        ),
        (
            "SELECT id FROM stock WHERE qty + id = 40 AND id > 3",
            "key=((qty + id) = 40 AND id > 3)",
        ),
        (
            "SELECT id FROM stock WHERE lower(name) IN ('item7', 'item8')",
            "KvScanExec: table=stock, index stock_lower: point lookup (2 keys)",
        ),
        (
            "SELECT id FROM stock WHERE lower(name) > 'item5'",
            "KvScanExec: table=stock, index stock_lower: range scan (1 range)",
        ),
        (
            "SELECT id FROM stock WHERE qty + id = 40",
            "KvScanExec: table=stock, index stock_sum: range scan (1 range, 1 key column fixed)",
        ),
        (
            "SELECT id FROM stock WHERE qty = 3 AND NOT done",
            "KvScanExec: table=stock, index stock_open: point lookup (1 key)",
        ),
        // The predicate `qty > 10` follows from `qty = 12` and from `qty >= 14`.
        (
            "SELECT id FROM stock WHERE qty = 12",
            "KvScanExec: table=stock, index stock_big: point lookup (1 key)",
        ),
        (
            "SELECT id FROM stock WHERE qty >= 14",
            "KvScanExec: table=stock, index stock_big: range scan (1 range)",
        ),
        // Not implied: a partial index would miss rows.
        (
            "SELECT id FROM stock WHERE qty = 3",
            "KvScanExec: table=stock, full scan",
        ),
        (
            "SELECT id FROM stock WHERE qty >= 9",
            "KvScanExec: table=stock, full scan",
        ),
        (
            "SELECT name, qty FROM stock WHERE name = 'Item3'",
            "KvScanExec: table=stock, index stock_name: point lookup (1 key), index only",
        ),
    ];
    assert_plans(&mut session, &cases);
    let queries = [
        "SELECT id FROM stock WHERE lower(name) = 'item7' ORDER BY id",
        "SELECT id FROM stock WHERE lower(name) IN ('item7', 'item8') ORDER BY id",
        "SELECT id, name FROM stock WHERE lower(name) > 'item5' ORDER BY id",
        "SELECT id FROM stock WHERE qty + id IN (40, 42, 45) ORDER BY id",
        "SELECT id FROM stock WHERE qty + id BETWEEN 40 AND 60 AND id > 30 ORDER BY id",
        "SELECT id FROM stock WHERE qty = 3 AND NOT done ORDER BY id",
        "SELECT id FROM stock WHERE qty = 12 ORDER BY id",
        "SELECT id, qty FROM stock WHERE qty >= 14 ORDER BY id",
        "SELECT id FROM stock WHERE qty = 3 ORDER BY id",
        "SELECT name, qty FROM stock WHERE name = 'Item3' ORDER BY qty NULLS FIRST",
        "SELECT name, qty, id FROM stock WHERE name > 'Item5' ORDER BY name, id",
    ];
    let compare = |session: &mut qubedb::Session, when: &str| {
        for sql in queries {
            let expected = text_rows(session, &sql.replace("stock", "plain"));
            assert!(!expected.is_empty(), "{sql}: no rows ({when})");
            assert_eq!(text_rows(session, sql), expected, "{sql} ({when})");
        }
    };
    compare(&mut session, "committed rows");
    // Every kind of write keeps the entries in step: key and predicate columns change, rows come
    // and go, and a rolled-back change leaves nothing behind.
    let changes = "UPDATE stock SET name = 'ITEM7', qty = 12 WHERE id IN (3, 4, 5);
         UPDATE stock SET done = NOT done WHERE id % 10 = 1;
         UPDATE stock SET qty = qty + 1 WHERE id BETWEEN 100 AND 140;
         DELETE FROM stock WHERE id % 7 = 2;
         INSERT INTO stock VALUES (1000, 'item7', 3, false), (1001, NULL, 14, true), (1002, 'Item3', NULL, false)";
    session.run("BEGIN").expect("begin");
    session.run(changes).expect("changes in a block");
    session
        .run(&changes.replace("stock", "plain"))
        .expect("same changes");
    compare(&mut session, "inside a block");
    session.run("COMMIT").expect("commit");
    compare(&mut session, "after commit");
    session.run("BEGIN").expect("begin");
    session
        .run("UPDATE stock SET name = 'gone', qty = 99 WHERE id < 50; DELETE FROM stock WHERE id > 300")
        .expect("changes to roll back");
    session.run("ROLLBACK").expect("rollback");
    compare(&mut session, "after a rollback");
    // REINDEX rebuilds the same entries.
    session.run("REINDEX TABLE stock").expect("reindex");
    compare(&mut session, "after REINDEX");
}

#[test]
fn statistics_choose_between_an_index_and_the_table() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    session
        .run(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT, amount INTEGER);
             CREATE INDEX orders_status ON orders (status);
             CREATE INDEX orders_amount ON orders (amount);
             INSERT INTO orders SELECT g,
                 CASE WHEN g % 200 = 0 THEN 'lost' WHEN g % 20 = 0 THEN 'open' ELSE 'done' END,
                 (g * 7919) % 1000
               FROM generate_series(1, 4000) g",
        )
        .expect("create");
    let common = "SELECT count(*) FROM orders WHERE status = 'done'";
    let rare = "SELECT count(*) FROM orders WHERE status = 'lost'";
    let narrow = "SELECT count(*) FROM orders WHERE amount BETWEEN 10 AND 19";
    let wide = "SELECT count(*) FROM orders WHERE amount > 50";
    // Without statistics every index with a usable predicate is taken.
    assert_plans(
        &mut session,
        &[
            (common, "index orders_status: point lookup"),
            (wide, "index orders_amount: range scan"),
        ],
    );
    session.run("ANALYZE orders").expect("analyze");
    // With them, an index is read only when it selects few rows: 95% 'done' and 95% above 50 read
    // the table; 0.5% 'lost' and 1% between 10 and 19 read the index.
    assert_plans(
        &mut session,
        &[
            (common, "KvScanExec: table=orders, full scan"),
            (rare, "index orders_status: point lookup"),
            (narrow, "index orders_amount: range scan"),
            (narrow, "key=(amount >= 10 AND amount <= 19)"),
            (wide, "KvScanExec: table=orders, full scan"),
        ],
    );
    let count = |session: &mut qubedb::Session, sql: &str| -> String {
        text_rows(session, sql)[0][0].clone().expect("a count")
    };
    assert_eq!(count(&mut session, common), "3800");
    assert_eq!(count(&mut session, rare), "20");
    assert_eq!(count(&mut session, narrow), "40");
    assert_eq!(count(&mut session, wide), "3796");
}

#[test]
fn tables_are_analyzed_again_after_enough_changes() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    let reltuples = |session: &mut qubedb::Session| -> String {
        text_rows(
            session,
            "SELECT reltuples FROM pg_class WHERE relname = 'event'",
        )[0][0]
            .clone()
            .expect("reltuples")
    };
    session
        .run("CREATE TABLE event (id INTEGER PRIMARY KEY, kind TEXT)")
        .expect("create");
    // Fewer changed rows than the threshold (50): nothing is scheduled.
    session
        .run("INSERT INTO event SELECT g, 'a' FROM generate_series(1, 40) g")
        .expect("insert");
    database.wait_for_maintenance();
    assert_eq!(reltuples(&mut session), "-1");
    // Past it, the commit schedules an ANALYZE; a rolled-back block changes nothing.
    session.run("BEGIN").expect("begin");
    session
        .run("INSERT INTO event SELECT g, 'b' FROM generate_series(41, 1000) g")
        .expect("insert");
    session.run("ROLLBACK").expect("rollback");
    session
        .run("INSERT INTO event SELECT g, 'b' FROM generate_series(41, 1000) g")
        .expect("insert");
    database.wait_for_maintenance();
    assert_eq!(reltuples(&mut session), "1000");
    // Updates count too: 10% of the analyzed rows plus 50.
    session
        .run("UPDATE event SET kind = 'c' WHERE id <= 100")
        .expect("update");
    database.wait_for_maintenance();
    assert_eq!(reltuples(&mut session), "1000");
    session
        .run("DELETE FROM event WHERE id > 900")
        .expect("delete");
    database.wait_for_maintenance();
    assert_eq!(reltuples(&mut session), "900");
    let mut result = session
        .query(
            "SELECT most_common_vals FROM pg_stats WHERE tablename = 'event' AND attname = 'kind'",
            &[],
        )
        .expect("pg_stats");
    let batch = result.next_batch().expect("rows").expect("a row");
    assert_eq!(
        qubedb::result::batch_text_rows(&batch)[0][0].as_deref(),
        Some("{b,c}")
    );
}

#[test]
fn prepared_queries_reuse_their_plans_and_answer_as_unprepared() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    session
        .run(
            "CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT, country TEXT, people BIGINT);
             CREATE TABLE country (code TEXT PRIMARY KEY, title TEXT);
             INSERT INTO country VALUES ('no', 'Norway'), ('it', 'Italy'), ('pe', 'Peru');
             INSERT INTO city SELECT g, 'c' || g, CASE g % 3 WHEN 0 THEN 'no' WHEN 1 THEN 'it' ELSE 'pe' END,
                 g * 1000 FROM generate_series(1, 90) g",
        )
        .expect("create");
    let rows = |result: &mut qubedb::QueryResult| -> Vec<Vec<Option<String>>> {
        let mut rows = Vec::new();
        while let Some(batch) = result.next_batch().expect("rows") {
            rows.extend(qubedb::result::batch_text_rows(&batch));
        }
        rows
    };
    // Each query with parameter sets, the parameters also written into the SQL for the unprepared run.
    let cases: Vec<(&str, Vec<Vec<Param>>)> = vec![
        (
            "SELECT id, name FROM city WHERE id BETWEEN $1 AND $2 ORDER BY id",
            vec![
                vec![Param::Integer(3), Param::Integer(7)],
                vec![Param::Integer(80), Param::Integer(200)],
                vec![Param::Integer(9), Param::Integer(1)],
                vec![Param::Null, Param::Integer(5)],
            ],
        ),
        (
            "SELECT t.title, count(*), sum(c.people) FROM city c JOIN country t ON c.country = t.code
             WHERE c.people > $1 AND t.title <> $2 GROUP BY t.title ORDER BY t.title",
            vec![
                vec![Param::Integer(10_000), Param::Text("Peru".into())],
                vec![Param::Integer(85_000), Param::Text("Italy".into())],
                // Text for a number: bound into the statement and planned afresh, same answer.
                vec![Param::Text("50000".into()), Param::Text("Norway".into())],
            ],
        ),
        (
            "SELECT name FROM city WHERE country = $1 AND id > $2 ORDER BY id DESC LIMIT 3",
            vec![
                vec![Param::Text("no".into()), Param::Integer(10)],
                vec![Param::Text("it".into()), Param::Integer(-5)],
            ],
        ),
    ];
    let literal = |param: &Param| match param {
        Param::Null => "NULL".to_string(),
        Param::Integer(value) => value.to_string(),
        Param::Text(text) => format!("'{text}'"),
        other => panic!("no literal for {other:?}"),
    };
    let mut executions = 0;
    for (sql, parameter_sets) in &cases {
        let prepared = session.prepare(sql).expect("prepare");
        for params in parameter_sets {
            let mut unprepared_sql = sql.to_string();
            for (position, param) in params.iter().enumerate().rev() {
                unprepared_sql =
                    unprepared_sql.replace(&format!("${}", position + 1), &literal(param));
            }
            let expected = rows(&mut session.query(&unprepared_sql, &[]).expect("unprepared"));
            let got = rows(
                &mut session
                    .execute_prepared(&prepared, params)
                    .expect("prepared"),
            );
            assert_eq!(got, expected, "{sql} with {params:?}");
            executions += 1;
        }
    }
    // Every execution but the one with a text for a number ran through a cached plan.
    assert_eq!(session.cached_plan_executions(), executions - 1);
    // DDL replans: a new index is used, a dropped column is an error, not a stale plan.
    let prepared = session
        .prepare("SELECT id FROM city WHERE people = $1")
        .expect("prepare");
    let run = |session: &mut qubedb::Session| {
        rows(
            &mut session
                .execute_prepared(&prepared, &[Param::Integer(42_000)])
                .expect("run"),
        )
    };
    assert_eq!(run(&mut session), vec![vec![Some("42".to_string())]]);
    session
        .run("CREATE INDEX city_people ON city (people); UPDATE city SET people = 42000 WHERE id = 43")
        .expect("index");
    assert_eq!(
        run(&mut session),
        vec![vec![Some("42".to_string())], vec![Some("43".to_string())]]
    );
    session
        .run("ALTER TABLE city DROP COLUMN people")
        .expect("drop column");
    let error = session
        .execute_prepared(&prepared, &[Param::Integer(42_000)])
        .err()
        .expect("the column is gone");
    assert_eq!(error.code, "42703", "{error}");
}

#[test]
fn row_locks_make_other_sessions_wait_fail_or_skip() {
    let database = Database::open_in_memory().expect("database");
    let mut first = database.session();
    let mut second = database.session();
    first
        .run(
            "CREATE TABLE job (id INTEGER PRIMARY KEY, state TEXT);
             INSERT INTO job VALUES (1, 'new'), (2, 'new'), (3, 'new')",
        )
        .expect("create");
    let ids = |session: &mut qubedb::Session, sql: &str| -> Vec<String> {
        text_rows(session, sql)
            .into_iter()
            .map(|row| row[0].clone().expect("an id"))
            .collect()
    };
    first.run("BEGIN").expect("begin");
    assert_eq!(
        ids(&mut first, "SELECT id FROM job WHERE id = 1 FOR UPDATE"),
        ["1"]
    );
    // NOWAIT fails at once; SKIP LOCKED takes the next free row.
    let error = second
        .query("SELECT id FROM job WHERE id <= 2 FOR UPDATE NOWAIT", &[])
        .err()
        .expect("row 1 is locked");
    assert_eq!(error.code, "55P03", "{error}");
    assert_eq!(
        ids(
            &mut second,
            "SELECT id FROM job ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
        ),
        ["2"]
    );
    // Writing a locked row waits too: NOWAIT on the row fails while the lock is held...
    second.run("BEGIN").expect("begin");
    let error = second
        .query("SELECT id FROM job WHERE id = 1 FOR SHARE NOWAIT", &[])
        .err()
        .expect("row 1 is locked");
    assert_eq!(error.code, "55P03", "{error}");
    second.run("ROLLBACK").expect("rollback");
    // ...and a plain FOR UPDATE waits for the holder, then sees the row as the holder left it.
    let waiter = {
        let database = database.clone();
        std::thread::spawn(move || {
            let mut session = database.session();
            session.run("BEGIN").expect("begin");
            let mut result = session
                .query("SELECT state FROM job WHERE id = 1 FOR UPDATE", &[])
                .expect("locked select");
            let batch = result.next_batch().expect("rows").expect("a row");
            let state = qubedb::result::batch_text_rows(&batch)[0][0].clone();
            session.run("COMMIT").expect("commit");
            state
        })
    };
    first
        .run("UPDATE job SET state = 'taken' WHERE id = 1; COMMIT")
        .expect("update and commit");
    assert_eq!(waiter.join().expect("waiter").as_deref(), Some("taken"));
    // Once the holder committed, the row is free.
    assert_eq!(
        ids(
            &mut second,
            "SELECT id FROM job WHERE id = 1 FOR UPDATE NOWAIT"
        ),
        ["1"]
    );
}

#[test]
fn jsonb_indexes_are_read_and_answer_like_the_table() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    // `docs` has GIN and expression indexes; `plain` the same documents and none.
    session
        .run(
            "CREATE TABLE docs (id INTEGER PRIMARY KEY, doc JSONB);
             CREATE TABLE plain (id INTEGER PRIMARY KEY, doc JSONB);
             INSERT INTO docs SELECT g, jsonb_build_object(
                 'user', jsonb_build_object('name', 'u' || g, 'age', 20 + g % 50,
                                            'city', CASE WHEN g % 10 = 0 THEN 'Paris' ELSE 'Rome' END),
                 'tags', jsonb_build_array('t' || (g % 7), 't' || (g % 3)),
                 'amount', g % 100)
               FROM generate_series(1, 600) g;
             INSERT INTO docs VALUES (601, '[1, \"Paris\"]'), (602, '\"Paris\"'), (603, NULL), (604, '{}'),
               (605, '{\"user\": [{\"city\": \"Paris\"}]}'), (606, '[{\"user\": {\"city\": \"Paris\"}}]'),
               (607, '{\"user\": {\"city\": [\"Paris\"]}}'), (608, '{\"tags\": [[\"t3\", \"t0\"]]}'),
               (609, '{\"user\": {\"city\": \"Paris\", \"zip\": 1.50}, \"tags\": \"t3\"}');
             INSERT INTO plain SELECT * FROM docs;
             CREATE INDEX docs_gin ON docs USING gin (doc);
             CREATE INDEX docs_path ON docs USING gin (doc jsonb_path_ops);
             CREATE INDEX docs_city ON docs ((doc -> 'user' ->> 'city'));
             CREATE INDEX docs_age ON docs (((doc -> 'user' ->> 'age')::int))",
        )
        .expect("create");
    assert_plans(
        &mut session,
        &[
            (
                "SELECT id FROM docs WHERE doc @> '{\"user\": {\"city\": \"Paris\"}}'",
                "KvScanExec: table=docs, gin index docs_",
            ),
            (
                "SELECT id FROM docs WHERE doc ? 'tags'",
                "gin index docs_gin",
            ),
            // jsonb_path_ops spells paths out: a containment of an object whose arrays hold
            // scalars needs no recheck, and a count reads no row.
            (
                "SELECT count(*) FROM docs WHERE doc @> '{\"user\": {\"city\": \"Paris\"}}'",
                "gin index docs_path: point lookup (61 keys), index only, projection=[]",
            ),
            (
                "SELECT id FROM docs WHERE doc @> '{\"tags\": [\"t3\", \"t0\"]}'",
                "gin index docs_path: point lookup (29 keys), projection=[id]",
            ),
            // An array of objects may match in different elements: rechecked.
            (
                "SELECT count(*) FROM docs WHERE doc @> '{\"user\": [{\"city\": \"Paris\"}]}'",
                "gin index docs_path: point lookup (1 key), projection=[doc]",
            ),
            (
                "SELECT id FROM docs WHERE doc -> 'user' ->> 'city' = 'Paris'",
                "index docs_city: point lookup (1 key)",
            ),
            (
                "SELECT id FROM docs WHERE (doc -> 'user' ->> 'age')::int BETWEEN 30 AND 35",
                "index docs_age: range scan (1 range)",
            ),
            // Equality on a key part is left to the scan: counted from the index entries alone.
            (
                "SELECT count(*) FROM docs WHERE doc -> 'user' ->> 'city' = 'Paris'",
                "index docs_city: point lookup (1 key), index only, projection=[]",
            ),
            (
                "SELECT id FROM docs WHERE doc -> 'user' ->> 'city' IN ('Paris', 'Oslo')",
                "index docs_city: point lookup (2 keys), index only, projection=[id]",
            ),
            // Read through another index, the scan evaluates the equality itself.
            (
                "SELECT id FROM docs WHERE (doc -> 'user' ->> 'age')::int = 30 \
                 AND doc -> 'user' ->> 'city' = 'Paris'",
                "index docs_city: point lookup (1 key), projection=[id], key=((doc -> 'user' ->> 'city') \
                 = 'Paris'), filter=(CAST(qubedb_jsonb_keys_text(doc@1, user, age) AS Int32) = 30)",
            ),
        ],
    );
    let queries = [
        "doc @> '{\"user\": {\"city\": \"Paris\"}}'",
        "doc @> '{\"tags\": [\"t3\", \"t0\"]}'",
        "doc @> '[\"Paris\"]'",
        "doc @> '\"Paris\"'",
        "doc @> '{}'",
        "doc @> '{\"amount\": 7.0}'",
        "doc @> '{\"user\": {\"city\": \"Paris\", \"zip\": 1.5}}'",
        "doc @> '{\"user\": [{\"city\": \"Paris\"}]}'",
        "doc @> '{\"user\": {\"city\": [\"Paris\"]}}'",
        "doc @> '{\"tags\": [[\"t3\"]]}'",
        "doc @> '{\"tags\": \"t3\"}'",
        "doc @> '{\"tags\": [\"t3\"]}' AND id > 590",
        "doc ? 'tags'",
        "doc ? 'Paris'",
        "doc ?| '{amount,nope}'",
        "doc ?& '{user,tags}'",
        "doc -> 'user' ->> 'city' = 'Paris'",
        "(doc -> 'user' ->> 'age')::int BETWEEN 30 AND 35",
        "doc @> '{\"user\": {\"city\": \"Paris\"}}' AND doc ? 'amount'",
        "doc -> 'user' ->> 'city' = 'Rome'",
        "doc -> 'user' ->> 'city' IN ('Paris', 'Oslo')",
        "doc -> 'user' ->> 'city' = 'Paris' OR doc -> 'user' ->> 'city' = 'Rome'",
        "(doc -> 'user' ->> 'age')::int = 30 AND doc -> 'user' ->> 'city' = 'Paris'",
        "(doc -> 'user' ->> 'age')::int = 30.5",
        "(doc -> 'user' ->> 'age')::int IN (30, 31) AND doc ->> 'amount' = '10'",
        "doc -> 'user' ->> 'city' = 'Paris' AND id > 300",
    ];
    let check = |session: &mut qubedb::Session| {
        for condition in queries {
            for shape in [
                "SELECT id FROM {t} WHERE {c} ORDER BY id",
                "SELECT count(*) FROM {t} WHERE {c}",
                "SELECT id FROM {t} WHERE {c} ORDER BY id DESC LIMIT 3",
                "SELECT doc -> 'user' ->> 'name' FROM {t} WHERE {c} ORDER BY 1 LIMIT 2",
                // A limit the scan applies after its own filters.
                "SELECT count(*) FROM (SELECT id FROM {t} WHERE {c} LIMIT 2) AS limited",
            ] {
                let query = |table: &str| shape.replace("{t}", table).replace("{c}", condition);
                let indexed = text_rows(session, &query("docs"));
                let scanned = text_rows(session, &query("plain"));
                assert_eq!(indexed, scanned, "{}", query("docs"));
            }
        }
        // With a parameter, bound after planning.
        let prepared = session
            .prepare("SELECT count(*) FROM docs WHERE doc -> 'user' ->> 'city' = $1")
            .expect("prepare");
        let expected = text_rows(
            session,
            "SELECT count(*) FROM plain WHERE doc -> 'user' ->> 'city' = 'Paris'",
        );
        let before = session.fast_path_statements();
        let (_, rows) = prepared_text(session, &prepared, &[Param::Text("Paris".into())]);
        assert_eq!(rows, expected);
        // Counted from the index entries by the fast path.
        assert_eq!(session.fast_path_statements(), before + 1);
    };
    check(&mut session);
    // Through writes, inside a block, and after a rollback.
    let writes = "UPDATE {t} SET doc = doc || '{\"user\": {\"city\": \"Paris\"}}' WHERE id % 7 = 0;
                  DELETE FROM {t} WHERE id % 11 = 0;
                  INSERT INTO {t} VALUES (700, '{\"tags\": [\"t3\", \"t0\"], \"amount\": 7}')";
    session.run("BEGIN").expect("begin");
    for table in ["docs", "plain"] {
        session.run(&writes.replace("{t}", table)).expect("writes");
    }
    check(&mut session);
    session.run("ROLLBACK").expect("rollback");
    check(&mut session);
    for table in ["docs", "plain"] {
        session.run(&writes.replace("{t}", table)).expect("writes");
    }
    check(&mut session);
    session.run("REINDEX TABLE docs").expect("reindex");
    check(&mut session);
    session.run("ANALYZE docs").expect("analyze");
    check(&mut session);
}

#[test]
fn temporary_tables_belong_to_their_session_and_end_with_it() {
    let directory = tempfile::tempdir().expect("tempdir");
    let temp_schemas = |session: &mut qubedb::Session| {
        scalar_text(
            session,
            "SELECT count(*)::text FROM pg_namespace WHERE nspname LIKE 'pg_temp_%'",
        )
    };
    {
        let database = qubedb::Database::open(directory.path()).expect("open");
        let mut first = database.session();
        let mut second = database.session();
        let mut third = database.session();
        first
            .run("CREATE TEMP TABLE notes (n int PRIMARY KEY); INSERT INTO notes VALUES (1)")
            .expect("the first session's temporary table");
        second
            .run("CREATE TEMP TABLE notes (n int PRIMARY KEY); INSERT INTO notes VALUES (2), (3)")
            .expect("the second session's table of the same name");
        assert_eq!(
            scalar_text(&mut first, "SELECT sum(n)::text FROM notes"),
            "1"
        );
        assert_eq!(
            scalar_text(&mut second, "SELECT sum(n)::text FROM notes"),
            "5"
        );
        // Point statements (the fast path) resolve the name the same way.
        assert_eq!(
            scalar_text(&mut second, "SELECT n::text FROM notes WHERE n = 3"),
            "3"
        );
        let error = third
            .run("SELECT * FROM notes")
            .expect_err("a third session has no such table");
        assert_eq!(error.code, "42P01");
        assert_eq!(temp_schemas(&mut third), "2");

        drop(first);
        assert_eq!(
            temp_schemas(&mut third),
            "1",
            "the ended session's schema is dropped"
        );
        assert_eq!(
            scalar_text(&mut second, "SELECT sum(n)::text FROM notes"),
            "5"
        );

        // A session that ends inside a block: its block rolls back, its table goes.
        second
            .run("BEGIN; INSERT INTO notes VALUES (4)")
            .expect("block");
        drop(second);
        assert_eq!(temp_schemas(&mut third), "0");

        // A session that ends while another holds the catalog in an open block still gives its schema
        // up at the latest when the database is opened again.
        let mut fourth = database.session();
        fourth
            .run("CREATE TEMP TABLE kept (x int); INSERT INTO kept VALUES (1)")
            .expect("fourth's table");
        third
            .run("BEGIN; CREATE TABLE holder (x int)")
            .expect("a block holding the catalog");
        drop(fourth);
        third.run("COMMIT").expect("commit");
    }
    let database = qubedb::Database::open(directory.path()).expect("reopen");
    let mut session = database.session();
    assert_eq!(temp_schemas(&mut session), "0");
    assert_eq!(
        scalar_text(&mut session, "SELECT count(*)::text FROM holder"),
        "0"
    );
}

#[test]
fn record_errors_keep_their_code_hint_and_detail_through_filters() {
    let database = qubedb::Database::open_in_memory().expect("open");
    let mut session = database.session();
    session
        .run(
            "CREATE DOMAIN small AS int CHECK (VALUE < 10);
             CREATE TYPE holder AS (n small, list int[], grid int[][])",
        )
        .expect("types");
    // The record's domain checks run in a filter: errors raised under it keep what they carry.
    let cases = [
        (
            r#"SELECT list FROM jsonb_populate_record(NULL::holder, '{"list": 5}') q"#,
            "22023",
            "expected JSON array",
            None,
            Some("See the value of key \"list\"."),
        ),
        (
            r#"SELECT grid FROM jsonb_populate_record(NULL::holder, '{"grid": [[1], 2]}') q"#,
            "22023",
            "expected JSON array",
            None,
            Some("See the array element [1] of key \"grid\"."),
        ),
        (
            r#"SELECT grid FROM jsonb_populate_record(NULL::holder, '{"grid": [[1], [2, 3]]}') q"#,
            "22P02",
            "malformed JSON array",
            Some("Multidimensional arrays must have sub-arrays with matching dimensions."),
            None,
        ),
        (
            r#"SELECT list FROM jsonb_populate_record(NULL::holder, '{"n": 12}') q"#,
            "23514",
            "value for domain small violates check constraint \"small_check\"",
            None,
            None,
        ),
    ];
    for (sql, code, message, detail, hint) in cases {
        let error = session.run(sql).expect_err(sql);
        assert_eq!(error.code, code, "{sql}");
        assert_eq!(error.message, message, "{sql}");
        assert_eq!(error.detail.as_deref(), detail, "{sql}");
        assert_eq!(error.hint.as_deref(), hint, "{sql}");
    }
}

#[test]
fn large_tables_are_scanned_in_two_partitions_with_the_same_answers() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    // 60,000 rows (PARALLEL_SCAN_ROWS_MIN is 50,000) and a GIN index with many candidates.
    session
        .run(
            "CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER, doc JSONB);
             INSERT INTO big SELECT g, g % 100, jsonb_build_object('a', g % 7)
               FROM generate_series(1, 60000) g;
             CREATE INDEX big_doc ON big USING gin (doc)",
        )
        .expect("create");
    let before = plan(&mut session, "SELECT count(*) FROM big WHERE v = 3");
    assert!(!before.contains("2 partitions"), "{before}");
    session.run("ANALYZE big").expect("analyze");
    assert_plans(
        &mut session,
        &[
            (
                "SELECT count(*) FROM big WHERE v = 3",
                "KvScanExec: table=big, full scan, projection=[v], 2 partitions",
            ),
            (
                "SELECT count(*) FROM big WHERE doc @> '{\"a\": 3}'",
                "gin index big_doc: point lookup (8572 keys), projection=[doc], 2 partitions",
            ),
            // In key order across the partitions.
            ("SELECT id FROM big ORDER BY id", "SortPreservingMergeExec"),
        ],
    );
    // A LIMIT reads one partition.
    let limited = plan(&mut session, "SELECT id FROM big LIMIT 5");
    assert!(!limited.contains("2 partitions"), "{limited}");
    let answers = |session: &mut qubedb::Session| {
        [
            "SELECT count(*), sum(id), min(id), max(id) FROM big WHERE v = 3",
            "SELECT count(*), sum(id) FROM big WHERE doc @> '{\"a\": 3}'",
            "SELECT sum(step), count(*) FROM \
               (SELECT id - lag(id) OVER (ORDER BY id) AS step FROM big) AS steps",
            "SELECT string_agg(id::text, ',') FROM (SELECT id FROM big ORDER BY id LIMIT 3) AS first",
            // Read backwards across batches.
            "SELECT sum(step), count(*) FROM \
               (SELECT id - lag(id) OVER (ORDER BY id DESC) AS step FROM big) AS steps",
        ]
        .map(|sql| text_rows(session, sql))
    };
    let text = |values: &[&str]| -> Vec<Vec<Option<String>>> {
        vec![values.iter().map(|value| Some(value.to_string())).collect()]
    };
    assert_eq!(
        answers(&mut session),
        [
            text(&["600", "17971800", "3", "59903"]),
            text(&["8572", "257172858"]),
            text(&["59999", "60000"]),
            text(&["1,2,3"]),
            text(&["-59999", "60000"]),
        ]
    );
    // The transaction's own writes are seen in both partitions.
    session
        .run("BEGIN; DELETE FROM big WHERE id % 2 = 0; UPDATE big SET v = 3 WHERE id > 59990")
        .expect("writes");
    assert_eq!(
        text_rows(
            &mut session,
            "SELECT count(*), sum(id) FROM big WHERE v = 3"
        ),
        text(&["605", "18271775"])
    );
    session.run("ROLLBACK").expect("rollback");
    assert_eq!(
        text_rows(&mut session, "SELECT count(*), sum(id) FROM big"),
        text(&["60000", "1800030000"])
    );
}
