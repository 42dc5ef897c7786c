//! The `qubedb` command: wiring only. `serve` runs the PostgreSQL wire server, `shell` is an interactive
//! REPL, `sql` runs statements from `-c` or standard input, `import` loads a JSON-lines file. Both print results as PostgreSQL's psql does, or as CSV, TSV or JSON lines.

mod output;
mod shell;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use qubedb::{Cluster, Database};

use crate::output::{Format, print_error, print_outcome};

#[derive(Parser)]
#[command(
    name = "qubedb",
    version,
    about = "QubeDB: one transactional database for tables, documents, vectors, graphs and time series"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the PostgreSQL wire protocol until Ctrl-C or SIGTERM.
    Serve {
        /// Data directory to open (created if missing).
        #[arg(long, default_value = "./qubedb-data")]
        data: PathBuf,
        /// Address of the PostgreSQL protocol listener.
        #[arg(long = "pg", default_value = qubedb_server::DEFAULT_PG_ADDRESS)]
        pg_address: std::net::SocketAddr,
        /// Connections past this many are refused (53300).
        #[arg(long, default_value_t = qubedb_server::DEFAULT_CONNECTIONS_MAX)]
        max_connections: usize,
        /// How clients authenticate: `trust` (any existing role with LOGIN, no password) or
        /// `scram-sha-256` (the role's password; set it first, e.g. with
        /// `qubedb sql --data DIR -c "ALTER ROLE qubedb PASSWORD '...'"`).
        #[arg(long = "auth", default_value = "trust")]
        authentication: qubedb_server::AuthMethod,
        /// TLS certificate chain (PEM); with --tls-key, clients may connect with SSL.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Also listen on a Unix-domain socket in this directory (`.s.PGSQL.<port>`, as
        /// PostgreSQL): `psql -h DIR -p PORT` connects through it.
        #[arg(long = "socket-dir")]
        socket_directory: Option<PathBuf>,
    },
    /// Interactive SQL shell (in memory unless --data is given).
    Shell {
        /// Data directory to open (created if missing).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Database of the data directory to use.
        #[arg(long, short = 'd', default_value = qubedb::cluster::DEFAULT_DATABASE)]
        database: String,
    },
    /// Runs SQL statements from -c or from standard input, printing each result; stops at the first error.
    Sql {
        /// Data directory to open (created if missing).
        #[arg(long)]
        data: PathBuf,
        /// Database of the data directory to use.
        #[arg(long, short = 'd', default_value = qubedb::cluster::DEFAULT_DATABASE)]
        database: String,
        /// The SQL to run (otherwise standard input is read).
        #[arg(short = 'c', long = "command")]
        command: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = FormatArg::Aligned)]
        format: FormatArg,
    },
    /// Loads a JSON-lines file into a table (`COPY table FROM 'file' (FORMAT json)`): each line
    /// into the table's one column, or an object's fields into the columns of their names.
    Import {
        /// Data directory to open (created if missing).
        #[arg(long)]
        data: PathBuf,
        /// Database of the data directory to use.
        #[arg(long, short = 'd', default_value = qubedb::cluster::DEFAULT_DATABASE)]
        database: String,
        /// The JSON-lines file to read.
        #[arg(long)]
        jsonl: PathBuf,
        /// The table to load (it must exist).
        #[arg(long)]
        table: String,
        /// The columns to fill (default: all of the table's).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Aligned,
    Csv,
    Tsv,
    Json,
}

impl From<FormatArg> for Format {
    fn from(format: FormatArg) -> Format {
        match format {
            FormatArg::Aligned => Format::Aligned,
            FormatArg::Csv => Format::Csv,
            FormatArg::Tsv => Format::Tsv,
            FormatArg::Json => Format::Json,
        }
    }
}

fn open(data: Option<&PathBuf>, database: &str) -> Result<Database, qubedb::Error> {
    let cluster = match data {
        Some(directory) => Cluster::open(directory)?,
        None => Cluster::open_in_memory()?,
    };
    cluster.database(database)
}

