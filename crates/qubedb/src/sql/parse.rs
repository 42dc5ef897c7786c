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
    // Each rewrite below first looks for its keywords in the upper-cased text, computed once: a
    // rewrite only replaces its own keywords, so the others' look-ups stay valid.
    let upper = sql.to_ascii_uppercase();
    let reordered = reorder_sequence_options(sql, &upper);
    let sql = reordered.as_deref().unwrap_or(sql);
    let checked = check_database_options(sql, &upper)?;
    let sql = checked.as_deref().unwrap_or(sql);
    let users = user_as_role(sql, &upper);
    let sql = users.as_deref().unwrap_or(sql);
    let copy = copy_boolean_options(sql, &upper);
    let sql = copy.as_deref().unwrap_or(sql);
    let maintenance = vacuum_and_analyze(sql, &upper)?;
    let sql = maintenance.as_deref().unwrap_or(sql);
    let reindexed = reindex(sql, &upper)?;
    let sql = reindexed.as_deref().unwrap_or(sql);
    let assignments = subscript_assignments(sql, &upper);
    let sql = assignments.as_deref().unwrap_or(sql);
    let domains = domain_not_null(sql, &upper);
    let sql = domains.as_deref().unwrap_or(sql);
    let variadic = variadic_arguments(sql, &upper);
    let sql = variadic.as_deref().unwrap_or(sql);
    let definitions = unnamed_column_definitions(sql, &upper);
    let sql = definitions.as_deref().unwrap_or(sql);
    let vectors = vector_operators(sql);
    let sql = vectors.as_deref().unwrap_or(sql);
    let logged = unlogged_tables(sql, &upper);
    let sql = logged.as_deref().unwrap_or(sql);
    Parser::new(&dialect)
        .with_recursion_limit(PARSER_RECURSION_MAX)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|error| parser_error_in(&error.to_string(), sql))
}

