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
    let reordered = reorder_sequence_options(sql);
    let sql = reordered.as_deref().unwrap_or(sql);
    Parser::new(&dialect)
        .with_recursion_limit(PARSER_RECURSION_MAX)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|error| parser_error_in(&error.to_string(), sql))
}

/// PostgreSQL accepts the options of `CREATE SEQUENCE` in any order (pg_dump writes `START WITH` first);
/// sqlparser 0.62 only in a fixed one. Rewrites each `CREATE SEQUENCE` so its options come in that order.
/// Returns `None` when there is nothing to rewrite.
fn reorder_sequence_options(sql: &str) -> Option<String> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if !sql.to_ascii_uppercase().contains("SEQUENCE") {
        return None;
    }
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql).tokenize().ok()?;
    let keyword = |token: &Token| match token {
        Token::Word(word) => Some(word.keyword),
        _ => None,
    };
    // Rank of the clause a keyword starts, in sqlparser's order.
    let rank = |tokens: &[Token], at: usize| -> Option<usize> {
        match keyword(&tokens[at])? {
            Keyword::AS => Some(0),
            Keyword::INCREMENT => Some(1),
            Keyword::MINVALUE => Some(2),
            Keyword::MAXVALUE => Some(3),
            Keyword::START => Some(4),
            Keyword::CACHE => Some(5),
            Keyword::CYCLE => Some(6),
            Keyword::OWNED => Some(7),
            Keyword::NO => {
                let next = tokens[at + 1..]
                    .iter()
                    .find(|token| !matches!(token, Token::Whitespace(_)))?;
                match keyword(next)? {
                    Keyword::MINVALUE => Some(2),
                    Keyword::MAXVALUE => Some(3),
                    Keyword::CYCLE => Some(6),
                    _ => None,
                }
            }
            _ => None,
        }
    };
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    let mut changed = false;
    let mut index = 0;
    while index < tokens.len() {
        let is_create_sequence = keyword(&tokens[index]) == Some(Keyword::CREATE) && {
            let words: Vec<Keyword> = tokens[index + 1..]
                .iter()
                .filter(|token| !matches!(token, Token::Whitespace(_)))
                .take(2)
                .filter_map(keyword)
                .collect();
            words.first() == Some(&Keyword::SEQUENCE)
                || (matches!(words.first(), Some(Keyword::TEMP | Keyword::TEMPORARY))
                    && words.get(1) == Some(&Keyword::SEQUENCE))
        };
        if !is_create_sequence {
            out.push(tokens[index].to_string());
            index += 1;
            continue;
        }
        // Copy up to the first clause keyword after the name, then sort the clauses up to `;`.
        let end = tokens[index..]
            .iter()
            .position(|token| matches!(token, Token::SemiColon))
            .map_or(tokens.len(), |offset| index + offset);
        let mut at = index;
        let mut seen_sequence = false;
        while at < end {
            if keyword(&tokens[at]) == Some(Keyword::SEQUENCE) {
                seen_sequence = true;
            } else if seen_sequence && rank(&tokens, at).is_some() {
                break;
            }
            out.push(tokens[at].to_string());
            at += 1;
        }
        let mut clauses: Vec<(usize, String)> = Vec::new();
        while at < end {
            let clause_rank = rank(&tokens, at).unwrap_or(usize::MAX);
            let mut text = tokens[at].to_string();
            at += 1;
            // NO MINVALUE / NO MAXVALUE / NO CYCLE: the second keyword belongs to this clause.
            if keyword(&tokens[at - 1]) == Some(Keyword::NO) {
                while at < end && matches!(tokens[at], Token::Whitespace(_)) {
                    text.push_str(&tokens[at].to_string());
                    at += 1;
                }
                if at < end {
                    text.push_str(&tokens[at].to_string());
                    at += 1;
                }
            }
            while at < end && rank(&tokens, at).is_none() {
                text.push_str(&tokens[at].to_string());
                at += 1;
            }
            clauses.push((clause_rank, text));
        }
        let sorted = clauses.windows(2).all(|pair| pair[0].0 <= pair[1].0);
        if !sorted {
            changed = true;
            clauses.sort_by_key(|(rank, _)| *rank);
        }
        for (_, text) in clauses {
            let trimmed = text.trim_end().to_string();
            out.push(trimmed);
            out.push(" ".into());
        }
        index = end;
    }
    changed.then(|| out.concat())
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
    fn sequence_options_in_any_order() {
        let statements =
            parse("CREATE SEQUENCE s START WITH 10 NO MAXVALUE INCREMENT BY 5 CACHE 1; SELECT 1")
                .expect("parses");
        assert_eq!(statements.len(), 2);
        assert_eq!(
            statements[0].to_string(),
            "CREATE SEQUENCE s INCREMENT BY 5 NO MAXVALUE START WITH 10 CACHE 1"
        );
    }

    #[test]
    fn errors_carry_sqlstate_and_position() {
        let error = parse("SELECT 1;\nSELEC 2").expect_err("syntax error");
        assert_eq!(error.code, "42601");
        assert_eq!(error.position, Some(11));
        assert!(error.message.contains("SELEC"), "{}", error.message);
    }
}
