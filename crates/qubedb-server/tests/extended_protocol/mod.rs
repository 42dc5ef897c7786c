//! The extended query protocol through tokio-postgres: statements described before they run (parameter
//! types inferred from their use), every type in binary both ways, NULLs, portals with row limits,
//! pipelining, transactions, and errors by SQLSTATE.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, NoTls};

use super::Running;

/// A client on the test's own runtime, its connection driven in the background.
async fn connect(running: &Running) -> Client {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=qubedb dbname=qubedb",
            running.port
        ),
        NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// `numeric` in binary, compared as bytes (tokio-postgres has no numeric type of its own).
#[derive(Debug, PartialEq)]
struct RawNumeric(Vec<u8>);

impl<'a> FromSql<'a> for RawNumeric {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> Result<RawNumeric, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawNumeric(raw.to_vec()))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn prepared_statements_round_trip_every_type_in_binary() {
    let directory = tempfile::tempdir().expect("tempdir");
    let running = Running::start(directory.path(), 10);
    runtime().block_on(async {
        let client = connect(&running).await;
        client
            .batch_execute(
                "CREATE TABLE everything (id INTEGER PRIMARY KEY, small SMALLINT, big BIGINT, \
                 single REAL, double DOUBLE PRECISION, amount NUMERIC(10,2), name VARCHAR(20), \
                 body TEXT, flag BOOLEAN, data BYTEA, day DATE, at TIMESTAMP, \
                 at_zone TIMESTAMPTZ, clock TIME, id2 UUID, doc JSONB)",
            )
            .await
            .expect("create");
        // Parameter types come from the columns the values go into.
        let insert = client
            .prepare(
                "INSERT INTO everything (id, small, big, single, double, name, body, flag, data, \
                 day, at, at_zone, clock, id2, doc, amount) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                 $8, $9, $10, $11, $12, $13, $14, $15, 12.5)",
            )
            .await
            .expect("prepare insert");
        assert_eq!(
            insert.params(),
            &[
                Type::INT4,
                Type::INT2,
                Type::INT8,
                Type::FLOAT4,
                Type::FLOAT8,
                Type::VARCHAR,
                Type::TEXT,
                Type::BOOL,
                Type::BYTEA,
                Type::DATE,
                Type::TIMESTAMP,
                Type::TIMESTAMPTZ,
                Type::TIME,
                Type::UUID,
                Type::JSONB
            ]
        );
        let day = NaiveDate::from_ymd_opt(1999, 12, 31).expect("date");
        let at = NaiveDateTime::new(
            NaiveDate::from_ymd_opt(2024, 2, 29).expect("date"),
            NaiveTime::from_hms_micro_opt(13, 14, 15, 123_456).expect("time"),
        );
        let at_zone = at.and_utc();
        let clock = NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).expect("time");
        let id2 = uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").expect("uuid");
        let doc = serde_json::json!({"a": [1, 2.5, "x"], "b": null});
        let count = client
            .execute(
                &insert,
                &[
                    &1i32,
                    &-7i16,
                    &(1i64 << 40),
                    &1.5f32,
                    &-2.25e-10f64,
                    &"vär",
                    &"it's \"quoted\"",
                    &true,
                    &vec![0u8, 1, 255],
                    &day,
                    &at,
                    &at_zone,
                    &clock,
                    &id2,
                    &doc,
                ],
            )
            .await
            .expect("insert");
        assert_eq!(count, 1);
        // NULL in every position.
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&2i32];
        let none_small: Option<i16> = None;
        let none_big: Option<i64> = None;
        let none_single: Option<f32> = None;
        let none_double: Option<f64> = None;
        let none_text: Option<&str> = None;
        let none_flag: Option<bool> = None;
        let none_data: Option<Vec<u8>> = None;
        let none_day: Option<NaiveDate> = None;
        let none_at: Option<NaiveDateTime> = None;
        let none_zone: Option<chrono::DateTime<chrono::Utc>> = None;
        let none_clock: Option<NaiveTime> = None;
        let none_uuid: Option<uuid::Uuid> = None;
        let none_doc: Option<serde_json::Value> = None;
        params.extend([
            &none_small as &(dyn tokio_postgres::types::ToSql + Sync),
            &none_big,
            &none_single,
            &none_double,
            &none_text,
            &none_text,
            &none_flag,
            &none_data,
            &none_day,
            &none_at,
            &none_zone,
            &none_clock,
            &none_uuid,
            &none_doc,
        ]);
        client.execute(&insert, &params).await.expect("insert nulls");