/// PostgreSQL accepts the options of `CREATE SEQUENCE` in any order (pg_dump writes `START WITH` first);
/// sqlparser 0.62 only in a fixed one. Rewrites each `CREATE SEQUENCE` so its options come in that order.
/// Returns `None` when there is nothing to rewrite.
fn reorder_sequence_options(sql: &str, upper: &str) -> Option<String> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if !upper.contains("SEQUENCE") {
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

/// The tokens of each statement of `sql` (runs between semicolons), or `None` if it does not tokenize.
fn statements_of(sql: &str) -> Option<Vec<Vec<datafusion::sql::sqlparser::tokenizer::Token>>> {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut statements: Vec<Vec<Token>> = vec![Vec::new()];
    for token in tokens {
        if matches!(token, Token::SemiColon) {
            statements.push(Vec::new());
        } else {
            statements.last_mut().expect("never empty").push(token);
        }
    }
    Some(statements)
}

/// PostgreSQL's `VACUUM [(options)] [FULL] [FREEZE] [VERBOSE] [ANALYZE] [table [(columns)], ...]` and
/// `ANALYZE [(options)] [VERBOSE] [table [(columns)], ...]`; sqlparser 0.62 parses other dialects' forms,
/// one table each. Rewrites each into sqlparser's: `ANALYZE table [FOR COLUMNS c, ...]` per table when
/// statistics are asked for (with `COMPUTE STATISTICS` marking one that came from VACUUM, whose command
/// tag is VACUUM), else `VACUUM [FULL] table` per table. Returns `None` when there is nothing to rewrite.
fn vacuum_and_analyze(sql: &str, upper: &str) -> Result<Option<String>> {
    use datafusion::sql::sqlparser::tokenizer::Token;
    if !upper.contains("VACUUM") && !upper.contains("ANALY") {
        return Ok(None);
    }
    let Some(statements) = statements_of(sql) else {
        return Ok(None);
    };
    let word = |token: &Token| match token {
        Token::Word(word) => Some(word.value.to_ascii_uppercase()),
        _ => None,
    };
    let mut changed = false;
    let mut out: Vec<String> = Vec::new();
    for statement in statements {
        let significant: Vec<&Token> = statement
            .iter()
            .filter(|token| !matches!(token, Token::Whitespace(_)))
            .collect();
        let command = significant.first().and_then(|token| word(token));
        let is_vacuum = command.as_deref() == Some("VACUUM");
        let is_analyze = matches!(command.as_deref(), Some("ANALYZE" | "ANALYSE"));
        if !is_vacuum && !is_analyze {
            out.push(statement.iter().map(Token::to_string).collect());
            continue;
        }
        changed = true;
        let mut at = 1;
        let mut full = false;
        let mut analyze = is_analyze;
        // Parenthesized options.
        if matches!(significant.get(at), Some(Token::LParen)) {
            at += 1;
            while at < significant.len() && !matches!(significant[at], Token::RParen) {
                if let Some(option) = word(significant[at]) {
                    let value = significant.get(at + 1).and_then(|token| word(token));
                    let enabled = !matches!(value.as_deref(), Some("FALSE" | "OFF"))
                        && !matches!(significant.get(at + 1), Some(Token::Number(number, _)) if number == "0");
                    match option.as_str() {
                        "FULL" => full = enabled,
                        "ANALYZE" | "ANALYSE" => analyze = analyze || enabled,
                        "FREEZE"
                        | "VERBOSE"
                        | "SKIP_LOCKED"
                        | "DISABLE_PAGE_SKIPPING"
                        | "INDEX_CLEANUP"
                        | "PROCESS_MAIN"
                        | "PROCESS_TOAST"
                        | "TRUNCATE"
                        | "PARALLEL"
                        | "SKIP_DATABASE_STATS"
                        | "ONLY_DATABASE_STATS"
                        | "BUFFER_USAGE_LIMIT"
                        | "TRUE"
                        | "FALSE"
                        | "ON"
                        | "OFF"
                        | "AUTO" => {}
                        other => {
                            return Err(Error::user(
                                "42601",
                                format!(
                                    "unrecognized {} option \"{}\"",
                                    if is_vacuum { "VACUUM" } else { "ANALYZE" },
                                    other.to_lowercase()
                                ),
                            ));
                        }
                    }
                }
                at += 1;
            }
            at += 1;
        }
        // Old-style keywords.
        while let Some(keyword) = significant.get(at).and_then(|token| word(token)) {
            match keyword.as_str() {
                "FULL" if is_vacuum => full = true,
                "FREEZE" if is_vacuum => {}
                "VERBOSE" => {}
                "ANALYZE" | "ANALYSE" if is_vacuum => analyze = true,
                _ => break,
            }
            at += 1;
        }
        // Tables, each with an optional column list.
        let mut targets: Vec<(String, Vec<String>)> = Vec::new();
        let mut name = String::new();
        let mut columns: Vec<String> = Vec::new();
        let mut in_columns = false;
        for token in &significant[at..] {
            match token {
                Token::LParen if !in_columns => in_columns = true,
                Token::RParen if in_columns => in_columns = false,
                Token::Comma if !in_columns => {
                    targets.push((std::mem::take(&mut name), std::mem::take(&mut columns)));
                }
                Token::Comma => {}
                other if in_columns => columns.push(other.to_string()),
                other => name.push_str(&other.to_string()),
            }
        }
        if !name.is_empty() {
            targets.push((name, columns));
        }
        let mut rewritten: Vec<String> = Vec::new();
        if targets.is_empty() {
            targets.push((String::new(), Vec::new()));
        }
        for (table, columns) in targets {
            let mut text = if analyze {
                format!("ANALYZE {table}")
            } else {
                format!("VACUUM{} {table}", if full { " FULL" } else { "" })
            };
            if analyze && !columns.is_empty() {
                text.push_str(&format!(" FOR COLUMNS {}", columns.join(", ")));
            }
            if analyze && is_vacuum && !table.is_empty() {
                text.push_str(" COMPUTE STATISTICS");
            }
            rewritten.push(text);
        }
        out.push(rewritten.join("; "));
    }
    Ok(changed.then(|| out.join(";")))
}

/// What a `REINDEX` rebuilds, carried through sqlparser (which has no REINDEX statement) as the
/// threshold of a Redshift-style `VACUUM REINDEX name TO n PERCENT` that only [`reindex`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReindexKind {
    Table,
    Index,
    Schema,
    Database,
    System,
    /// SQLite's `REINDEX name`: an index, else a table.
    IndexOrTable,
}

impl ReindexKind {
    /// The percent value that marks the kind in the internal VACUUM form.
    pub fn code(self) -> u8 {
        match self {
            ReindexKind::Table => 0,
            ReindexKind::Index => 1,
            ReindexKind::Schema => 2,
            ReindexKind::Database => 3,
            ReindexKind::System => 4,
            ReindexKind::IndexOrTable => 5,
        }
    }

    /// The kind a code marks.
    pub fn from_code(code: &str) -> Option<ReindexKind> {
        [
            ReindexKind::Table,
            ReindexKind::Index,
            ReindexKind::Schema,
            ReindexKind::Database,
            ReindexKind::System,
            ReindexKind::IndexOrTable,
        ]
        .into_iter()
        .find(|kind| kind.code().to_string() == code)
    }
}

