//! HNSW indexes through SQL: recall against exact search, filtered queries, visibility of deleted and
//! rolled-back rows, and the index after a restart.

use std::collections::HashSet;

use qubedb::{Database, Param};

use super::plan;

/// `count` vectors of `dimensions` around 12 centres (a fixed linear congruential generator), as
/// `[x,y,...]` text.
fn clustered(count: usize, dimensions: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f32 / (1u64 << 31) as f32
    };
    let centres: Vec<Vec<f32>> = (0..12)
        .map(|_| (0..dimensions).map(|_| uniform() * 20.0 - 10.0).collect())
        .collect();
    (0..count)
        .map(|i| {
            let centre = &centres[(i * 7) % centres.len()];
            centre
                .iter()
                .map(|c| {
                    // A sum of uniforms is close enough to a Gaussian for a cluster.
                    let noise: f32 = (0..4).map(|_| uniform() - 0.5).sum();
                    c + noise * 1.5
                })
                .collect()
        })
        .collect()
}

fn text(vector: &[f32]) -> String {
    let parts: Vec<String> = vector.iter().map(|x| format!("{x}")).collect();
    format!("[{}]", parts.join(","))
}

/// Inserts `vectors` as rows `first..` of `table` (id, vector, category id % 10).
fn load(session: &mut qubedb::Session, table: &str, first: usize, vectors: &[Vec<f32>]) {
    for (chunk_number, chunk) in vectors.chunks(200).enumerate() {
        let values: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(offset, vector)| {
                let id = first + chunk_number * 200 + offset;
                format!("({id}, '{}', {})", text(vector), id % 10)
            })
            .collect();
        session
            .run(&format!("INSERT INTO {table} VALUES {}", values.join(", ")))
            .expect("insert vectors");
    }
}

/// The ids a prepared nearest-neighbour query (`$1` the query vector) returns with the fast path on
/// and off: checked to take the fast path only when it is on and to give the same ids both ways.
fn nearest_both_ways(
    session: &mut qubedb::Session,
    prepared: &qubedb::PreparedStatement,
    query: &[f32],
) -> Vec<i64> {
    let mut answers = Vec::new();
    for fast in ["on", "off"] {
        session
            .run(&format!("SET qubedb.fast_path = {fast}"))
            .expect("fast path setting");
        let before = session.fast_path_statements();
        let rows = session
            .execute_prepared(prepared, &[Param::Vector(query.to_vec())])
            .expect("nearest")
            .rows()
            .expect("rows");
        assert_eq!(
            session.fast_path_statements() - before,
            u64::from(fast == "on"),
            "fast path {fast}"
        );
        answers.push(
            rows.iter()
                .map(|row| row.get::<i64>(0).expect("id"))
                .collect::<Vec<_>>(),
        );
    }
    session.run("SET qubedb.fast_path = on").expect("reset");
    assert_eq!(answers[0], answers[1], "fast and general path differ");
    answers.swap_remove(0)
}

fn ids(session: &mut qubedb::Session, sql: &str) -> Vec<i64> {
    session
        .query(sql, &[])
        .expect("query")
        .rows()
        .expect("rows")
        .iter()
        .map(|row| row.get::<i64>(0).expect("id"))
        .collect()
}