        // Results come back in binary; the WHERE parameter is typed by the column it meets.
        let select = client
            .prepare("SELECT * FROM everything WHERE id = $1")
            .await
            .expect("prepare select");
        assert_eq!(select.params(), &[Type::INT4]);
        let types: Vec<Type> = select
            .columns()
            .iter()
            .map(|column| column.type_().clone())
            .collect();
        assert_eq!(
            types,
            vec![
                Type::INT4,
                Type::INT2,
                Type::INT8,
                Type::FLOAT4,
                Type::FLOAT8,
                Type::NUMERIC,
                Type::VARCHAR,
                Type::TEXT,
                Type::BOOL,
                Type::BYTEA,
                Type::DATE,
                Type::TIMESTAMP,
                Type::TIMESTAMPTZ,
                Type::TIME,
                Type::UUID,
                Type::JSONB
            ]
        );
        let row = client.query_one(&select, &[&1i32]).await.expect("row 1");
        assert_eq!(row.get::<_, i32>("id"), 1);
        assert_eq!(row.get::<_, i16>("small"), -7);
        assert_eq!(row.get::<_, i64>("big"), 1 << 40);
        assert_eq!(row.get::<_, f32>("single"), 1.5);
        assert_eq!(row.get::<_, f64>("double"), -2.25e-10);
        // 12.50: one digit group before the point (12), one after (5000), display scale 2.
        assert_eq!(
            row.get::<_, RawNumeric>("amount"),
            RawNumeric(vec![0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x13, 0x88])
        );
        assert_eq!(row.get::<_, String>("name"), "vär");
        assert_eq!(row.get::<_, String>("body"), "it's \"quoted\"");
        assert!(row.get::<_, bool>("flag"));
        assert_eq!(row.get::<_, Vec<u8>>("data"), vec![0, 1, 255]);
        assert_eq!(row.get::<_, NaiveDate>("day"), day);
        assert_eq!(row.get::<_, NaiveDateTime>("at"), at);
        assert_eq!(
            row.get::<_, chrono::DateTime<chrono::Utc>>("at_zone"),
            at_zone
        );
        assert_eq!(row.get::<_, NaiveTime>("clock"), clock);
        assert_eq!(row.get::<_, uuid::Uuid>("id2"), id2);
        assert_eq!(row.get::<_, serde_json::Value>("doc"), doc);
        let row = client.query_one(&select, &[&2i32]).await.expect("row 2");
        assert_eq!(row.get::<_, Option<i16>>("small"), None);
        assert_eq!(row.get::<_, Option<i64>>("big"), None);
        assert_eq!(row.get::<_, Option<f32>>("single"), None);
        assert_eq!(row.get::<_, Option<f64>>("double"), None);
        assert_eq!(
            row.get::<_, Option<RawNumeric>>("amount"),
            Some(RawNumeric(vec![0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x13, 0x88]))
        );
        assert_eq!(row.get::<_, Option<String>>("name"), None);
        assert_eq!(row.get::<_, Option<String>>("body"), None);
        assert_eq!(row.get::<_, Option<bool>>("flag"), None);
        assert_eq!(row.get::<_, Option<Vec<u8>>>("data"), None);
        assert_eq!(row.get::<_, Option<NaiveDate>>("day"), None);
        assert_eq!(row.get::<_, Option<NaiveDateTime>>("at"), None);
        assert_eq!(
            row.get::<_, Option<chrono::DateTime<chrono::Utc>>>("at_zone"),
            None
        );
        assert_eq!(row.get::<_, Option<NaiveTime>>("clock"), None);
        assert_eq!(row.get::<_, Option<uuid::Uuid>>("id2"), None);
        assert_eq!(row.get::<_, Option<serde_json::Value>>("doc"), None);
        // Parameters typed by comparison with each kind of column.
        let found = client
            .query(
                "SELECT id FROM everything WHERE day = $1 AND at_zone = $2 AND id2 = $3 \
                 AND name LIKE $4 AND big IN ($5, $6) AND single BETWEEN $7 AND $8",
                &[&day, &at_zone, &id2, &"v%", &0i64, &(1i64 << 40), &1.0f32, &2.0f32],
            )
            .await
            .expect("typed comparisons");
        assert_eq!(found.len(), 1);
        // A cast types a parameter; LIMIT takes a bigint.
        let rows = client
            .query(
                "SELECT $1::date + 1 AS next, $2::text AS label FROM everything ORDER BY id LIMIT $3",
                &[&day, &"x", &1i64],
            )
            .await
            .expect("casts and limit");
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].get::<_, NaiveDate>("next"),
            NaiveDate::from_ymd_opt(2000, 1, 1).expect("date")
        );
    });
}

