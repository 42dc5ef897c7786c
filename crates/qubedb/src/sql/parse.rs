//! Parsing SQL text into statements with sqlparser's PostgreSQL dialect, and turning parser errors into
//! SQLSTATE 42601 with the 1-based character position PostgreSQL reports.

use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, Result};

/// Longest SQL text accepted, in bytes.
pub const SQL_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Deepest expression nesting the parser accepts.
pub const PARSER_RECURSION_MAX: usize = 200;

/// Parses `sql` into its statements.
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    if sql.len() > SQL_BYTES_MAX {
        return Err(Error::user(
            "54000",
            format!(
                "statement of {} bytes exceeds the limit sql_bytes_max = {SQL_BYTES_MAX}",
                sql.len()
            ),
        ));
    }
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .with_recursion_limit(PARSER_RECURSION_MAX)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|error| parser_error_in(&error.to_string(), sql))
}

/// A parser error without the statement text (position as given by line/column only when line is 1).
pub fn parser_error(message: &str) -> Error {
    parser_error_in(message, "")
}

fn parser_error_in(message: &str, sql: &str) -> Error {
    let text = message
        .trim_start_matches("sql parser error: ")
        .trim_start_matches("SQL error: ParserError(\"")
        .trim_end_matches("\")");
    let (text, position) = match text.rfind(" at Line: ") {
        Some(at) => {
            let location = &text[at + " at Line: ".len()..];
            let mut parts = location.split(", Column: ");
            let line = parts
                .next()
                .and_then(|line| line.trim().parse::<usize>().ok());
            let column = parts
                .next()
                .and_then(|column| column.trim().parse::<usize>().ok());
            (
                text[..at].to_string(),
                line.zip(column)
                    .map(|(line, column)| position_of(sql, line, column)),
            )
        }
        None => (text.to_string(), None),
    };
    let lower = text.to_lowercase();
    let message = match lower.find("found: ") {
        Some(at) if lower.starts_with("expected") => {
            let found = text[at + "found: ".len()..].trim();
            if found == "EOF" {
                "syntax error at end of input".to_string()
            } else {
                format!("syntax error at or near \"{found}\" ({text})")
            }
        }
        _ => format!("syntax error: {text}"),
    };
    let code = if lower.contains("recursion limit") {
        "54001"
    } else {
        "42601"
    };
    Error::user(code, message).with_position(position)
}

/// The 1-based character position of `line`:`column` (both 1-based) in `sql`.
fn position_of(sql: &str, line: usize, column: usize) -> usize {
    let mut position = 0;
    for (index, text) in sql.split('\n').enumerate() {
        if index + 1 == line {
            return position + column;
        }
        position += text.chars().count() + 1;
    }
    column
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_sqlstate_and_position() {
        let error = parse("SELECT 1;\nSELEC 2").expect_err("syntax error");
        assert_eq!(error.code, "42601");
        assert_eq!(error.position, Some(11));
        assert!(error.message.contains("SELEC"), "{}", error.message);
    }
}