#[test]
fn hnsw_recall_and_filters_match_exact_search() {
    let database = Database::open_in_memory().expect("database");
    let mut session = database.session();
    let dimensions = 24;
    // The queries come from the same mixture as the rows (the last 40 points, not inserted).
    let mut data = clustered(2040, dimensions, 7);
    let queries = data.split_off(2000);
    for table in ["indexed", "exact"] {
        session
            .run(&format!(
                "CREATE TABLE {table} (id BIGINT PRIMARY KEY, v vector({dimensions}), category INTEGER)"
            ))
            .expect("create");
    }
    // Half the rows before the index is built, half after (incremental inserts).
    load(&mut session, "indexed", 0, &data[..1000]);
    session
        .run("CREATE INDEX indexed_v ON indexed USING hnsw (v vector_l2_ops)")
        .expect("create index");
    load(&mut session, "indexed", 1000, &data[1000..]);
    load(&mut session, "exact", 0, &data);
    let explained = plan(
        &mut session,
        &format!(
            "SELECT id FROM indexed ORDER BY v <-> '{}' LIMIT 10",
            text(&queries[0])
        ),
    );
    assert!(explained.contains("hnsw index indexed_v"), "{explained}");
    let exact_plan = plan(
        &mut session,
        &format!(
            "SELECT id FROM exact ORDER BY v <-> '{}' LIMIT 10",
            text(&queries[0])
        ),
    );
    assert!(!exact_plan.contains("hnsw"), "{exact_plan}");

    let mut hits = 0;
    for query in &queries {
        let query = text(query);
        let found = ids(
            &mut session,
            &format!("SELECT id FROM indexed ORDER BY v <-> '{query}' LIMIT 10"),
        );
        let truth: HashSet<i64> = ids(
            &mut session,
            &format!("SELECT id FROM exact ORDER BY v <-> '{query}', id LIMIT 10"),
        )
        .into_iter()
        .collect();
        assert_eq!(found.len(), 10);
        hits += found.iter().filter(|id| truth.contains(id)).count();
    }
    let recall = hits as f64 / (queries.len() * 10) as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");

    // A selective filter (one row in ten) still gets ten rows, the ones an exact scan gets.
    for query in queries.iter().take(10) {
        let query = text(query);
        let found = ids(
            &mut session,
            &format!("SELECT id FROM indexed WHERE category = 3 ORDER BY v <-> '{query}' LIMIT 10"),
        );
        let truth = ids(
            &mut session,
            &format!(
                "SELECT id FROM exact WHERE category = 3 ORDER BY v <-> '{query}', id LIMIT 10"
            ),
        );
        assert_eq!(found, truth, "filtered query {query}");
    }

    // Prepared, the query vector a parameter: the cached plan binds it and still reads the index,
    // with the answers of the unprepared query; text that is no vector is the cast's error.
    let prepared = session
        .prepare("SELECT id FROM indexed WHERE category <> $2 ORDER BY v <-> $1 LIMIT 10")
        .expect("prepare");
    let before = session.cached_plan_executions();
    for query in queries.iter().take(5) {
        let query = text(query);
        let got: Vec<i64> = session
            .execute_prepared(&prepared, &[Param::Text(query.clone()), Param::Integer(4)])
            .expect("prepared")
            .rows()
            .expect("rows")
            .iter()
            .map(|row| row.get::<i64>(0).expect("id"))
            .collect();
        let expected = ids(
            &mut session,
            &format!(
                "SELECT id FROM indexed WHERE category <> 4 ORDER BY v <-> '{query}' LIMIT 10"
            ),
        );
        assert_eq!(got, expected, "prepared query {query}");
    }
    assert_eq!(session.cached_plan_executions(), before + 5);
    let error = session
        .execute_prepared(&prepared, &[Param::Text("[1,2".into()), Param::Integer(4)])
        .and_then(|result| result.rows())
        .expect_err("no vector");
    assert_eq!(error.code, "22P02", "{error:?}");
    let error = session
        .execute_prepared(&prepared, &[Param::Text("[1,2]".into()), Param::Integer(4)])
        .and_then(|result| result.rows())
        .expect_err("two dimensions");
    assert_eq!(error.code, "22000", "{error:?}");

    // Without a WHERE clause the statement skips DataFusion (`sql/fast.rs`): the same rows in the same
    // order as the general path, for parameters and literals, and a wrong vector still the error.
    let nearest = session
        .prepare("SELECT id, category FROM indexed ORDER BY v <-> $1 LIMIT 7")
        .expect("prepare nearest");
    let both_ways = |session: &mut qubedb::Session, query: &[f32]| {
        let answer = nearest_both_ways(session, &nearest, query);
        assert_eq!(answer.len(), 7);
        answer
    };
    for query in queries.iter().take(5) {
        both_ways(&mut session, query);
    }
    // Inside a transaction that wrote into the index and deleted the nearest row: both ways see the
    // transaction's own writes.
    session.run("BEGIN").expect("begin");
    let first = both_ways(&mut session, &queries[7]);
    session
        .run(&format!("DELETE FROM indexed WHERE id = {}", first[0]))
        .expect("delete");
    // A prepared INSERT of a vector parameter is a fast statement too; one of other dimensions is the
    // general path's error.
    let insert = session
        .prepare("INSERT INTO indexed VALUES ($1, $2, 1)")
        .expect("prepare insert");
    let before = session.fast_path_statements();
    session
        .execute_prepared(
            &insert,
            &[Param::Integer(9999), Param::Vector(queries[7].clone())],
        )
        .expect("insert");
    assert_eq!(session.fast_path_statements(), before + 1);
    session.run("SAVEPOINT wrong").expect("savepoint");
    let error = session
        .execute_prepared(
            &insert,
            &[Param::Integer(10_000), Param::Vector(vec![1.0, 2.0])],
        )
        .err()
        .expect("two dimensions");
    assert_eq!(
        (error.code, error.message.as_str()),
        ("22000", "expected 24 dimensions, not 2")
    );
    session
        .run("ROLLBACK TO SAVEPOINT wrong")
        .expect("rollback to");
    let inside = both_ways(&mut session, &queries[7]);
    assert_eq!(inside[0], 9999);
    assert!(!inside.contains(&first[0]));
    session.run("ROLLBACK").expect("rollback");
    assert_eq!(both_ways(&mut session, &queries[7]), first);
    let error = session
        .execute_prepared(&nearest, &[Param::Text("[1,2]".into())])
        .and_then(|result| result.rows())
        .expect_err("two dimensions");
    assert_eq!(error.code, "22000", "{error:?}");

    // Other distances: their own operator classes.
    session
        .run("CREATE INDEX indexed_cosine ON indexed USING hnsw (v vector_cosine_ops)")
        .expect("cosine index");
    let query = text(&queries[1]);
    let cosine_plan = plan(
        &mut session,
        &format!("SELECT id FROM indexed ORDER BY v <=> '{query}' LIMIT 5"),
    );
    assert!(
        cosine_plan.contains("hnsw index indexed_cosine"),
        "{cosine_plan}"
    );
    let found: HashSet<i64> = ids(
        &mut session,
        &format!("SELECT id FROM indexed ORDER BY v <=> '{query}' LIMIT 10"),
    )
    .into_iter()
    .collect();
    let truth: HashSet<i64> = ids(
        &mut session,
        &format!("SELECT id FROM exact ORDER BY v <=> '{query}', id LIMIT 10"),
    )
    .into_iter()
    .collect();
    assert!(
        found.intersection(&truth).count() >= 9,
        "{found:?} vs {truth:?}"
    );
}

