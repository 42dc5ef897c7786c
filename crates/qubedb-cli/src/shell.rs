//! The interactive shell: line editing and history (rustyline), statements that span lines until a `;`
//! outside quotes and comments, and psql-style meta-commands (`\d`, `\dt`, `\d NAME`, `\timing`, `\q`).

use std::process::ExitCode;
use std::time::Instant;

use qubedb::{Database, Session};
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::output::{Format, print_error, print_outcome};

const HELP: &str = "\
  \\d            list tables, views, indexes and sequences
  \\dt           list tables
  \\d NAME       describe table NAME
  \\timing       toggle printing of statement times
  \\q            quit
  \\?            this help
SQL statements end with ';' and may span several lines.";

/// True when `buffer` holds at least one complete statement: it ends (ignoring whitespace and comments)
/// with a `;` that is outside string literals, quoted identifiers, comments and dollar quotes.
pub fn is_complete(buffer: &str) -> bool {
    let characters: Vec<char> = buffer.chars().collect();
    let mut index = 0;
    let mut last_significant = None;
    while index < characters.len() {
        let character = characters[index];
        match character {
            '\'' | '"' => {
                let quote = character;
                index += 1;
                while index < characters.len() {
                    if characters[index] == quote {
                        if characters.get(index + 1) == Some(&quote) {
                            index += 2;
                            continue;
                        }
                        break;
                    }
                    index += 1;
                }
                if index >= characters.len() {
                    return false;
                }
                last_significant = Some(quote);
            }
            '-' if characters.get(index + 1) == Some(&'-') => {
                while index < characters.len() && characters[index] != '\n' {
                    index += 1;
                }
            }
            '/' if characters.get(index + 1) == Some(&'*') => {
                index += 2;
                while index + 1 < characters.len()
                    && !(characters[index] == '*' && characters[index + 1] == '/')
                {
                    index += 1;
                }
                if index + 1 >= characters.len() {
                    return false;
                }
                index += 1;
            }
            '$' => {
                // A dollar quote: $tag$ ... $tag$
                let start = index;
                let mut end = index + 1;
                while end < characters.len()
                    && (characters[end].is_alphanumeric() || characters[end] == '_')
                {
                    end += 1;
                }
                if end < characters.len() && characters[end] == '$' {
                    let tag: String = characters[start..=end].iter().collect();
                    let rest: String = characters[end + 1..].iter().collect();
                    match rest.find(&tag) {
                        Some(offset) => {
                            index =
                                end + 1 + rest[..offset].chars().count() + tag.chars().count() - 1;
                            last_significant = Some('$');
                        }
                        None => return false,
                    }
                } else {
                    last_significant = Some('$');
                }
            }
            character if character.is_whitespace() => {}
            character => last_significant = Some(character),
        }
        index += 1;
    }
    last_significant == Some(';')
}

fn describe(session: &mut Session, argument: &str, tables_only: bool) {
    if argument.is_empty() {
        match session.list_relations() {
            Ok(relations) => {
                let rows: Vec<_> = relations
                    .into_iter()
                    .filter(|relation| !tables_only || relation.kind == "table")
                    .collect();
                if rows.is_empty() {
                    println!("Did not find any relations.");
                    return;
                }
                println!("{:<10} | {:<30} | Type", "Schema", "Name");
                println!("{}", "-".repeat(54));
                for relation in &rows {
                    println!(
                        "{:<10} | {:<30} | {}",
                        relation.schema, relation.name, relation.kind
                    );
                }
                println!(
                    "({} row{})\n",
                    rows.len(),
                    if rows.len() == 1 { "" } else { "s" }
                );
            }
            Err(error) => print_error(&error),
        }
        return;
    }
    match session.describe_table(argument) {
        Ok(Some(table)) => {
            println!("Table \"{}.{}\"", table.schema, table.name);
            println!(
                "{:<24} | {:<28} | {:<8} | Default",
                "Column", "Type", "Nullable"
            );
            println!("{}", "-".repeat(80));
            for column in &table.columns {
                println!(
                    "{:<24} | {:<28} | {:<8} | {}",
                    column.name,
                    column.data_type,
                    if column.not_null { "not null" } else { "" },
                    column.default.as_deref().unwrap_or("")
                );
            }
            for (title, lines) in [
                ("Indexes:", &table.indexes),
                ("Check constraints:", &table.checks),
                ("Foreign-key constraints:", &table.foreign_keys),
                ("Referenced by:", &table.referenced_by),
            ] {
                if !lines.is_empty() {
                    println!("{title}");
                    for line in lines {
                        println!("    {line}");
                    }
                }
            }
            println!();
        }
        Ok(None) => eprintln!("Did not find any relation named \"{argument}\"."),
        Err(error) => print_error(&error),
    }
}

/// Runs the REPL until `\q` or end of input.
pub fn run(database: &Database, in_memory: bool) -> ExitCode {
    let mut editor = match DefaultEditor::new() {
        Ok(editor) => editor,
        Err(error) => {
            eprintln!("ERROR:  cannot start the line editor: {error}");
            return ExitCode::FAILURE;
        }
    };
    let history =
        std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".qubedb_history"));
    if let Some(history) = &history {
        let _ = editor.load_history(history);
    }
    println!(
        "QubeDB {} ({}). Type \\? for help, \\q to quit.",
        env!("CARGO_PKG_VERSION"),
        if in_memory {
            "in-memory database"
        } else {
            "data directory"
        }
    );
    let mut session = database.session();
    let mut timing = false;
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            if session.transaction_failed() {
                "qubedb!> "
            } else if session.in_transaction() {
                "qubedb*> "
            } else {
                "qubedb=> "
            }
        } else {
            "qubedb-> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(error) => {
                eprintln!("ERROR:  {error}");
                break;
            }
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            let (command, argument) = trimmed
                .split_once(char::is_whitespace)
                .unwrap_or((trimmed, ""));
            match command {
                "\\q" => break,
                "\\?" | "\\h" => println!("{HELP}"),
                "\\timing" => {
                    timing = !timing;
                    println!("Timing is {}.", if timing { "on" } else { "off" });
                }
                "\\d" => describe(&mut session, argument.trim(), false),
                "\\dt" => describe(&mut session, argument.trim(), true),
                other => eprintln!("invalid command {other}; try \\? for help"),
            }
            continue;
        }
        if !buffer.is_empty() {
            buffer.push('\n');
        }
        buffer.push_str(&line);
        if !is_complete(&buffer) {
            continue;
        }
        let _ = editor.add_history_entry(buffer.as_str());
        let started = Instant::now();
        let mut stdout = std::io::stdout().lock();
        let outcome = session.run_script(&buffer, |outcome| {
            print_outcome(&mut stdout, &outcome, Format::Aligned)
        });
        drop(stdout);
        if let Err(error) = outcome {
            print_error(&error);
        }
        if timing {
            println!("Time: {:.3} ms", started.elapsed().as_secs_f64() * 1000.0);
        }
        buffer.clear();
    }
    if let Some(history) = &history {
        let _ = editor.save_history(history);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::is_complete;

    #[test]
    fn statements_end_at_a_semicolon_outside_quotes_and_comments() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1; -- done"));
        assert!(!is_complete("SELECT ';'"));
        assert!(is_complete("SELECT ';';"));
        assert!(!is_complete("SELECT 1 /* ; */"));
        assert!(!is_complete("SELECT 'it''s;"));
        assert!(is_complete("SELECT $$a;b$$;"));
        assert!(!is_complete("SELECT $$a;b"));
        assert!(!is_complete("CREATE TABLE t (\n  id int"));
    }
}