/// PostgreSQL's `REINDEX [(options)] {INDEX | TABLE | SCHEMA | DATABASE | SYSTEM} [CONCURRENTLY] [name]`:
/// rewritten to `VACUUM REINDEX name TO code PERCENT` ([`ReindexKind::code`]), which sqlparser parses
/// and `Session::vacuum` recognizes. Returns `None` when there is nothing to rewrite.
fn reindex(sql: &str, upper: &str) -> Result<Option<String>> {
    use datafusion::sql::sqlparser::tokenizer::Token;
    if !upper.contains("REINDEX") {
        return Ok(None);
    }
    let Some(statements) = statements_of(sql) else {
        return Ok(None);
    };
    let word = |token: &Token| match token {
        Token::Word(word) if word.quote_style.is_none() => Some(word.value.to_ascii_uppercase()),
        _ => None,
    };
    let mut changed = false;
    let mut out: Vec<String> = Vec::new();
    for statement in statements {
        let significant: Vec<&Token> = statement
            .iter()
            .filter(|token| !matches!(token, Token::Whitespace(_)))
            .collect();
        if significant.first().and_then(|token| word(token)).as_deref() != Some("REINDEX") {
            out.push(statement.iter().map(Token::to_string).collect());
            continue;
        }
        changed = true;
        let mut at = 1;
        if matches!(significant.get(at), Some(Token::LParen)) {
            while at < significant.len() && !matches!(significant[at], Token::RParen) {
                at += 1;
            }
            at += 1;
        }
        let kind = match significant.get(at).and_then(|token| word(token)).as_deref() {
            Some("TABLE") => ReindexKind::Table,
            Some("INDEX") => ReindexKind::Index,
            Some("SCHEMA") => ReindexKind::Schema,
            Some("DATABASE") => ReindexKind::Database,
            Some("SYSTEM") => ReindexKind::System,
            // SQLite's `REINDEX name` (one name and nothing else).
            _ if significant.len() == at + 1
                || (significant.len() == at + 3
                    && matches!(significant[at + 1], Token::Period)) =>
            {
                ReindexKind::IndexOrTable
            }
            _ => {
                return Err(Error::user(
                    "42601",
                    "syntax error at or near \"REINDEX\": expected INDEX, TABLE, SCHEMA, DATABASE or SYSTEM",
                ));
            }
        };
        if kind != ReindexKind::IndexOrTable {
            at += 1;
        }
        if significant.get(at).and_then(|token| word(token)).as_deref() == Some("CONCURRENTLY") {
            at += 1;
        }
        let name: String = significant[at..]
            .iter()
            .map(|token| token.to_string())
            .collect();
        let name = if name.is_empty() {
            if matches!(kind, ReindexKind::Database | ReindexKind::System) {
                "\"*\"".to_string()
            } else {
                return Err(Error::user(
                    "42601",
                    "syntax error at end of input: REINDEX needs a name",
                ));
            }
        } else {
            name
        };
        out.push(format!("VACUUM REINDEX {name} TO {} PERCENT", kind.code()));
    }
    Ok(changed.then(|| out.join(";")))
}

/// PostgreSQL spells the booleans of COPY options `true`, `on` or `1` (`WITH (FREEZE on, HEADER 1)`, as
/// pgbench writes); sqlparser 0.62 knows only TRUE and FALSE. Rewrites the others in COPY statements.
fn copy_boolean_options(sql: &str, upper: &str) -> Option<String> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::Token;
    if !upper.contains("COPY") || !(upper.contains("FREEZE") || upper.contains("HEADER")) {
        return None;
    }
    let (tokens, significant) = significant_tokens(sql)?;
    let keyword = |at: usize| keyword_at(&tokens, at);
    let mut in_copy = false;
    let mut replaced: std::collections::HashMap<usize, String> = Default::default();
    for (position, &at) in significant.iter().enumerate() {
        match &tokens[at] {
            Token::SemiColon => in_copy = false,
            _ if position == 0 || matches!(tokens[significant[position - 1]], Token::SemiColon) => {
                in_copy = keyword(at) == Some(Keyword::COPY);
            }
            _ if in_copy && matches!(keyword(at), Some(Keyword::FREEZE | Keyword::HEADER)) => {
                let Some(&value) = significant.get(position + 1) else {
                    continue;
                };
                let truth = match &tokens[value] {
                    Token::Word(word) if word.value.eq_ignore_ascii_case("on") => Some("TRUE"),
                    Token::Word(word) if word.value.eq_ignore_ascii_case("off") => Some("FALSE"),
                    Token::Number(number, _) if number == "1" => Some("TRUE"),
                    Token::Number(number, _) if number == "0" => Some("FALSE"),
                    _ => None,
                };
                if let Some(truth) = truth {
                    replaced.insert(value, truth.to_string());
                }
            }
            _ => {}
        }
    }
    with_replacements(&tokens, replaced)
}

