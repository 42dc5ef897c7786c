//! `qubedb-bench w5`: workload W5 of `bench/WORKLOADS.md` embedded, the way a program linking QubeDB
//! runs it: no wire, no text form of the vectors (they go in and out as [`Param::Vector`]).
//!
//! `bench/w5.py` writes the data set it also gives hnswlib and the server (`--export DIR`): `base.f32`
//! and `queries.f32` (row after row of little-endian f32) and `truth.i64` (the exact top 10 of each
//! query). This loads the base vectors into a table in one transaction, builds the HNSW index with
//! `CREATE INDEX` (timed: wall and CPU of every thread), then runs every query, one at a time, as the
//! prepared `SELECT id FROM items ORDER BY v <-> $1 LIMIT 10` for each `hnsw.ef_search`, and prints one
//! JSON object per ef_search: queries per second, CPU per query and queries per CPU-second (the measure
//! hnswlib is compared by), recall@10.
//!
//! Usage: `qubedb-bench w5 --data DIR [--dimensions 128] [--metric l2|cosine] [--ef-construction 64]
//! [--ef-search 32,64,128] [--directory DIR] [--dataset NAME]` (`cosine`: the GloVe run, `<=>` and
//! `vector_cosine_ops`; `--dataset` only labels the output).

use std::collections::HashSet;
use std::path::Path;

use qubedb::Param;
use serde_json::json;

use crate::{fresh_database, measure, read_rows};

/// Neighbours asked for and compared.
const K: usize = 10;

fn read_f32(path: &Path, dimensions: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes(chunk.try_into().expect("four bytes")))
        .collect();
    values
        .chunks_exact(dimensions)
        .map(<[f32]>::to_vec)
        .collect()
}

fn read_truth(path: &Path) -> Vec<Vec<i64>> {
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let values: Vec<i64> = bytes
        .chunks_exact(8)
        .map(|chunk| i64::from_le_bytes(chunk.try_into().expect("eight bytes")))
        .collect();
    values.chunks_exact(K).map(<[i64]>::to_vec).collect()
}

/// Runs W5 embedded (see the module docs); `option` reads a command-line option.
pub fn run(option: &dyn Fn(&str) -> Option<String>) {
    let data = option("--data").expect("--data DIR (written by python3 bench/w5.py --export DIR)");
    let data = Path::new(&data);
    let dimensions: usize =
        option("--dimensions").map_or(128, |n| n.parse().expect("--dimensions N"));
    let ef_construction: usize =
        option("--ef-construction").map_or(64, |n| n.parse().expect("--ef-construction N"));
    let ef_searches: Vec<usize> = option("--ef-search")
        .unwrap_or("32,64,128".into())
        .split(',')
        .map(|n| n.parse().expect("--ef-search N,N"))
        .collect();
    let (operator, operator_class) = match option("--metric").as_deref() {
        None | Some("l2") => ("<->", "vector_l2_ops"),
        Some("cosine") => ("<=>", "vector_cosine_ops"),
        Some(other) => panic!("--metric l2|cosine, not {other}"),
    };
    let dataset = option("--dataset").unwrap_or("synthetic".into());
    let directory = option("--directory").unwrap_or("/tmp/qubedb-bench/w5.qubedb".into());
    let base = read_f32(&data.join("base.f32"), dimensions);
    let queries = read_f32(&data.join("queries.f32"), dimensions);
    let truth = read_truth(&data.join("truth.i64"));
    assert_eq!(queries.len(), truth.len(), "one truth row per query");

    let database = fresh_database(Path::new(&directory));
    let mut session = database.session();
    session
        .run(&format!(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, v vector({dimensions}))"
        ))
        .expect("create table");
    let ((), load_wall, load_cpu) = measure(|| {
        let insert = session
            .prepare("INSERT INTO items VALUES ($1, $2)")
            .expect("prepare insert");
        session.run("BEGIN").expect("begin");
        for (id, vector) in base.iter().enumerate() {
            let id = i64::try_from(id).expect("ids fit in i64");
            session
                .execute_prepared(
                    &insert,
                    &[Param::Integer(id), Param::Vector(vector.clone())],
                )
                .expect("insert");
        }
        session.run("COMMIT").expect("commit");
    });
    let ((), build_wall, build_cpu) = measure(|| {
        session
            .run(&format!(
                "CREATE INDEX items_v ON items USING hnsw (v {operator_class}) \
                 WITH (m = 16, ef_construction = {ef_construction})"
            ))
            .expect("create index");
    });
    let select = session
        .prepare(&format!(
            "SELECT id FROM items ORDER BY v {operator} $1 LIMIT 10"
        ))
        .expect("prepare select");
    for ef_search in ef_searches {
        session
            .run(&format!("SET hnsw.ef_search = {ef_search}"))
            .expect("set ef_search");
        let search = |session: &mut qubedb::Session, query: &[f32]| {
            let mut found = Vec::with_capacity(K);
            read_rows(
                session,
                &select,
                &[Param::Vector(query.to_vec())],
                |batch, row| {
                    let ids = batch
                        .column(0)
                        .as_any()
                        .downcast_ref::<qubedb::arrow::array::Int32Array>()
                        .expect("id is an integer");
                    found.push(i64::from(ids.value(row)));
                },
            );
            found
        };
        // Warm-up: the first search reads the graph into memory.
        search(&mut session, &queries[0]);
        let (found, wall, cpu) = measure(|| {
            queries
                .iter()
                .map(|query| search(&mut session, query))
                .collect::<Vec<_>>()
        });
        let hits: usize = found
            .iter()
            .zip(&truth)
            .map(|(found, truth)| {
                let truth: HashSet<&i64> = truth.iter().collect();
                found.iter().filter(|id| truth.contains(id)).count()
            })
            .sum();
        let count = queries.len() as f64;
        let record = json!({
            "workload": "W5",
            "system": "qubedb-embedded",
            "dataset": dataset,
            "rows": base.len(),
            "ef_construction": ef_construction,
            "ef_search": ef_search,
            "load_s": round(load_wall, 1),
            "load_cpu_s": round(load_cpu, 1),
            "build_s": round(build_wall, 1),
            "build_cpu_s": round(build_cpu, 1),
            "qps": (count / wall).round() as u64,
            "cpu_ms_per_query": round(cpu * 1000.0 / count, 3),
            "qps_per_cpu_s": (count / cpu).round() as u64,
            "recall": round(hits as f64 / (count * K as f64), 4),
        });
        println!("{record}");
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}
