//! The SQLite corpus over the PostgreSQL wire protocol: the same files and rules as [`crate::sqlite`],
//! each record sent by tokio-postgres to a `qubedb serve` started in this process, so a test can check
//! that the server passes exactly what the embedded engine passes.
//!
//! Each file gets a database of its own (`CREATE DATABASE`, dropped afterwards) on one server over an
//! in-memory data directory. Statements go out as simple queries. A query is first described (Parse /
//! Describe, for the column types the rendering rules need: booleans print as 0 / 1, floating-point
//! values by their number) and then run as a simple query, whose rows arrive as PostgreSQL text.

use std::path::Path;
use std::sync::Arc;

use qubedb::Cluster;
use tokio::runtime::Runtime;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::sqlite::{Cell, Counts, Engine, EngineFailure, Failure, Mismatch, Summary};

/// A server for the run, on its own runtime.
pub struct WireServer {
    runtime: Arc<Runtime>,
    port: u16,
}

impl WireServer {
    /// Starts a server over an in-memory data directory on a free loopback port.
    pub fn start() -> Result<WireServer, String> {
        let cluster = Cluster::open_in_memory().map_err(|error| error.to_string())?;
        let runtime = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?,
        );
        let options = qubedb_server::ServerOptions::new(
            "127.0.0.1:0".parse().expect("a loopback address parses"),
        );
        let server = runtime
            .block_on(qubedb_server::Server::bind(cluster, options))
            .map_err(|error| error.to_string())?;
        let port = server
            .local_address()
            .map_err(|error| error.to_string())?
            .port();
        runtime.spawn(server.run(std::future::pending()));
        Ok(WireServer { runtime, port })
    }

    fn connect(&self, database: &str) -> Result<Client, String> {
        let address = format!(
            "host=127.0.0.1 port={} user=qubedb dbname={database}",
            self.port
        );
        let (client, connection) = self
            .runtime
            .block_on(tokio_postgres::connect(&address, NoTls))
            .map_err(|error| format!("cannot connect: {error}"))?;
        self.runtime.spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Runs one file in a database of its own.
    pub fn run_file(&self, index: usize, name: &str, text: &str) -> (Counts, Vec<Failure>) {
        let database = format!("slt_{index}");
        let outcome = (|| -> Result<(Counts, Vec<Failure>), String> {
            let admin = self.connect("qubedb")?;
            self.runtime
                .block_on(admin.batch_execute(&format!("CREATE DATABASE {database}")))
                .map_err(|error| format!("CREATE DATABASE: {error}"))?;
            let mut engine = OverTheWire {
                runtime: self.runtime.clone(),
                client: self.connect(&database)?,
            };
            let result = crate::sqlite::run_file_with(name, text, &mut engine);
            drop(engine);
            // The session of the dropped client may still be closing: DROP DATABASE waits for it.
            let _ = self
                .runtime
                .block_on(admin.batch_execute(&format!("DROP DATABASE {database}")));
            Ok(result)
        })();
        outcome.unwrap_or_else(|error| {
            (
                Counts::default(),
                vec![Mismatch::from(error).into_failure(name.to_string(), String::new())],
            )
        })
    }
}

/// One file's connection.
struct OverTheWire {
    runtime: Arc<Runtime>,
    client: Client,
}

fn failure(error: tokio_postgres::Error) -> EngineFailure {
    match error.as_db_error() {
        Some(database) => EngineFailure::Database(qubedb::Error::user(
            sqlstate(database.code().code()),
            database.message().to_string(),
        )),
        None => EngineFailure::Engine(format!("connection: {error}")),
    }
}

/// A SQLSTATE as the `'static` code `qubedb::Error` carries (each distinct code leaked once).
fn sqlstate(code: &str) -> &'static str {
    static CODES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut codes = CODES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = codes.iter().find(|known| **known == code) {
        return known;
    }
    let leaked: &'static str = Box::leak(code.to_string().into_boxed_str());
    codes.push(leaked);
    leaked
}

impl Engine for OverTheWire {
    fn statement(&mut self, sql: &str) -> Result<(), EngineFailure> {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .map_err(failure)
    }

    fn query(&mut self, sql: &str) -> Result<Vec<Vec<Cell>>, EngineFailure> {
        // The column types, when the statement can be described (else values classify as text).
        let types: Vec<Type> = self
            .runtime
            .block_on(self.client.prepare(sql))
            .map(|statement| {
                statement
                    .columns()
                    .iter()
                    .map(|column| column.type_().clone())
                    .collect()
            })
            .unwrap_or_default();
        let messages = self
            .runtime
            .block_on(self.client.simple_query(sql))
            .map_err(failure)?;
        let mut rows = Vec::new();
        for message in messages {
            if let SimpleQueryMessage::Row(row) = message {
                rows.push(
                    (0..row.len())
                        .map(|column| cell(row.get(column), types.get(column)))
                        .collect(),
                );
            }
        }
        Ok(rows)
    }
}

/// A text value of a column of type `column_type` as a cell.
fn cell(value: Option<&str>, column_type: Option<&Type>) -> Cell {
    let Some(text) = value else {
        return Cell::Null;
    };
    match column_type {
        Some(&Type::BOOL) => Cell::Boolean(text == "t"),
        Some(&Type::INT2 | &Type::INT4 | &Type::INT8 | &Type::OID) => {
            Cell::Integer(text.to_string())
        }
        Some(&Type::FLOAT4 | &Type::FLOAT8 | &Type::NUMERIC) => {
            Cell::Float(text.parse().unwrap_or(0.0), text.to_string())
        }
        _ => Cell::Text(text.to_string()),
    }
}

/// Runs every `.test` file under `corpus` whose path contains one of `filters`, over the wire, one file
/// after the other.
pub fn run_corpus(corpus: &Path, filters: &[&str]) -> Result<Summary, String> {
    let server = WireServer::start()?;
    let mut files = Vec::new();
    crate::sqlite::collect_files(corpus, &mut files)
        .map_err(|error| format!("cannot read {}: {error}", corpus.display()))?;
    files.sort();
    let mut summary = Summary::default();
    for (index, file) in files.iter().enumerate() {
        let name = file
            .strip_prefix(corpus)
            .unwrap_or(file)
            .display()
            .to_string();
        if !filters.is_empty() && !filters.iter().any(|filter| name.contains(filter)) {
            continue;
        }
        let text = std::fs::read_to_string(file)
            .map_err(|error| format!("cannot read {name}: {error}"))?;
        let (counts, failures) = server.run_file(index, &name, &text);
        summary.total.add(&counts);
        summary.files.push((name, counts));
        summary.failures.extend(failures);
    }
    Ok(summary)
}