#[test]
fn hnsw_never_returns_deleted_or_uncommitted_rows_and_survives_restart() {
    never_returns_deleted_or_uncommitted_rows_and_survives_restart("vector");
}

#[test]
fn hnsw_of_halfvec_never_returns_deleted_or_uncommitted_rows_and_survives_restart() {
    never_returns_deleted_or_uncommitted_rows_and_survives_restart("halfvec");
}

/// The visibility and restart checks over a column of `type_name` (`vector` or `halfvec`).
fn never_returns_deleted_or_uncommitted_rows_and_survives_restart(type_name: &str) {
    let directory = tempfile::tempdir().expect("tempdir");
    let data = clustered(300, 8, 3);
    let near = text(&data[5]);
    {
        let database = Database::open(directory.path()).expect("open");
        let mut session = database.session();
        session
            .run(&format!(
                "CREATE TABLE items (id BIGINT PRIMARY KEY, v {type_name}(8), category INTEGER)"
            ))
            .expect("create");
        session
            .run(&format!("CREATE INDEX items_v ON items USING hnsw (v {type_name}_l2_ops) WITH (m = 8, ef_construction = 32)"))
            .expect("index");
        load(&mut session, "items", 0, &data);
        let nearest = format!("SELECT id FROM items ORDER BY v <-> '{near}' LIMIT 3");
        assert_eq!(ids(&mut session, &nearest)[0], 5);

        // A deleted row is never returned; the next nearest takes its place.
        session
            .run("DELETE FROM items WHERE id = 5")
            .expect("delete");
        let after_delete = ids(&mut session, &nearest);
        assert_eq!(after_delete.len(), 3);
        assert!(!after_delete.contains(&5), "{after_delete:?}");

        // A rolled-back insert is never returned; inside its transaction it is.
        session.run("BEGIN").expect("begin");
        session
            .run(&format!("INSERT INTO items VALUES (1000, '{near}', 0)"))
            .expect("insert");
        assert_eq!(ids(&mut session, &nearest)[0], 1000);
        // Another session does not see it.
        let mut other = database.session();
        assert!(!ids(&mut other, &nearest).contains(&1000));
        session.run("ROLLBACK").expect("rollback");
        assert!(!ids(&mut session, &nearest).contains(&1000));

        // An update moves the row in the graph.
        session
            .run(&format!("UPDATE items SET v = '{near}' WHERE id = 7"))
            .expect("update");
        assert_eq!(ids(&mut session, &nearest)[0], 7);
    }
    let database = Database::open(directory.path()).expect("reopen");
    let mut session = database.session();
    let nearest = format!("SELECT id FROM items ORDER BY v <-> '{near}' LIMIT 3");
    let explained = plan(&mut session, &nearest);
    assert!(explained.contains("hnsw index items_v"), "{explained}");
    let found = ids(&mut session, &nearest);
    assert_eq!(found[0], 7);
    assert!(!found.contains(&5) && !found.contains(&1000), "{found:?}");
    // REINDEX rebuilds the graph from the live rows.
    session.run("REINDEX INDEX items_v").expect("reindex");
    assert_eq!(ids(&mut session, &nearest), found);
    // The index answers as an exact scan of the same (stored, for halfvec rounded) vectors.
    let exact = format!(
        "SELECT id FROM items ORDER BY v <-> '{near}' + v * '[0,0,0,0,0,0,0,0]', id LIMIT 3"
    );
    assert!(!plan(&mut session, &exact).contains("hnsw"));
    assert_eq!(ids(&mut session, &exact), found);

    // A prepared nearest query takes the fast path (for halfvec the parameter is rounded as its cast
    // rounds it), with the general path's answer.
    let prepared = session
        .prepare("SELECT id FROM items ORDER BY v <-> $1 LIMIT 3")
        .expect("prepare");
    assert_eq!(nearest_both_ways(&mut session, &prepared, &data[5]), found);
    // A value past half precision's range is the cast's error on either path.
    let insert = session
        .prepare("INSERT INTO items VALUES ($1, $2, 1)")
        .expect("prepare insert");
    let large = vec![70_000.0; 8];
    let inserted = session.execute_prepared(&insert, &[Param::Integer(2000), Param::Vector(large)]);
    match type_name {
        "halfvec" => assert_eq!(inserted.err().expect("out of range").code, "22003"),
        _ => assert!(inserted.is_ok()),
    }
}