/// PostgreSQL assigns into part of a jsonb value through subscripts (`UPDATE t SET doc['a'][0] = v`);
/// sqlparser 0.62 accepts only a column name before the `=`. Rewrites each such assignment of an
/// UPDATE's SET list into `doc = qubedb_jsonb_assign(doc, (v), ('a'), (0))` (`sql/jsonb.rs`).
/// Returns `None` when there is nothing to rewrite.
fn subscript_assignments(sql: &str, upper: &str) -> Option<String> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::Token;
    if !upper.contains("UPDATE") || !sql.contains('[') {
        return None;
    }
    let (tokens, significant) = significant_tokens(sql)?;
    let text = |from: usize, to: usize| -> String {
        tokens[from..to].iter().map(ToString::to_string).collect()
    };
    // The position (in `significant`) of what ends the expression starting at `from`: a comma, `;`, a
    // closing bracket or WHERE / FROM / RETURNING outside any bracket.
    let expression_end = |from: usize| -> usize {
        let mut depth = 0usize;
        for (position, &at) in significant.iter().enumerate().skip(from) {
            match &tokens[at] {
                Token::LParen | Token::LBracket => depth += 1,
                Token::RParen | Token::RBracket if depth == 0 => return position,
                Token::RParen | Token::RBracket => depth -= 1,
                Token::Comma | Token::SemiColon if depth == 0 => return position,
                _ if depth == 0
                    && matches!(
                        keyword_at(&tokens, at),
                        Some(Keyword::WHERE | Keyword::FROM | Keyword::RETURNING)
                    ) =>
                {
                    return position;
                }
                _ => {}
            }
        }
        significant.len()
    };
    let mut replaced: std::collections::HashMap<usize, String> = Default::default();
    let mut in_update = false;
    let mut position = 0;
    while position < significant.len() {
        let at = significant[position];
        match &tokens[at] {
            Token::SemiColon => in_update = false,
            _ if keyword_at(&tokens, at) == Some(Keyword::UPDATE) => in_update = true,
            _ if in_update && keyword_at(&tokens, at) == Some(Keyword::SET) => {
                in_update = false;
                let mut start = position + 1;
                // Per rewritten column: where its assignment is written, and its expression so far.
                let mut assigned: std::collections::HashMap<String, (usize, String)> =
                    Default::default();
                loop {
                    // The target: a column name, perhaps qualified, then its subscripts.
                    let mut cursor = start;
                    while cursor < significant.len()
                        && matches!(tokens[significant[cursor]], Token::Word(_))
                        && matches!(
                            significant.get(cursor + 1).map(|&next| &tokens[next]),
                            Some(Token::Period)
                        )
                    {
                        cursor += 2;
                    }
                    let column_end = cursor + 1;
                    let mut subscripts = Vec::new();
                    if cursor < significant.len()
                        && matches!(tokens[significant[cursor]], Token::Word(_))
                    {
                        cursor += 1;
                        while significant
                            .get(cursor)
                            .is_some_and(|&next| tokens[next] == Token::LBracket)
                        {
                            let close = expression_end(cursor + 1);
                            if significant
                                .get(close)
                                .is_none_or(|&next| tokens[next] != Token::RBracket)
                            {
                                break;
                            }
                            subscripts.push(text(significant[cursor] + 1, significant[close]));
                            cursor = close + 1;
                        }
                    }
                    let end = expression_end(start);
                    let is_assignment = !subscripts.is_empty()
                        && significant
                            .get(cursor)
                            .is_some_and(|&next| tokens[next] == Token::Eq);
                    if is_assignment && cursor < end {
                        let column = text(significant[start], significant[column_end - 1] + 1);
                        let value_end = significant.get(end).copied().unwrap_or(tokens.len());
                        let value = text(significant[cursor] + 1, value_end);
                        let arguments: String = subscripts
                            .iter()
                            .map(|subscript| format!(", ({subscript})"))
                            .collect();
                        // Several assignments into one column apply in order, each to the result
                        // of the one before (PostgreSQL allows them; plain `a = 1, a = 2` does not).
                        let (first, source) = match assigned.get(&column) {
                            Some((first, expression)) => (*first, expression.clone()),
                            None => (significant[start], column.clone()),
                        };
                        let expression =
                            format!("qubedb_jsonb_assign({source}, ({value}){arguments})");
                        replaced.insert(first, format!("{column} = {expression} "));
                        let blank_from = if first == significant[start] {
                            significant[start] + 1
                        } else {
                            // Also the comma before this assignment.
                            significant[start - 1]
                        };
                        for raw in blank_from..value_end {
                            if raw != first {
                                replaced.insert(raw, String::new());
                            }
                        }
                        assigned.insert(column, (first, expression));
                    }
                    match significant.get(end).map(|&next| &tokens[next]) {
                        Some(Token::Comma) => start = end + 1,
                        _ => {
                            position = end;
                            break;
                        }
                    }
                }
                continue;
            }
            _ => {}
        }
        position += 1;
    }
    with_replacements(&tokens, replaced)
}

