//! The `qubedb` command: wiring only. `shell` is an interactive REPL, `sql` runs statements from `-c` or
//! standard input. Both print results as PostgreSQL's psql does, or as CSV, TSV or JSON lines.

mod output;
mod shell;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use qubedb::Database;

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
    /// Interactive SQL shell (in memory unless --data is given).
    Shell {
        /// Data directory to open (created if missing).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Runs SQL statements from -c or from standard input, printing each result; stops at the first error.
    Sql {
        /// Data directory to open (created if missing).
        #[arg(long)]
        data: PathBuf,
        /// The SQL to run (otherwise standard input is read).
        #[arg(short = 'c', long = "command")]
        command: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = FormatArg::Aligned)]
        format: FormatArg,
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

fn open(data: Option<&PathBuf>) -> Result<Database, qubedb::Error> {
    match data {
        Some(directory) => Database::open(directory),
        None => Database::open_in_memory(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Shell { data } => {
            let database = match open(data.as_ref()) {
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
            let database = match open(Some(&data)) {
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
    }
}