/// A nearest query whose output is only the primary key is answered from the graph alone when the
/// graph holds exactly the snapshot's rows (`Search::exact`); each step here is a case where it
/// does not, checked against the general path (which reads every row) and against what must hold.
#[test]
fn hnsw_key_only_answers_see_exactly_the_snapshot() {
    let directory = tempfile::tempdir().expect("tempdir");
    let data = clustered(300, 8, 5);
    // Near row 5 but not at it, so the two are never a tie.
    let mut beside = data[5].clone();
    beside[0] += 0.001;
    let near = text(&beside);
    {
        let database = Database::open(directory.path()).expect("open");
        let mut session = database.session();
        session
            .run("CREATE TABLE items (id BIGINT PRIMARY KEY, v vector(8), category INTEGER)")
            .expect("create");
        session
            .run("CREATE INDEX items_v ON items USING hnsw (v vector_l2_ops)")
            .expect("index");
        load(&mut session, "items", 0, &data);
        let prepared = session
            .prepare("SELECT id FROM items ORDER BY v <-> $1 LIMIT 3")
            .expect("prepare");
        assert_eq!(nearest_both_ways(&mut session, &prepared, &data[5])[0], 5);

        // The transaction's own delete: the graph is exact, the transaction's rows are not.
        session.run("BEGIN").expect("begin");
        session
            .run("DELETE FROM items WHERE id = 5")
            .expect("delete");
        let own = nearest_both_ways(&mut session, &prepared, &data[5]);
        assert!(!own.contains(&5), "{own:?}");
        session.run("ROLLBACK").expect("rollback");
        assert_eq!(nearest_both_ways(&mut session, &prepared, &data[5])[0], 5);

        // A row committed after the snapshot is in the graph, not in the snapshot.
        let mut other = database.session();
        session
            .run("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .expect("begin");
        assert_eq!(nearest_both_ways(&mut session, &prepared, &data[5])[0], 5);
        other
            .run(&format!("INSERT INTO items VALUES (1000, '{near}', 0)"))
            .expect("insert");
        let before = nearest_both_ways(&mut session, &prepared, &data[5]);
        assert!(!before.contains(&1000), "{before:?}");
        session.run("COMMIT").expect("commit");
        let after = nearest_both_ways(&mut session, &prepared, &data[5]);
        assert!(after.contains(&1000) && after.contains(&5), "{after:?}");

        // Another session's delete and NULL vector leave their nodes in the graph.
        other.run("DELETE FROM items WHERE id = 5").expect("delete");
        other
            .run("UPDATE items SET v = NULL WHERE id = 1000")
            .expect("update");
        let gone = nearest_both_ways(&mut session, &prepared, &data[5]);
        assert!(!gone.contains(&5) && !gone.contains(&1000), "{gone:?}");
    }
    // Loaded again, the graph's nodes of rows that are gone are found.
    let database = Database::open(directory.path()).expect("reopen");
    let mut session = database.session();
    let prepared = session
        .prepare("SELECT id FROM items ORDER BY v <-> $1 LIMIT 3")
        .expect("prepare");
    let reopened = nearest_both_ways(&mut session, &prepared, &data[5]);
    assert!(
        reopened.len() == 3 && !reopened.contains(&5) && !reopened.contains(&1000),
        "{reopened:?}"
    );
}
