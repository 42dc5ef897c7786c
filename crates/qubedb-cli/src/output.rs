//! Printing results: psql's aligned table with `(n rows)`, CSV, TSV, or one JSON object per row; command
//! tags (`INSERT 0 3`) for statements without rows; errors as `ERROR:  message` with SQLSTATE on stderr.

use std::io::Write;

use qubedb::StatementOutcome;
use qubedb::arrow::datatypes::DataType;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Aligned,
    Csv,
    Tsv,
    Json,
}

/// Prints an error the way psql does, with its SQLSTATE.
pub fn print_error(error: &qubedb::Error) {
    eprintln!("ERROR:  {}", error.message);
    if let Some(detail) = &error.detail {
        eprintln!("DETAIL:  {detail}");
    }
    if let Some(hint) = &error.hint {
        eprintln!("HINT:  {hint}");
    }
    if let Some(context) = error.context() {
        eprintln!("CONTEXT:  {context}");
    }
    if let Some(position) = error.position {
        eprintln!("POSITION:  {position}");
    }
    eprintln!("SQLSTATE:  {}", error.code);
}

fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_numeric()
}

/// Prints one statement's outcome. Write errors (a closed pipe) end the output silently.
pub fn print_outcome(out: &mut impl Write, outcome: &StatementOutcome, format: Format) {
    // Notices go to standard error, as psql prints them.
    for notice in &outcome.notices {
        eprintln!("{}:  {}", notice.severity, notice.message);
    }
    let _ = write_outcome(out, outcome, format);
}

fn write_outcome(
    out: &mut impl Write,
    outcome: &StatementOutcome,
    format: Format,
) -> std::io::Result<()> {
    let Some(schema) = &outcome.schema else {
        writeln!(out, "{}", outcome.tag)?;
        return Ok(());
    };
    // COPY ... TO STDOUT writes its data as it is, in every output format.
    if let Some(data) = outcome.copy_data() {
        out.write_all(&data.map_err(std::io::Error::other)?)?;
        return Ok(());
    }
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    let numeric: Vec<bool> = schema
        .fields()
        .iter()
        .map(|field| is_numeric(field.data_type()))
        .collect();
    let rows = outcome.text_rows();
    match format {
        Format::Aligned => {
            if let Some(table) = outcome.psql_aligned() {
                write!(out, "{table}")?;
            }
            if !outcome.tag.starts_with("SELECT") && !outcome.tag.starts_with("SHOW") {
                writeln!(out, "{}", outcome.tag)?;
            }
            writeln!(out)?;
        }
        Format::Csv | Format::Tsv => {
            let separator = if format == Format::Csv { ',' } else { '\t' };
            let escape = |text: &str| -> String {
                if format == Format::Csv
                    && (text.contains([',', '"', '\n', '\r']) || text.is_empty())
                {
                    format!("\"{}\"", text.replace('"', "\"\""))
                } else if format == Format::Tsv {
                    text.replace('\\', "\\\\")
                        .replace('\t', "\\t")
                        .replace('\n', "\\n")
                } else {
                    text.to_string()
                }
            };
            let header: Vec<String> = names.iter().map(|name| escape(name)).collect();
            writeln!(out, "{}", header.join(&separator.to_string()))?;
            for row in &rows {
                let cells: Vec<String> = row
                    .iter()
                    .map(|value| match value {
                        None => String::new(),
                        Some(text) => escape(text),
                    })
                    .collect();
                writeln!(out, "{}", cells.join(&separator.to_string()))?;
            }
        }
        Format::Json => {
            let kinds: Vec<&DataType> = schema
                .fields()
                .iter()
                .map(|field| field.data_type())
                .collect();
            for row in &rows {
                let mut object = serde_json::Map::new();
                for (column, value) in row.iter().enumerate() {
                    let json = match value {
                        None => serde_json::Value::Null,
                        Some(text) if *kinds[column] == DataType::Boolean => {
                            serde_json::Value::Bool(text == "t")
                        }
                        Some(text) if numeric[column] => serde_json::from_str(text)
                            .unwrap_or_else(|_| serde_json::Value::String(text.clone())),
                        Some(text) => serde_json::Value::String(text.clone()),
                    };
                    object.insert(names[column].clone(), json);
                }
                writeln!(out, "{}", serde_json::Value::Object(object))?;
            }
        }
    }
    Ok(())
}