/// PostgreSQL's `CREATE DOMAIN d AS int NOT NULL` (and `NULL`, which says nothing); sqlparser 0.62 takes
/// only table constraints after a domain's type. Rewrites `NOT NULL` into a CHECK named
/// [`NOT_NULL_MARKER`](crate::sql::user_types::NOT_NULL_MARKER), which `CREATE DOMAIN` turns back into
/// the domain's NOT NULL, and drops a bare `NULL`. Returns `None` when there is nothing to rewrite.
fn domain_not_null(sql: &str, upper: &str) -> Option<String> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::Token;
    if !upper.contains("DOMAIN") || !upper.contains("NULL") {
        return None;
    }
    let (tokens, significant) = significant_tokens(sql)?;
    let keyword = |at: usize| keyword_at(&tokens, at);
    let mut in_domain = false;
    let mut depth = 0usize;
    let mut replaced: std::collections::HashMap<usize, String> = Default::default();
    for (position, &at) in significant.iter().enumerate() {
        let previous = position.checked_sub(1).map(|before| significant[before]);
        match &tokens[at] {
            Token::SemiColon => in_domain = false,
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ if previous.is_none_or(|before| matches!(tokens[before], Token::SemiColon)) => {
                in_domain = keyword(at) == Some(Keyword::CREATE)
                    && significant
                        .get(position + 1)
                        .is_some_and(|&next| keyword(next) == Some(Keyword::DOMAIN));
                depth = 0;
            }
            _ if in_domain && depth == 0 && keyword(at) == Some(Keyword::NULL) => {
                let after = previous.and_then(keyword);
                if after == Some(Keyword::NOT) {
                    let not = previous.expect("NOT precedes");
                    replaced.insert(
                        not,
                        format!(
                            "CONSTRAINT {} CHECK (VALUE IS NOT NULL)",
                            crate::sql::user_types::NOT_NULL_MARKER
                        ),
                    );
                    replaced.insert(at, String::new());
                } else if after != Some(Keyword::DEFAULT) {
                    replaced.insert(at, String::new());
                }
            }
            _ => {}
        }
    }
    with_replacements(&tokens, replaced)
}

/// PostgreSQL passes an array as a variadic function's arguments with `f(VARIADIC array)`; sqlparser
/// 0.62 has no VARIADIC. Rewrites `VARIADIC expr)` into `qubedb_variadic(expr))`, a marker the
/// functions that accept it expand (`sql/json_build.rs`). Returns `None` when there is nothing to do.
fn variadic_arguments(sql: &str, upper: &str) -> Option<String> {
    use datafusion::sql::sqlparser::tokenizer::Token;
    if !upper.contains("VARIADIC") {
        return None;
    }
    let (tokens, significant) = significant_tokens(sql)?;
    let mut replaced: std::collections::HashMap<usize, String> = Default::default();
    for (position, &at) in significant.iter().enumerate() {
        let Token::Word(word) = &tokens[at] else {
            continue;
        };
        if word.quote_style.is_some() || !word.value.eq_ignore_ascii_case("variadic") {
            continue;
        }
        let opens_argument = position.checked_sub(1).is_some_and(|before| {
            matches!(tokens[significant[before]], Token::LParen | Token::Comma)
        });
        if !opens_argument {
            continue;
        }
        // The argument runs to the parenthesis that closes the call.
        let mut depth = 0usize;
        for &next in &significant[position + 1..] {
            match &tokens[next] {
                Token::LParen | Token::LBracket => depth += 1,
                Token::RBracket => depth = depth.saturating_sub(1),
                Token::RParen if depth == 0 => {
                    replaced.insert(at, "qubedb_variadic(".to_string());
                    replaced.insert(next, "))".to_string());
                    break;
                }
                Token::RParen => depth -= 1,
                Token::SemiColon => break,
                _ => {}
            }
        }
    }
    with_replacements(&tokens, replaced)
}

/// `CREATE UNLOGGED TABLE`: every table is logged (and crash-safe) in QubeDB, so the word is dropped,
/// as PostgreSQL would treat the table but for its crash safety. Returns `None` when there is
/// nothing to do.
fn unlogged_tables(sql: &str, upper: &str) -> Option<String> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    if !upper.contains("UNLOGGED") {
        return None;
    }
    let (tokens, significant) = significant_tokens(sql)?;
    let mut replaced: std::collections::HashMap<usize, String> = Default::default();
    for window in significant.windows(3) {
        let [create, unlogged, table] = window else {
            continue;
        };
        let is_unlogged = matches!(&tokens[*unlogged],
            datafusion::sql::sqlparser::tokenizer::Token::Word(word)
                if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("unlogged"));
        if keyword_at(&tokens, *create) == Some(Keyword::CREATE)
            && is_unlogged
            && keyword_at(&tokens, *table) == Some(Keyword::TABLE)
        {
            replaced.insert(*unlogged, String::new());
        }
    }
    with_replacements(&tokens, replaced)
}

/// How the vector operators sqlparser 0.62 does not read as PostgreSQL's user-defined operators are
/// spelled for it: `<=>` (which it reads as MySQL's null-safe equality, at the precedence of `=`) and
/// `<+>` (which it splits into `<`, `+`, `>`). Both spellings tokenize as custom operators, with the
/// precedence PostgreSQL gives every operator it does not name; `sql/vector_planner.rs` maps them back.
pub const COSINE_OPERATOR_SPELLING: &str = "<=#>";
/// See [`COSINE_OPERATOR_SPELLING`].
pub const L1_OPERATOR_SPELLING: &str = "<~+>";