/// `qubedb serve`: runs the server on the data directory's own runtime, and closes the databases (every
/// acknowledged commit is durable) once the server has dropped its sessions.
fn serve(data: PathBuf, options: qubedb_server::ServerOptions) -> ExitCode {
    let pg_address = options.pg_address;
    let security = format!(
        "authentication {}, TLS {}",
        match options.authentication {
            qubedb_server::AuthMethod::Trust => "trust",
            qubedb_server::AuthMethod::ScramSha256 => "scram-sha-256",
        },
        if options.tls.is_some() { "on" } else { "off" }
    );
    let cluster = match Cluster::open(&data) {
        Ok(cluster) => cluster,
        Err(error) => {
            print_error(&error);
            return ExitCode::FAILURE;
        }
    };
    let runtime = cluster.runtime_handle();
    let cluster = runtime.block_on(async {
        let server = match qubedb_server::Server::bind(cluster, options).await {
            Ok(server) => server,
            Err(error) => {
                eprintln!("ERROR:  cannot serve on {pg_address}: {error}");
                return None;
            }
        };
        match server.local_address() {
            Ok(address) => eprintln!(
                "qubedb {}: data directory {}, PostgreSQL protocol on {address} ({security})",
                env!("CARGO_PKG_VERSION"),
                data.display()
            ),
            Err(error) => eprintln!("qubedb: listening, address unknown: {error}"),
        }
        if let Some(path) = server.socket_path() {
            eprintln!("qubedb: also on the Unix-domain socket {}", path.display());
        }
        let cluster = server.run(qubedb_server::shutdown_signal()).await;
        eprintln!("qubedb: shutting down");
        Some(cluster)
    });
    match cluster {
        // The last reference: dropping it outside the runtime closes the stores.
        Some(cluster) => {
            drop(cluster);
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            data,
            pg_address,
            max_connections,
            authentication,
            tls_cert,
            tls_key,
            socket_directory,
        } => serve(
            data,
            qubedb_server::ServerOptions {
                pg_address,
                connections_max: max_connections,
                authentication,
                tls: tls_cert
                    .zip(tls_key)
                    .map(|(certificate, key)| qubedb_server::TlsFiles { certificate, key }),
                socket_directory,
            },
        ),
        Command::Shell { data, database } => {
            let database = match open(data.as_ref(), &database) {
                Ok(database) => database,
                Err(error) => {
                    print_error(&error);
                    return ExitCode::FAILURE;
                }
            };
            shell::run(&database, data.is_none())
        }
        Command::Sql {
            data,
            database,
            command,
            format,
        } => {
            let sql = match command {
                Some(sql) => sql,
                None => {
                    let mut sql = String::new();
                    if let Err(error) = std::io::stdin().read_to_string(&mut sql) {
                        eprintln!("ERROR: cannot read standard input: {error}");
                        return ExitCode::FAILURE;
                    }
                    sql
                }
            };
            let database = match open(Some(&data), &database) {
                Ok(database) => database,
                Err(error) => {
                    print_error(&error);
                    return ExitCode::FAILURE;
                }
            };
            let mut session = database.session();
            let format = Format::from(format);
            let mut stdout = std::io::stdout().lock();
            match session.run_script(&sql, |outcome| print_outcome(&mut stdout, &outcome, format)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    print_error(&error);
                    ExitCode::FAILURE
                }
            }
        }
        Command::Import {
            data,
            database,
            jsonl,
            table,
            columns,
        } => {
            let database = match open(Some(&data), &database) {
                Ok(database) => database,
                Err(error) => {
                    print_error(&error);
                    return ExitCode::FAILURE;
                }
            };
            let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
            let column_list = if columns.is_empty() {
                String::new()
            } else {
                let names: Vec<String> = columns.iter().map(|name| quote(name)).collect();
                format!(" ({})", names.join(", "))
            };
            let sql = format!(
                "COPY {}{column_list} FROM '{}' (FORMAT json)",
                quote(&table),
                jsonl.display().to_string().replace('\'', "''")
            );
            let mut session = database.session();
            match session.run(&sql) {
                Ok(outcomes) => {
                    let loaded = outcomes.last().map_or(0, |outcome| outcome.rows_affected);
                    eprintln!("imported {loaded} rows into {table}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    print_error(&error);
                    ExitCode::FAILURE
                }
            }
        }
    }
}