#[test]
fn portals_pipelining_transactions_and_errors() {
    let directory = tempfile::tempdir().expect("tempdir");
    let running = Running::start(directory.path(), 10);
    runtime().block_on(async {
        let mut client = connect(&running).await;
        client
            .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
            .await
            .expect("create");
        let insert = client
            .prepare("INSERT INTO t VALUES ($1, $2)")
            .await
            .expect("prepare");
        // Pipelined: every Execute is sent before the first answer is read.
        let inserts: Vec<_> = (0..50)
            .map(|id| {
                let client = &client;
                let insert = &insert;
                async move { client.execute(insert, &[&id, &format!("name {id}")]).await }
            })
            .collect();
        for result in futures::future::join_all(inserts).await {
            assert_eq!(result.expect("pipelined insert"), 1);
        }
        // A portal fetched 20 rows at a time.
        let transaction = client.transaction().await.expect("begin");
        let portal = transaction
            .bind("SELECT id FROM t ORDER BY id", &[])
            .await
            .expect("bind");
        let mut seen = Vec::new();
        loop {
            let rows = transaction.query_portal(&portal, 20).await.expect("fetch");
            if rows.is_empty() {
                break;
            }
            assert!(rows.len() <= 20);
            seen.extend(rows.iter().map(|row| row.get::<_, i32>(0)));
        }
        assert_eq!(seen, (0..50).collect::<Vec<i32>>());
        // Rolled back writes are gone.
        transaction
            .execute("DELETE FROM t WHERE id < $1", &[&10i32])
            .await
            .expect("delete");
        transaction.rollback().await.expect("rollback");
        let count: i64 = client
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(count, 50);
        // Errors carry their SQLSTATE; the connection carries on.
        let error = client
            .execute(&insert, &[&1i32, &"again"])
            .await
            .expect_err("duplicate key");
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
        );
        let error = client
            .prepare("SELECT * FROM missing")
            .await
            .expect_err("missing table");
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
        );
        let error = client
            .query("SELECT 1/0", &[])
            .await
            .expect_err("division by zero");
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO)
        );
        // A failed statement inside a transaction fails the block until ROLLBACK.
        let transaction = client.transaction().await.expect("begin");
        assert!(transaction.execute("SELECT 1/0", &[]).await.is_err());
        let error = transaction
            .execute("SELECT 1", &[])
            .await
            .expect_err("aborted");
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION)
        );
        transaction.rollback().await.expect("rollback");
        let rows = client
            .query(
                "UPDATE t SET name = $1 WHERE id = $2 RETURNING id, name",
                &[&"new", &3i32],
            )
            .await
            .expect("update returning");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, &str>(1), "new");
        // Several statements prepared at once are refused, as PostgreSQL refuses them.
        let error = client
            .prepare("SELECT 1; SELECT 2")
            .await
            .expect_err("two statements");
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::SYNTAX_ERROR)
        );
    });
}

#[test]
fn copy_in_and_out_through_the_extended_protocol() {
    use futures::{SinkExt, TryStreamExt};
    let directory = tempfile::tempdir().expect("tempdir");
    let running = Running::start(directory.path(), 10);
    runtime().block_on(async {
        let client = connect(&running).await;
        client
            .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
            .await
            .expect("create");
        let sink = client
            .copy_in("COPY t (id, name) FROM STDIN WITH (FORMAT csv)")
            .await
            .expect("copy in");
        futures::pin_mut!(sink);
        for chunk in ["1,one\n2,", "\"two, too\"\n3,\n"] {
            sink.send(bytes::Bytes::from(chunk)).await.expect("send");
        }
        assert_eq!(sink.finish().await.expect("finish"), 3);
        let stream = client
            .copy_out("COPY t TO STDOUT WITH (FORMAT csv)")
            .await
            .expect("copy out");
        let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect("copy data");
        let text: String = chunks
            .iter()
            .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
            .collect();
        assert_eq!(text, "1,one\n2,\"two, too\"\n3,\n");
        // A failing COPY reports its error; the connection carries on.
        let sink = client.copy_in("COPY t FROM STDIN").await.expect("copy in");
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from("1\tagain\n"))
            .await
            .expect("send");
        let error = sink.finish().await.expect_err("duplicate key");
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
        );
        let count: i64 = client
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(count, 3);
    });
}