/// Respells `<=>` and `<+>` (see [`COSINE_OPERATOR_SPELLING`]). Returns `None` when there is nothing
/// to do.
fn vector_operators(sql: &str) -> Option<String> {
    use datafusion::sql::sqlparser::tokenizer::Token;
    if !sql.contains("<=>") && !sql.contains("<+>") {
        return None;
    }
    let (tokens, _) = significant_tokens(sql)?;
    let mut replaced: std::collections::HashMap<usize, String> = Default::default();
    for at in 0..tokens.len() {
        match &tokens[at] {
            Token::Spaceship => {
                replaced.insert(at, COSINE_OPERATOR_SPELLING.to_string());
            }
            Token::Lt
                if matches!(tokens.get(at + 1), Some(Token::Plus))
                    && matches!(tokens.get(at + 2), Some(Token::Gt)) =>
            {
                replaced.insert(at, L1_OPERATOR_SPELLING.to_string());
                replaced.insert(at + 1, String::new());
                replaced.insert(at + 2, String::new());
            }
            _ => {}
        }
    }
    with_replacements(&tokens, replaced)
}

/// PostgreSQL names a function's result columns without naming the FROM item:
/// `FROM f(...) AS (x int, y text)`; sqlparser 0.62 wants an alias before the list. Gives the item the
/// function's name as alias (what PostgreSQL calls it). Returns `None` when there is nothing to do.
fn unnamed_column_definitions(sql: &str, upper: &str) -> Option<String> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::Token;
    if !closes_then_opens_after_as(upper) {
        return None;
    }
    let (tokens, significant) = significant_tokens(sql)?;
    let keyword = |at: usize| keyword_at(&tokens, at);
    let mut replaced: std::collections::HashMap<usize, String> = Default::default();
    for (position, &at) in significant.iter().enumerate() {
        if keyword(at) != Some(Keyword::AS) || position == 0 {
            continue;
        }
        let before = significant[position - 1];
        let (Some(&open), Some(&first), Some(&second)) = (
            significant.get(position + 1),
            significant.get(position + 2),
            significant.get(position + 3),
        ) else {
            continue;
        };
        // `) AS (name type`: a column definition list (not `AS (SELECT ...`).
        let is_definition = matches!(tokens[before], Token::RParen)
            && matches!(tokens[open], Token::LParen)
            && matches!(&tokens[first], Token::Word(word)
                if !matches!(word.keyword, Keyword::SELECT | Keyword::VALUES | Keyword::WITH | Keyword::TABLE))
            && matches!(tokens[second], Token::Word(_));
        if !is_definition {
            continue;
        }
        // The function's name: the word before the parenthesis that `before` closes.
        let mut depth = 0usize;
        let mut name = None;
        for back in (0..position).rev() {
            match tokens[significant[back]] {
                Token::RParen => depth += 1,
                Token::LParen => {
                    depth -= 1;
                    if depth == 0 {
                        name = back
                            .checked_sub(1)
                            .map(|word| significant[word])
                            .and_then(|word| match &tokens[word] {
                                Token::Word(word) => Some(word.value.to_lowercase()),
                                _ => None,
                            });
                        break;
                    }
                }
                _ => {}
            }
        }
        if let Some(name) = name {
            replaced.insert(at, format!("AS \"{name}\""));
        }
    }
    with_replacements(&tokens, replaced)
}

/// True if the text has `) AS (` (any spacing): the cheap test before tokenizing for
/// [`unnamed_column_definitions`], which every statement meets.
fn closes_then_opens_after_as(upper: &str) -> bool {
    let bytes = upper.as_bytes();
    let mut from = 0;
    while let Some(found) = upper[from..].find("AS") {
        let at = from + found;
        let before = bytes[..at]
            .iter()
            .rev()
            .find(|byte| !byte.is_ascii_whitespace());
        let after = bytes[at + 2..]
            .iter()
            .find(|byte| !byte.is_ascii_whitespace());
        if before == Some(&b')') && after == Some(&b'(') {
            return true;
        }
        from = at + 2;
    }
    false
}

/// The tokens of `sql` and the positions of those that are not whitespace; `None` when it does not
/// tokenize (the parser then reports the error).
fn significant_tokens(
    sql: &str,
) -> Option<(
    Vec<datafusion::sql::sqlparser::tokenizer::Token>,
    Vec<usize>,
)> {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let significant = (0..tokens.len())
        .filter(|&at| !matches!(tokens[at], Token::Whitespace(_)))
        .collect();
    Some((tokens, significant))
}

/// The keyword of token `at`, if it is a word.
fn keyword_at(
    tokens: &[datafusion::sql::sqlparser::tokenizer::Token],
    at: usize,
) -> Option<datafusion::sql::sqlparser::keywords::Keyword> {
    match &tokens[at] {
        datafusion::sql::sqlparser::tokenizer::Token::Word(word) => Some(word.keyword),
        _ => None,
    }
}

/// `tokens` as text, each token at a key of `replaced` replaced by its value; `None` when nothing is.
fn with_replacements(
    tokens: &[datafusion::sql::sqlparser::tokenizer::Token],
    mut replaced: std::collections::HashMap<usize, String>,
) -> Option<String> {
    if replaced.is_empty() {
        return None;
    }
    Some(
        tokens
            .iter()
            .enumerate()
            .map(|(at, token)| replaced.remove(&at).unwrap_or_else(|| token.to_string()))
            .collect(),
    )
}

/// PostgreSQL's `CREATE USER name ...` is `CREATE ROLE name LOGIN ...`, `ALTER USER` is `ALTER ROLE`, and
/// `ENCRYPTED PASSWORD` is `PASSWORD`; sqlparser 0.62 parses the `USER` forms as other dialects' statements
/// and knows no `ENCRYPTED`. Rewrites them to the ROLE forms. Returns `None` when there is nothing to do.
fn user_as_role(sql: &str, upper: &str) -> Option<String> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::Token;
    if !upper.contains("USER") && !upper.contains("ENCRYPTED") {
        return None;
    }
    let (tokens, significant) = significant_tokens(sql)?;
    let keyword = |at: usize| keyword_at(&tokens, at);
    let mut replaced: std::collections::HashMap<usize, String> = Default::default();
    for (position, &at) in significant.iter().enumerate() {
        let next = significant.get(position + 1).copied();
        let statement_start =
            position == 0 || matches!(tokens[significant[position - 1]], Token::SemiColon);
        match keyword(at) {
            Some(Keyword::CREATE | Keyword::ALTER)
                if statement_start && next.and_then(keyword) == Some(Keyword::USER) =>
            {
                let user = next.expect("checked above");
                let is_create = keyword(at) == Some(Keyword::CREATE);
                // `CREATE USER MAPPING` is another statement.
                let after = significant.get(position + 2).copied();
                if after.is_some_and(|after| {
                    matches!(&tokens[after], Token::Word(word) if word.value.eq_ignore_ascii_case("mapping"))
                }) {
                    continue;
                }
                let rest: Vec<usize> = significant[position + 2..]
                    .iter()
                    .copied()
                    .take_while(|&later| !matches!(tokens[later], Token::SemiColon))
                    .collect();
                let rest_has_nologin = rest
                    .iter()
                    .any(|&later| keyword(later) == Some(Keyword::NOLOGIN));
                replaced.insert(user, "ROLE".to_string());
                if is_create
                    && !rest_has_nologin
                    && let Some(&last) = rest.last()
                {
                    replaced.insert(last, format!("{} LOGIN", tokens[last]));
                }
            }
            Some(Keyword::ENCRYPTED) if next.and_then(keyword) == Some(Keyword::PASSWORD) => {
                replaced.insert(at, String::new());
            }
            _ => {}
        }
    }
    with_replacements(&tokens, replaced)
}

/// `CREATE DATABASE name [WITH] option [=] value ...`: sqlparser 0.62 parses no PostgreSQL options.
/// Checks each option against what QubeDB databases are (UTF8, locale "C", no tablespaces) and removes
/// the options from the text. Returns `None` when there is nothing to remove.
fn check_database_options(sql: &str, upper: &str) -> Result<Option<String>> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if !upper.contains("DATABASE") {
        return Ok(None);
    }
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return Ok(None);
    };
    let significant = |at: usize| {
        tokens[at..]
            .iter()
            .position(|token| !matches!(token, Token::Whitespace(_)))
            .map(|offset| at + offset)
    };
    let keyword = |at: Option<usize>| match at.map(|at| &tokens[at]) {
        Some(Token::Word(word)) => Some(word.keyword),
        _ => None,
    };
    let mut out = String::with_capacity(sql.len());
    let mut changed = false;
    let mut index = 0;
    while index < tokens.len() {
        let create = keyword(Some(index)) == Some(Keyword::CREATE)
            && keyword(significant(index + 1)) == Some(Keyword::DATABASE);
        if !create {
            out.push_str(&tokens[index].to_string());
            index += 1;
            continue;
        }
        // Copy `CREATE DATABASE [IF NOT EXISTS] name`.
        let mut at = significant(index + 1).expect("DATABASE follows") + 1;
        let mut name_seen = false;
        while let Some(next) = significant(at) {
            let is_if_not_exists = matches!(
                keyword(Some(next)),
                Some(Keyword::IF | Keyword::NOT | Keyword::EXISTS)
            );
            if name_seen || !(is_if_not_exists || matches!(tokens[next], Token::Word(_))) {
                break;
            }
            name_seen = !is_if_not_exists;
            at = next + 1;
        }
        for token in &tokens[index..at] {
            out.push_str(&token.to_string());
        }
        // Options up to `;`.
        let end = tokens[at..]
            .iter()
            .position(|token| matches!(token, Token::SemiColon))
            .map_or(tokens.len(), |offset| at + offset);
        let mut words: Vec<&Token> = tokens[at..end]
            .iter()
            .filter(|token| !matches!(token, Token::Whitespace(_)))
            .collect();
        if matches!(words.first(), Some(Token::Word(word)) if word.keyword == Keyword::WITH) {
            words.remove(0);
        }
        let mut position = 0;
        while position < words.len() {
            let Token::Word(option) = words[position] else {
                return Err(Error::user(
                    "42601",
                    format!("syntax error at or near \"{}\"", words[position]),
                ));
            };
            let mut option_name = option.value.to_ascii_lowercase();
            position += 1;
            if option_name == "connection" {
                if matches!(words.get(position), Some(Token::Word(word)) if word.value.eq_ignore_ascii_case("limit"))
                {
                    position += 1;
                }
                option_name = "connection limit".into();
            }
            if matches!(words.get(position), Some(Token::Eq)) {
                position += 1;
            }
            let value = match words.get(position) {
                Some(Token::Word(word)) => word.value.clone(),
                Some(Token::SingleQuotedString(text)) => text.clone(),
                Some(Token::Number(number, _)) => number.clone(),
                Some(Token::Minus) => {
                    position += 1;
                    match words.get(position) {
                        Some(Token::Number(number, _)) => format!("-{number}"),
                        _ => String::new(),
                    }
                }
                other => {
                    return Err(Error::user(
                        "42601",
                        format!(
                            "syntax error at or near \"{}\": option {} of CREATE DATABASE needs a value",
                            other.map_or("end of input".to_string(), |token| token.to_string()),
                            option_name.to_ascii_uppercase()
                        ),
                    ));
                }
            };
            position += 1;
            check_database_option(&option_name, &value)?;
        }
        changed = true;
        index = end;
    }
    Ok(changed.then_some(out))
}