#[test]
fn cancel_request_stops_the_running_statement() {
    let directory = tempfile::tempdir().expect("tempdir");
    let running = Running::start(directory.path(), 10);
    runtime().block_on(async {
        let client = connect(&running).await;
        let token = client.cancel_token();
        // Runs for many minutes unless canceled. A cancel that arrives before the statement starts is
        // ignored (as in PostgreSQL), so keep asking, a bounded number of times.
        let query = client.query_one("SELECT count(*) FROM generate_series(1, 100000000000)", &[]);
        let canceler = async {
            for _ in 0..600 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                token.cancel_query(NoTls).await.expect("cancel request");
            }
        };
        let error = tokio::select! {
            result = query => result.expect_err("canceled"),
            () = canceler => panic!("the statement was never canceled"),
        };
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
        );
        // The connection carries on.
        let one: i64 = client
            .query_one("SELECT 1", &[])
            .await
            .expect("after cancel")
            .get(0);
        assert_eq!(one, 1);
    });
}

/// A statement text parsed again reuses what the connection made of it (`ParseCache`), but never past a
/// change of the tables: committed DDL from another connection, or DDL in a block that rolls back.
#[test]
fn statements_parsed_again_see_the_current_tables() {
    let directory = tempfile::tempdir().expect("tempdir");
    let running = Running::start(directory.path(), 10);
    runtime().block_on(async {
        let mut client = connect(&running).await;
        let other = connect(&running).await;
        client
            .batch_execute("CREATE TABLE t (a INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)")
            .await
            .expect("create");
        let columns = |statement: &tokio_postgres::Statement| -> Vec<String> {
            statement
                .columns()
                .iter()
                .map(|column| format!("{} {}", column.name(), column.type_()))
                .collect()
        };
        let query = "SELECT * FROM t WHERE a = $1";
        for _ in 0..3 {
            let statement = client.prepare(query).await.expect("prepare");
            assert_eq!(columns(&statement), ["a int4"]);
            let rows = client.query(&statement, &[&1i32]).await.expect("query");
            assert_eq!(rows.len(), 1);
        }
        other
            .batch_execute("ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x'")
            .await
            .expect("another connection's DDL");
        let statement = client.prepare(query).await.expect("prepare");
        assert_eq!(columns(&statement), ["a int4", "b text"]);
        let rows = client.query(&statement, &[&1i32]).await.expect("query");
        assert_eq!(rows[0].get::<_, String>(1), "x");

        let transaction = client.transaction().await.expect("begin");
        transaction
            .batch_execute("ALTER TABLE t ADD COLUMN c INTEGER")
            .await
            .expect("DDL in the block");
        let statement = transaction.prepare(query).await.expect("prepare");
        assert_eq!(columns(&statement), ["a int4", "b text", "c int4"]);
        transaction.rollback().await.expect("rollback");
        let statement = client.prepare(query).await.expect("prepare");
        assert_eq!(columns(&statement), ["a int4", "b text"]);
        let rows = client.query(&statement, &[&1i32]).await.expect("query");
        assert_eq!(rows[0].len(), 2);
    });
}

#[test]
fn a_cast_column_is_described_and_sent_as_its_new_type() {
    let directory = tempfile::tempdir().expect("tempdir");
    let running = Running::start(directory.path(), 10);
    runtime().block_on(async {
        let client = connect(&running).await;
        client
            .batch_execute(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, label VARCHAR(5)); \
                 INSERT INTO t VALUES (2147483647, 'ab')",
            )
            .await
            .expect("create");
        // The cast of an int4 column is int8 (it was described as int4 and its binary value sent in
        // int4's width: 0), and of int4 to text is text.
        let statement = client
            .prepare("SELECT id::bigint, CAST(id AS bigint) * 2, id::text, id, label FROM t")
            .await
            .expect("prepare");
        let types: Vec<String> = statement
            .columns()
            .iter()
            .map(|column| column.type_().to_string())
            .collect();
        assert_eq!(types, ["int8", "int8", "text", "int4", "varchar"]);
        let row = client.query_one(&statement, &[]).await.expect("query");
        assert_eq!(row.get::<_, i64>(0), 2_147_483_647);
        assert_eq!(row.get::<_, i64>(1), 4_294_967_294);
        assert_eq!(row.get::<_, String>(2), "2147483647");
        assert_eq!(row.get::<_, i32>(3), 2_147_483_647);
        assert_eq!(row.get::<_, String>(4), "ab");
    });
}