/// Checks one `CREATE DATABASE` option: what a QubeDB database already is passes, the rest fails.
fn check_database_option(name: &str, value: &str) -> Result<()> {
    let value_lower = value.to_ascii_lowercase();
    let is_default = value_lower == "default";
    match name {
        // Every object is owned by the bootstrap role until roles exist; both strategies are one here.
        "owner" | "strategy" => Ok(()),
        "connection limit" if is_default || value == "-1" => Ok(()),
        "allow_connections"
            if is_default || matches!(value_lower.as_str(), "true" | "on" | "1") =>
        {
            Ok(())
        }
        "encoding" => match value_lower.as_str() {
            "utf8" | "utf-8" | "unicode" | "6" | "default" => Ok(()),
            _ => Err(Error::user(
                "0A000",
                format!("encoding \"{value}\" is not supported: QubeDB databases are UTF8"),
            )),
        },
        "template" => match value_lower.as_str() {
            "template0" | "template1" | "default" => Ok(()),
            _ => Err(Error::user(
                "3D000",
                format!("template database \"{value}\" does not exist"),
            )),
        },
        "locale" | "lc_collate" | "lc_ctype" | "builtin_locale" => match value_lower.as_str() {
            "c" | "posix" | "c.utf-8" | "c.utf8" | "ucs_basic" | "default" => Ok(()),
            _ => Err(Error::user(
                "0A000",
                format!(
                    "locale \"{value}\" is not supported: QubeDB compares text by code point, as locale \"C\""
                ),
            )),
        },
        "locale_provider" => match value_lower.as_str() {
            "libc" | "builtin" | "default" => Ok(()),
            _ => Err(Error::user(
                "0A000",
                format!("locale provider \"{value}\" is not supported"),
            )),
        },
        "tablespace" if is_default || value_lower == "pg_default" => Ok(()),
        "tablespace" => Err(Error::user(
            "42704",
            format!("tablespace \"{value}\" does not exist"),
        )),
        "is_template" if is_default || matches!(value_lower.as_str(), "false" | "off" | "0") => {
            Ok(())
        }
        _ => Err(Error::user(
            "0A000",
            format!(
                "option {} of CREATE DATABASE is not supported",
                name.to_ascii_uppercase()
            ),
        )),
    }
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
    fn subscript_assignments_become_jsonb_assign() {
        let statements = parse(
            "UPDATE t SET a = 1, doc['k'][0] = '\"x\"'::jsonb, t.doc[f(1, 2)] = NULL, \
             doc['z'] = '2' WHERE doc['k'] IS NOT NULL",
        )
        .expect("parses");
        assert_eq!(
            statements[0].to_string(),
            "UPDATE t SET a = 1, doc = qubedb_jsonb_assign(qubedb_jsonb_assign(doc, \
             ('\"x\"'::JSONB), ('k'), (0)), ('2'), ('z')), \
             t.doc = qubedb_jsonb_assign(t.doc, (NULL), (f(1, 2))) WHERE doc['k'] IS NOT NULL"
        );
        // Subscripts elsewhere are left alone.
        let statements = parse("SELECT doc['a'] FROM t; UPDATE t SET x = doc[1]").expect("parses");
        assert_eq!(statements[1].to_string(), "UPDATE t SET x = doc[1]");
    }

    #[test]
    fn errors_carry_sqlstate_and_position() {
        let error = parse("SELECT 1;\nSELEC 2").expect_err("syntax error");
        assert_eq!(error.code, "42601");
        assert_eq!(error.position, Some(11));
        assert!(error.message.contains("SELEC"), "{}", error.message);
    }
}
