//! DDL: CREATE / DROP / ALTER of schemas, tables, views, indexes and sequences, and TRUNCATE.
//!
//! Every change is a write of catalog objects in the session's transaction ([`Catalog::put`]): it becomes
//! visible to other sessions only at COMMIT, and a ROLLBACK (or a failed statement) leaves nothing behind.
//! Statements that rewrite or remove a table's rows also ask the store to validate the table's whole key
//! range at commit, so a concurrent writer to that table makes one of the two fail with 40001 instead of
//! leaving orphan rows.

use qubedb_model::vector::VectorKind;
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    self as ast, AlterColumnOperation, AlterTableOperation, ColumnOption, CreateIndex, CreateTable,
    CreateView, DataType as SqlType, ExactNumberInfo, GeneratedAs, ObjectName, ObjectType,
    ReferentialAction as SqlAction, SequenceOptions, Statement, TableConstraint, TimezoneInfo,
    visit_relations,
};
use qubedb_kv::Transaction;
use qubedb_model::catalog::{
    Catalog, CheckDef, ColumnDef, ForeignKeyDef, Identity, IndexDef, IndexMethod, Object,
    ReferentialAction, SchemaDef, SequenceDef, TableDef, ViewDef,
};
use qubedb_model::keys::Key;
use qubedb_model::types::{CHARACTER_LENGTH_MAX, NUMERIC_DEFAULT_SCALE, NUMERIC_PRECISION_MAX};
use qubedb_model::{DataType, TABLE_COLUMNS_MAX, Value};

use crate::error::{Error, Result};
use crate::result::{QueryResult, StatementOutcome};
use crate::session::{Session, Shared};
use crate::sql::convert::{cast_to, sql_type_of_arrow, value_at};
use crate::sql::dml::{parse_query, quote};
use crate::sql::rewrite::{lookup, normalize, qualify};
use crate::sql::write::{TableWriter, scan_table};

pub(crate) fn done(tag: &str) -> Result<QueryResult> {
    Ok(QueryResult::command(StatementOutcome::command(tag, 0)))
}

pub(crate) fn already_exists(kind: &str, name: &str) -> Error {
    let code = match kind {
        "schema" => "42P06",
        "type" => "42710",
        _ => "42P07",
    };
    Error::user(code, format!("{kind} \"{name}\" already exists"))
}

/// Building unique index `index_name` over `slots` of `table` met a row's `values` twice: 23505 naming the key.
fn duplicated_key(index_name: &str, table: &TableDef, slots: &[usize], values: &[Value]) -> Error {
    let key: Vec<Value> = slots.iter().map(|&slot| values[slot].clone()).collect();
    Error::user(
        "23505",
        format!("could not create unique index \"{index_name}\""),
    )
    .with_detail(format!(
        "{} is duplicated.",
        crate::sql::write::describe_key(table, slots, &key)
    ))
}

/// `ALTER TABLE ... ADD PRIMARY KEY (columns)`: the columns become NOT NULL, every row moves from its
/// hidden row id to its key (23505 on a duplicate, 23502 on a NULL), and every index is rebuilt, its
/// entries pointing at rows by primary key.
fn add_primary_key(
    transaction: &mut Transaction,
    catalog: &mut Catalog,
    database: &crate::database::DatabaseInner,
    mut table: TableDef,
    name: Option<String>,
    columns: &[String],
) -> Result<()> {
    if !table.primary_key.is_empty() {
        return Err(Error::user(
            "42P16",
            format!(
                "multiple primary keys for table \"{}\" are not allowed",
                table.name
            ),
        ));
    }
    let slots = slots_of(&table, columns)?;
    let name = match name {
        Some(name) => {
            if catalog.named(table.schema, &name).is_some() {
                return Err(already_exists("relation", &name));
            }
            name
        }
        None => unique_name(
            catalog,
            table.schema,
            &format!("{}_pkey", table.name),
            &HashSet::new(),
        ),
    };
    transaction.validate_range(Key::row_range(table.id));
    let rows = crate::sql::write::scan_table(transaction, &table)?;
    for &slot in &slots {
        if rows.iter().any(|row| row.values[slot].is_null()) {
            return Err(Error::user(
                "23502",
                format!(
                    "column \"{}\" of relation \"{}\" contains null values",
                    table.columns[slot].name, table.name
                ),
            ));
        }
        table.columns[slot].not_null = true;
    }
    table.primary_key = slots.clone();
    table.primary_key_name = Some(name.clone());
    let mut moved = HashSet::with_capacity(rows.len());
    for row in &rows {
        transaction.delete(row.key.clone())?;
    }
    for row in &rows {
        let key_bytes = crate::sql::write::primary_key_bytes(&table, &row.values);
        if !moved.insert(key_bytes.clone()) {
            return Err(duplicated_key(&name, &table, &slots, &row.values));
        }
        let mut key = Key::row_prefix(table.id);
        key.extend_from_slice(&key_bytes);
        transaction.put(
            key,
            qubedb_model::row::encode_row(table.version, &row.values),
        )?;
    }
    let indexes: Vec<IndexDef> = catalog.indexes_of(table.id).cloned().collect();
    for index in &indexes {
        clear_index(transaction, index.id)?;
        build_index(transaction, database, &table, index)?;
    }
    // The hidden row ids are gone with the rows that had them.
    database.forget_sequence(table.id);
    transaction.delete(Key::Sequence(table.id).encode())?;
    catalog.put(transaction, Object::Table(table))?;
    Ok(())
}

/// `CREATE TABLE ... WITH (name = value, ...)`: PostgreSQL's storage parameters tune its heap pages and
/// vacuum, which QubeDB's copy-on-write store does not have; known ones are checked as PostgreSQL checks
/// them and have no effect, unknown ones fail as in PostgreSQL.
fn check_storage_parameters(options: &ast::CreateTableOptions) -> Result<()> {
    let options = match options {
        ast::CreateTableOptions::None => return Ok(()),
        ast::CreateTableOptions::With(options) => options,
        other => return Err(Error::not_supported(format!("table options {other}"))),
    };
    for option in options {
        let ast::SqlOption::KeyValue { key, value } = option else {
            return Err(Error::user(
                "42601",
                format!("syntax error in storage parameter {option}"),
            ));
        };
        let name = key.value.to_lowercase();
        match name.as_str() {
            "fillfactor" => {
                let fill = value.to_string().parse::<i64>().ok();
                if !fill.is_some_and(|fill| (10..=100).contains(&fill)) {
                    return Err(Error::user(
                        "22023",
                        format!("value {value} out of bounds for option \"fillfactor\""),
                    )
                    .with_detail("Valid values are between \"10\" and \"100\"."));
                }
            }
            "parallel_workers"
            | "toast_tuple_target"
            | "user_catalog_table"
            | "vacuum_index_cleanup"
            | "vacuum_truncate"
            | "log_autovacuum_min_duration" => {}
            _ if name.starts_with("autovacuum_") || name.starts_with("toast.") => {}
            _ => {
                return Err(Error::user(
                    "22023",
                    format!("unrecognized parameter \"{name}\""),
                ));
            }
        }
    }
    Ok(())
}

/// The one column of `table` a CHECK expression reads, if it reads exactly one (PostgreSQL then names
/// the constraint `table_column_check`, else `table_check`).
fn only_column_of(expression: &str, table: &TableDef) -> Option<String> {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let parsed = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(expression)
        .and_then(|mut parser| parser.parse_expr())
        .ok()?;
    let mut columns = std::collections::BTreeSet::new();
    let _ = ast::visit_expressions(&parsed, |expression| {
        let name = match expression {
            ast::Expr::Identifier(ident) => Some(normalize(ident)),
            ast::Expr::CompoundIdentifier(parts) => parts.last().map(normalize),
            _ => None,
        };
        if let Some(name) = name
            && table.column_slot(&name).is_some()
        {
            columns.insert(name);
        }
        ControlFlow::<()>::Continue(())
    });
    match columns.len() {
        1 => columns.pop_first(),
        _ => None,
    }
}

/// A foreign key joins tables of one persistence: a permanent table outlives a temporary one, and
/// another session cannot see a temporary one (PostgreSQL's rule).
fn same_persistence(catalog: &Catalog, child_schema: u64, parent_schema: u64) -> Result<()> {
    let temporary = |schema: u64| crate::sql::temp::is_temp_schema(catalog.schema_name(schema));
    match (temporary(child_schema), temporary(parent_schema)) {
        (false, true) => Err(Error::user(
            "42P16",
            "constraints on permanent tables may reference only permanent tables",
        )),
        (true, false) => Err(Error::user(
            "42P16",
            "constraints on temporary tables may reference only temporary tables",
        )),
        _ => Ok(()),
    }
}

/// `IF NOT EXISTS` met an existing object: PostgreSQL's notice, and nothing else.
fn skip_existing(shared: &Shared, kind: &str, name: &str) {
    let error = already_exists(kind, name);
    shared.notice(error.code, format!("{}, skipping", error.message));
}

/// A SERIAL pseudo-type: the integer type and that it draws from a sequence.
pub(crate) struct ColumnType {
    pub(crate) data_type: DataType,
    pub(crate) serial: bool,
}

/// The stored type of a SQL type name.
pub(crate) fn column_type(sql: &SqlType) -> Result<ColumnType> {
    let plain = |data_type| {
        Ok(ColumnType {
            data_type,
            serial: false,
        })
    };
    let length = |length: &Option<ast::CharacterLength>,
                  default: Option<u32>|
     -> Result<Option<u32>> {
        match length {
            None => Ok(default),
            Some(ast::CharacterLength::IntegerLength { length, .. }) => {
                if *length == 0 || *length > u64::from(CHARACTER_LENGTH_MAX) {
                    return Err(Error::user(
                        "22023",
                        format!(
                            "length for type varchar must be between 1 and {CHARACTER_LENGTH_MAX}"
                        ),
                    ));
                }
                Ok(Some(*length as u32))
            }
            Some(ast::CharacterLength::Max) => Ok(None),
        }
    };
    match sql {
        SqlType::Bool | SqlType::Boolean => plain(DataType::Boolean),
        SqlType::SmallInt(_) | SqlType::Int2(_) => plain(DataType::SmallInt),
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => plain(DataType::Integer),
        SqlType::BigInt(_) | SqlType::Int8(_) => plain(DataType::BigInt),
        SqlType::Real | SqlType::Float4 => plain(DataType::Real),
        SqlType::Float8 | SqlType::DoublePrecision | SqlType::Double(_) => plain(DataType::Double),
        SqlType::Float(info) => match info {
            ExactNumberInfo::Precision(bits) if *bits <= 24 => plain(DataType::Real),
            _ => plain(DataType::Double),
        },
        SqlType::Numeric(info) | SqlType::Decimal(info) | SqlType::Dec(info) => match info {
            ExactNumberInfo::None => plain(DataType::Numeric {
                precision: None,
                scale: NUMERIC_DEFAULT_SCALE,
            }),
            ExactNumberInfo::Precision(precision) => numeric(*precision, 0),
            ExactNumberInfo::PrecisionAndScale(precision, scale) => numeric(*precision, *scale),
        },
        SqlType::Text | SqlType::String(_) => plain(DataType::Text),
        SqlType::Varchar(len) | SqlType::CharacterVarying(len) | SqlType::CharVarying(len) => {
            plain(DataType::Varchar(length(len, None)?))
        }
        SqlType::Char(len) | SqlType::Character(len) => {
            plain(DataType::Char(length(len, Some(1))?.unwrap_or(1)))
        }
        SqlType::Bytea => plain(DataType::Bytea),
        // `bit` alone is `bit(1)`; `bit varying` alone has no limit.
        SqlType::Bit(length) => plain(DataType::Bit {
            length: Some(bit_length(*length, false)?.unwrap_or(1)),
            varying: false,
        }),
        SqlType::BitVarying(length) | SqlType::VarBit(length) => plain(DataType::Bit {
            length: bit_length(*length, true)?,
            varying: true,
        }),
        SqlType::Date => plain(DataType::Date),
        SqlType::Time(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
            plain(DataType::Time)
        }
        SqlType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
            plain(DataType::Timestamp)
        }
        SqlType::Timestamp(_, _) => plain(DataType::TimestampTz),
        SqlType::Interval { .. } => plain(DataType::Interval),
        SqlType::Uuid => plain(DataType::Uuid),
        SqlType::JSONB => plain(DataType::Jsonb),
        SqlType::JSON => plain(DataType::Json),
        SqlType::Custom(name, modifiers) if name.to_string().eq_ignore_ascii_case("vector") => {
            plain(DataType::Vector(vector_dimensions(modifiers)?))
        }
        SqlType::Custom(name, modifiers) if name.to_string().eq_ignore_ascii_case("halfvec") => {
            plain(DataType::HalfVector(vector_dimensions_of(
                VectorKind::Half,
                modifiers,
            )?))
        }
        SqlType::Custom(name, modifiers) if name.to_string().eq_ignore_ascii_case("sparsevec") => {
            plain(DataType::SparseVector(sparse_vector_dimensions(modifiers)?))
        }
        SqlType::Custom(name, modifiers) if modifiers.is_empty() => {
            let name = name.to_string().to_lowercase();
            match name.as_str() {
                "serial" | "serial4" => Ok(ColumnType {
                    data_type: DataType::Integer,
                    serial: true,
                }),
                "bigserial" | "serial8" => Ok(ColumnType {
                    data_type: DataType::BigInt,
                    serial: true,
                }),
                "smallserial" | "serial2" => Ok(ColumnType {
                    data_type: DataType::SmallInt,
                    serial: true,
                }),
                "timestamptz" => plain(DataType::TimestampTz),
                "bpchar" => plain(DataType::Char(1)),
                // PostgreSQL's identifier type: text here (PostgreSQL also cuts it at 63 bytes).
                "string" | "name" => plain(DataType::Text),
                _ => Err(Error::user(
                    "42704",
                    format!("type \"{name}\" does not exist"),
                )),
            }
        }
        other => Err(Error::not_supported(format!("type {other}"))),
    }
}

/// The dimensions `vector(n)` declares (`None` for plain `vector`), checked as pgvector checks them.
pub(crate) fn vector_dimensions(modifiers: &[String]) -> Result<Option<u32>> {
    vector_dimensions_of(VectorKind::Single, modifiers)
}

/// [`vector_dimensions`] of `halfvec(n)` and the like.
pub(crate) fn vector_dimensions_of(kind: VectorKind, modifiers: &[String]) -> Result<Option<u32>> {
    vector_modifiers(kind, modifiers).map_err(|mut error| {
        // PostgreSQL points at the type whose modifiers are wrong.
        error.set_word(&format!("{}(", kind.type_name()));
        error
    })
}

/// The length a bit-string type names (`bit(n)`, `varbit(n)`), checked as PostgreSQL checks it.
pub(crate) fn bit_length(length: Option<u64>, varying: bool) -> Result<Option<u32>> {
    length
        .map(|length| {
            crate::sql::bit_string::check_type_modifier(
                i64::try_from(length).unwrap_or(i64::MAX),
                varying,
            )
        })
        .transpose()
}

/// The dimensions `sparsevec(n)` declares (`None` for plain `sparsevec`).
pub(crate) fn sparse_vector_dimensions(modifiers: &[String]) -> Result<Option<u32>> {
    let dimensions = match modifiers {
        [] => return Ok(None),
        [dimensions] => dimensions.trim().trim_matches('\''),
        _ => {
            let mut error = Error::user("22023", "invalid type modifier");
            error.set_word("sparsevec(");
            return Err(error);
        }
    };
    let checked = dimensions
        .parse::<i64>()
        .map_err(|_| {
            Error::user(
                "22P02",
                format!("invalid input syntax for type integer: \"{dimensions}\""),
            )
        })
        .and_then(crate::sql::sparse_vector::check_type_modifier);
    checked.map(Some).map_err(|mut error| {
        error.set_word("sparsevec(");
        error
    })
}

fn vector_modifiers(kind: VectorKind, modifiers: &[String]) -> Result<Option<u32>> {
    match modifiers {
        [] => Ok(None),
        [dimensions] => {
            let dimensions = dimensions.trim().trim_matches('\'');
            let parsed = dimensions.parse::<i64>().map_err(|_| {
                Error::user(
                    "22P02",
                    format!("invalid input syntax for type integer: \"{dimensions}\""),
                )
            })?;
            crate::sql::vector::check_type_modifier_of(kind, parsed).map(Some)
        }
        _ => Err(Error::user("22023", "invalid type modifier")),
    }
}

fn numeric(precision: u64, scale: i64) -> Result<ColumnType> {
    if precision == 0 || precision > u64::from(NUMERIC_PRECISION_MAX) {
        return Err(Error::user(
            "22023",
            format!("NUMERIC precision {precision} must be between 1 and {NUMERIC_PRECISION_MAX}"),
        ));
    }
    if scale < 0 || scale as u64 > precision {
        return Err(Error::user(
            "22023",
            format!("NUMERIC scale {scale} must be between 0 and precision {precision}"),
        ));
    }
    Ok(ColumnType {
        data_type: DataType::Numeric {
            precision: Some(precision as u8),
            scale: scale as i8,
        },
        serial: false,
    })
}

fn referential_action(action: &Option<SqlAction>) -> Result<ReferentialAction> {
    Ok(match action {
        None | Some(SqlAction::NoAction) => ReferentialAction::NoAction,
        Some(SqlAction::Restrict) => ReferentialAction::Restrict,
        Some(SqlAction::Cascade) => ReferentialAction::Cascade,
        Some(SqlAction::SetNull) => ReferentialAction::SetNull,
        Some(SqlAction::SetDefault) => {
            return Err(Error::not_supported("ON DELETE / ON UPDATE SET DEFAULT"));
        }
    })
}

fn index_column_names(columns: &[ast::IndexColumn]) -> Result<Vec<String>> {
    columns
        .iter()
        .map(|column| match &column.column.expr {
            ast::Expr::Identifier(ident) => Ok(normalize(ident)),
            other => Err(Error::not_supported(format!("index on expression {other}"))),
        })
        .collect()
}

/// The access method of a `CREATE INDEX`: B-tree, or GIN over one jsonb column with `jsonb_ops`
/// (the default) or `jsonb_path_ops`.
fn index_method(create: &CreateIndex) -> Result<IndexMethod> {
    let method = create.using.as_ref().map_or_else(
        || "btree".to_string(),
        |using| using.to_string().to_lowercase(),
    );
    match method.as_str() {
        "btree" => Ok(IndexMethod::BTree),
        "gin" => {
            if create.unique {
                return Err(Error::user(
                    "0A000",
                    "access method \"gin\" does not support unique indexes",
                ));
            }
            if create.columns.len() != 1 {
                return Err(Error::not_supported("a GIN index of more than one column"));
            }
            let class = create.columns[0]
                .operator_class
                .as_ref()
                .map(|class| class.to_string().to_lowercase());
            match class.as_deref() {
                None | Some("jsonb_ops") => Ok(IndexMethod::Gin {
                    path_ops: false,
                    exact_paths: false,
                }),
                Some("jsonb_path_ops") => Ok(IndexMethod::Gin {
                    path_ops: true,
                    exact_paths: true,
                }),
                Some(other) => Err(Error::user(
                    "42704",
                    format!("operator class \"{other}\" does not exist for access method \"gin\""),
                )),
            }
        }
        "hnsw" => hnsw_method(create),
        other => Err(Error::not_supported(format!("index method {other}"))),
    }
}

/// An HNSW index: one vector column with its operator class (the distance), and the options `m`
/// and `ef_construction`, checked as pgvector checks them.
fn hnsw_method(create: &CreateIndex) -> Result<IndexMethod> {
    use qubedb_model::hnsw::{EF_CONSTRUCTION_DEFAULT, M_DEFAULT};
    if create.unique {
        return Err(Error::user(
            "0A000",
            "access method \"hnsw\" does not support unique indexes",
        ));
    }
    if create.columns.len() != 1 {
        return Err(Error::user(
            "0A000",
            "access method \"hnsw\" does not support multicolumn indexes",
        ));
    }
    let class = create.columns[0]
        .operator_class
        .as_ref()
        .map(|class| class.to_string().to_lowercase());
    let (metric, kind) = match class.as_deref() {
        None => {
            return Err(Error::user(
                "42704",
                "data type vector has no default operator class for access method \"hnsw\"",
            )
            .with_hint("You must specify an operator class for the index or define a default operator class for the data type."));
        }
        // pgvector's operator classes of types whose HNSW indexes are not built here.
        Some(class) if class.starts_with("sparsevec_") || class.starts_with("bit_") => {
            return Err(Error::user(
                "0A000",
                format!("HNSW indexes with operator class \"{class}\" are not supported"),
            ));
        }
        Some(class) => qubedb_model::vector::Metric::of_operator_class(class).ok_or_else(|| {
            Error::user(
                "42704",
                format!("operator class \"{class}\" does not exist for access method \"hnsw\""),
            )
        })?,
    };
    let mut m = M_DEFAULT as i64;
    let mut ef_construction = EF_CONSTRUCTION_DEFAULT as i64;
    for option in &create.with {
        let (name, value) = match option {
            ast::Expr::BinaryOp { left, right, .. } => {
                (left.to_string().to_lowercase(), right.to_string())
            }
            other => (other.to_string().to_lowercase(), String::new()),
        };
        let (target, low, high) = match name.as_str() {
            "m" => (&mut m, 2, 100),
            "ef_construction" => (&mut ef_construction, 4, 1000),
            _ => {
                return Err(Error::user(
                    "22023",
                    format!("unrecognized parameter \"{name}\""),
                ));
            }
        };
        let parsed: i64 = value.trim_matches('\'').parse().map_err(|_| {
            Error::user(
                "22023",
                format!("invalid value for integer option \"{name}\": {value}"),
            )
        })?;
        if !(low..=high).contains(&parsed) {
            return Err(Error::user(
                "22023",
                format!("value {parsed} out of bounds for option \"{name}\""),
            )
            .with_detail(format!(
                "Valid values are between \"{low}\" and \"{high}\"."
            )));
        }
        *target = parsed;
    }
    if ef_construction < 2 * m {
        return Err(Error::user(
            "22023",
            "ef_construction must be greater than or equal to 2 * m",
        ));
    }
    Ok(IndexMethod::Hnsw {
        m: m as u16,
        ef_construction: ef_construction as u16,
        metric,
        kind,
    })
}

/// The key of a `CREATE INDEX`: the names it gives the index's default name (a column's name, a
/// function's, else `expr`, as PostgreSQL), and for an index with any expression, every key part as
/// SQL text (an expression other than a function call in parentheses, as `pg_get_indexdef` prints it).
struct IndexKeySpec {
    names: Vec<String>,
    expressions: Option<Vec<String>>,
}

impl IndexKeySpec {
    fn of(columns: &[ast::IndexColumn], gin: bool) -> Result<IndexKeySpec> {
        let mut names = Vec::new();
        let mut texts = Vec::new();
        let mut any_expression = false;
        for column in columns {
            if !gin && let Some(class) = &column.operator_class {
                let class = class.to_string().to_lowercase();
                if !class.ends_with("_ops") || class.contains("jsonb") || class.contains("vector") {
                    return Err(Error::user(
                        "42704",
                        format!(
                            "operator class \"{class}\" does not exist for access method \"btree\""
                        ),
                    ));
                }
            }
            let mut expr = &column.column.expr;
            while let ast::Expr::Nested(inner) = expr {
                expr = inner;
            }
            match expr {
                ast::Expr::Identifier(ident) => {
                    names.push(normalize(ident));
                    texts.push(quote_identifier(&normalize(ident)));
                }
                ast::Expr::Function(function) => {
                    any_expression = true;
                    names.push(
                        function
                            .name
                            .0
                            .last()
                            .map(|part| part.to_string().trim_matches('"').to_lowercase())
                            .unwrap_or_else(|| "expr".into()),
                    );
                    texts.push(expr.to_string());
                }
                other => {
                    any_expression = true;
                    names.push("expr".into());
                    texts.push(format!("({other})"));
                }
            }
        }
        Ok(IndexKeySpec {
            names,
            expressions: any_expression.then_some(texts),
        })
    }
}

/// A column name as SQL: bare when PostgreSQL would print it so, else double-quoted.
fn quote_identifier(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_')
        && name.chars().all(|character| {
            character.is_ascii_lowercase() || character.is_ascii_digit() || character == '_'
        });
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn slots_of(table: &TableDef, names: &[String]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|name| {
            table.column_slot(name).ok_or_else(|| {
                Error::user(
                    "42703",
                    format!("column \"{name}\" named in key does not exist"),
                )
            })
        })
        .collect()
}

/// A name not yet used in `schema`: `base`, else `base1`, `base2`, ...
fn unique_name(catalog: &Catalog, schema: u64, base: &str, taken: &HashSet<String>) -> String {
    let base: String = base
        .chars()
        .take(qubedb_model::IDENTIFIER_BYTES_MAX)
        .collect();
    if catalog.relation(schema, &base).is_none() && !taken.contains(&base) {
        return base;
    }
    (1..)
        .map(|number| format!("{base}{number}"))
        .find(|name| catalog.relation(schema, name).is_none() && !taken.contains(name))
        .expect("some numbered name is free")
}

/// A FOREIGN KEY as declared: name, columns, referenced table and columns, ON DELETE, ON UPDATE.
type ForeignKeySpec = (
    Option<String>,
    Vec<String>,
    ObjectName,
    Vec<String>,
    ReferentialAction,
    ReferentialAction,
);

/// Table constraints gathered from column options and the constraint list.
#[derive(Default)]
struct Constraints {
    primary_key: Option<(Option<String>, Vec<String>)>,
    uniques: Vec<(Option<String>, Vec<String>)>,
    checks: Vec<(Option<String>, String, Option<String>)>,
    foreign_keys: Vec<ForeignKeySpec>,
}

impl Constraints {
    fn add(&mut self, constraint: &TableConstraint, column: Option<&str>) -> Result<()> {
        let name = |ident: &Option<ast::Ident>| ident.as_ref().map(normalize);
        match constraint {
            TableConstraint::PrimaryKey(key) => {
                if self.primary_key.is_some() {
                    return Err(Error::user(
                        "42P16",
                        "multiple primary keys for table are not allowed",
                    ));
                }
                let columns = match column {
                    Some(column) => vec![column.to_string()],
                    None => index_column_names(&key.columns)?,
                };
                self.primary_key = Some((name(&key.name), columns));
            }
            TableConstraint::Unique(unique) => {
                let columns = match column {
                    Some(column) => vec![column.to_string()],
                    None => index_column_names(&unique.columns)?,
                };
                self.uniques.push((name(&unique.name), columns));
            }
            TableConstraint::Check(check) => {
                self.checks.push((
                    name(&check.name),
                    check.expr.to_string(),
                    column.map(str::to_string),
                ));
            }
            TableConstraint::ForeignKey(key) => {
                let columns = match column {
                    Some(column) => vec![column.to_string()],
                    None => key.columns.iter().map(normalize).collect(),
                };
                self.foreign_keys.push((
                    name(&key.name),
                    columns,
                    key.foreign_table.clone(),
                    key.referred_columns.iter().map(normalize).collect(),
                    referential_action(&key.on_delete)?,
                    referential_action(&key.on_update)?,
                ));
            }
            other => return Err(Error::not_supported(format!("constraint {other}"))),
        }
        Ok(())
    }
}

impl Session {
    /// Applies `change` to a private copy of the transaction's catalog and installs it.
    pub(crate) fn change_catalog<T>(
        &self,
        change: impl FnOnce(&mut Catalog, &mut Transaction) -> Result<T>,
    ) -> Result<T> {
        let mut state = self.shared.state.lock();
        let mut catalog = (*state.catalog).clone();
        let output = change(&mut catalog, state.transaction()?)?;
        state.catalog = Arc::new(catalog);
        Ok(output)
    }

    pub(crate) async fn ddl(&mut self, statement: Statement) -> Result<QueryResult> {
        match statement {
            Statement::CreateTable(create) => self.create_table(create).await,
            Statement::CreateView(create) => self.create_view(create).await,
            Statement::CreateSchema {
                schema_name,
                if_not_exists,
                ..
            } => {
                let name = match &schema_name {
                    ast::SchemaName::Simple(name) => match name.0.as_slice() {
                        [ast::ObjectNamePart::Identifier(ident)] => normalize(ident),
                        _ => {
                            return Err(Error::user(
                                "42601",
                                format!("invalid schema name {name}"),
                            ));
                        }
                    },
                    other => return Err(Error::not_supported(format!("CREATE SCHEMA {other}"))),
                };
                if name.starts_with("pg_") {
                    return Err(Error::user(
                        "42939",
                        format!("unacceptable schema name \"{name}\""),
                    )
                    .with_detail("The prefix \"pg_\" is reserved for system schemas."));
                }
                let shared = self.shared.clone();
                self.change_catalog(|catalog, transaction| {
                    if catalog.schema_id(&name).is_some() {
                        return if if_not_exists {
                            skip_existing(&shared, "schema", &name);
                            Ok(())
                        } else {
                            Err(already_exists("schema", &name))
                        };
                    }
                    let id = Catalog::allocate_id(transaction)?;
                    catalog.put(
                        transaction,
                        Object::Schema(SchemaDef {
                            id,
                            name: name.clone(),
                        }),
                    )?;
                    Ok(())
                })?;
                done("CREATE SCHEMA")
            }
            Statement::CreateSequence {
                if_not_exists,
                name,
                data_type,
                sequence_options,
                owned_by,
                temporary,
                ..
            } => {
                if temporary || owned_by.is_some() {
                    return Err(Error::not_supported("CREATE TEMPORARY SEQUENCE / OWNED BY"));
                }
                let shared = self.shared.clone();
                self.change_catalog(|catalog, transaction| {
                    let qualified = qualify(catalog, &name)?;
                    if catalog.named(qualified.schema, &qualified.name).is_some() {
                        return if if_not_exists {
                            skip_existing(&shared, "relation", &qualified.name);
                            Ok(())
                        } else {
                            Err(already_exists("relation", &qualified.name))
                        };
                    }
                    let data_type = match &data_type {
                        None => DataType::BigInt,
                        Some(sql) => column_type(sql)?.data_type,
                    };
                    let id = Catalog::allocate_id(transaction)?;
                    let sequence = sequence_def(
                        id,
                        qualified.schema,
                        qualified.name,
                        data_type,
                        &sequence_options,
                    )?;
                    catalog.put(transaction, Object::Sequence(sequence))?;
                    Ok(())
                })?;
                done("CREATE SEQUENCE")
            }
            Statement::CreateIndex(create) => self.create_index(create),
            Statement::Drop {
                object_type,
                if_exists,
                names,
                cascade,
                ..
            } => self.drop(object_type, if_exists, &names, cascade),
            Statement::AlterTable(alter) => self.alter_table(alter).await,
            Statement::Truncate(truncate) => self.truncate(truncate),
            Statement::CreateType {
                name,
                representation,
            } => self.create_type(&name, representation.as_ref()),
            Statement::CreateDomain(create) => self.create_domain(&create),
            Statement::DropDomain(drop) => self.drop_types(
                true,
                std::slice::from_ref(&drop.name),
                drop.if_exists,
                matches!(drop.drop_behavior, Some(ast::DropBehavior::Cascade)),
            ),
            other => Err(Error::not_supported(format!("statement {other}"))),
        }
    }

    async fn create_table(&mut self, create: CreateTable) -> Result<QueryResult> {
        if create.external || create.like.is_some() || create.clone.is_some() {
            return Err(Error::not_supported("CREATE EXTERNAL / LIKE / CLONE table"));
        }
        if create.or_replace {
            return Err(Error::not_supported("CREATE OR REPLACE TABLE"));
        }
        check_storage_parameters(&create.table_options)?;
        let temporary = create.temporary || is_pg_temp_name(&create.name);
        match create.on_commit {
            None => {}
            Some(_) if !temporary => {
                return Err(Error::user(
                    "42P16",
                    "ON COMMIT can only be used on temporary tables",
                ));
            }
            Some(ast::OnCommit::PreserveRows) => {}
            Some(other) => {
                return Err(Error::not_supported(format!(
                    "ON COMMIT {}",
                    match other {
                        ast::OnCommit::Drop => "DROP",
                        _ => "DELETE ROWS",
                    }
                )));
            }
        }
        let temp_schema = if temporary {
            Some(self.ensure_temp_schema()?)
        } else {
            None
        };
        let catalog = self.shared.state.lock().catalog.clone();
        let qualified = match temp_schema {
            Some(schema) => temp_name(&catalog, &self.shared.temp_schema, schema, &create.name)?,
            None => qualify(&catalog, &create.name)?,
        };
        if let Some(existing) = catalog.named(qualified.schema, &qualified.name) {
            if create.if_not_exists {
                skip_existing(&self.shared, "relation", &qualified.name);
                return done("CREATE TABLE");
            }
            return Err(already_exists(
                if matches!(existing, Object::Table(_)) {
                    "relation"
                } else {
                    existing.kind()
                },
                &qualified.name,
            ));
        }
        // CREATE TABLE AS: columns come from the query.
        let mut as_rows = None;
        let mut column_specs: Vec<(String, ColumnType, Vec<ColumnOption>)> = Vec::new();
        if let Some(query) = &create.query {
            let (schema, batches) = self.collect_query((**query).clone()).await?;
            for (position, field) in schema.fields().iter().enumerate() {
                let name = match create.columns.get(position) {
                    Some(column) => normalize(&column.name),
                    None => field.name().clone(),
                };
                let data_type = sql_type_of_arrow(field.data_type()).ok_or_else(|| {
                    Error::not_supported(format!(
                        "column \"{name}\" of type {} in CREATE TABLE AS",
                        field.data_type()
                    ))
                })?;
                column_specs.push((
                    name,
                    ColumnType {
                        data_type,
                        serial: false,
                    },
                    Vec::new(),
                ));
            }
            if create.columns.len() > schema.fields().len() {
                return Err(Error::user(
                    "42601",
                    "CREATE TABLE AS specifies too many column names",
                ));
            }
            as_rows = Some(batches);
        } else {
            for column in &create.columns {
                column_specs.push((
                    normalize(&column.name),
                    crate::sql::user_types::table_column_type(&catalog, &column.data_type)?,
                    column
                        .options
                        .iter()
                        .map(|option| option.option.clone())
                        .collect(),
                ));
            }
        }
        if column_specs.len() > TABLE_COLUMNS_MAX {
            return Err(Error::user(
                "54011",
                format!("tables can have at most {TABLE_COLUMNS_MAX} columns"),
            ));
        }
        let mut constraints = Constraints::default();
        for constraint in &create.constraints {
            constraints.add(constraint, None)?;
        }
        let table_name = qualified.name.clone();
        let schema = qualified.schema;
        let (table_id, check_sql) = self.change_catalog(|catalog, transaction| {
            let table_id = Catalog::allocate_id(transaction)?;
            let mut columns: Vec<ColumnDef> = Vec::new();
            let mut names = HashSet::new();
            let mut taken = HashSet::new();
            let mut sequences = Vec::new();
            for (slot, (name, column_type, options)) in column_specs.iter().enumerate() {
                if !names.insert(name.clone()) {
                    return Err(Error::user("42701", format!("column \"{name}\" specified more than once")));
                }
                let mut column = ColumnDef {
                    name: name.clone(),
                    data_type: column_type.data_type,
                    not_null: false,
                    default: None,
                    identity: None,
                    dropped: false,
                    missing: Value::Null,
                };
                let mut identity_options = None;
                for option in options {
                    match option {
                        ColumnOption::Null => column.not_null = false,
                        ColumnOption::NotNull => column.not_null = true,
                        ColumnOption::Default(expr) => column.default = Some(expr.to_string()),
                        ColumnOption::PrimaryKey(key) => {
                            constraints.add(&TableConstraint::PrimaryKey(key.clone()), Some(name))?
                        }
                        ColumnOption::Unique(unique) => {
                            constraints.add(&TableConstraint::Unique(unique.clone()), Some(name))?
                        }
                        ColumnOption::Check(check) => {
                            constraints.add(&TableConstraint::Check(check.clone()), Some(name))?
                        }
                        ColumnOption::ForeignKey(key) => {
                            constraints.add(&TableConstraint::ForeignKey(key.clone()), Some(name))?
                        }
                        ColumnOption::Generated {
                            generated_as,
                            sequence_options,
                            generation_expr: None,
                            ..
                        } => {
                            column.identity = Some(match generated_as {
                                GeneratedAs::Always => Identity::Always,
                                GeneratedAs::ByDefault => Identity::ByDefault,
                                GeneratedAs::ExpStored => {
                                    return Err(Error::not_supported("generated columns"));
                                }
                            });
                            identity_options = Some(sequence_options.clone().unwrap_or_default());
                        }
                        ColumnOption::Generated { .. } => return Err(Error::not_supported("generated columns")),
                        ColumnOption::Comment(_) | ColumnOption::Collation(_) => {}
                        other => return Err(Error::not_supported(format!("column option {other}"))),
                    }
                }
                if column_type.serial || identity_options.is_some() {
                    if !column.data_type.is_integer() {
                        return Err(Error::user(
                            "22023",
                            format!("identity column type must be smallint, integer, or bigint, not {}", column.data_type.sql_name()),
                        ));
                    }
                    let sequence_name = unique_name(catalog, schema, &format!("{table_name}_{name}_seq"), &taken);
                    taken.insert(sequence_name.clone());
                    let id = Catalog::allocate_id(transaction)?;
                    let mut sequence = sequence_def(
                        id,
                        schema,
                        sequence_name.clone(),
                        column.data_type,
                        &identity_options.unwrap_or_default(),
                    )?;
                    sequence.owned_by = Some((table_id, slot));
                    column.default = Some(format!(
                        "nextval('{}')",
                        format!("{}.{}", quote(catalog.schema_name(schema)), quote(&sequence_name)).replace('\'', "''")
                    ));
                    column.not_null = true;
                    sequences.push(sequence);
                }
                columns.push(column);
            }
            let mut table = TableDef {
                id: table_id,
                schema,
                name: table_name.clone(),
                columns,
                primary_key: Vec::new(),
                primary_key_name: None,
                checks: Vec::new(),
                foreign_keys: Vec::new(),
                version: 1,
            };
            if let Some((name, key_columns)) = &constraints.primary_key {
                table.primary_key = slots_of(&table, key_columns)?;
                for &slot in &table.primary_key {
                    table.columns[slot].not_null = true;
                }
                let name = name.clone().unwrap_or_else(|| unique_name(catalog, schema, &format!("{table_name}_pkey"), &taken));
                taken.insert(name.clone());
                table.primary_key_name = Some(name);
            }
            let mut check_names = HashSet::new();
            for (name, expression, column) in &constraints.checks {
                let name = name.clone().unwrap_or_else(|| {
                    let column = column
                        .clone()
                        .or_else(|| only_column_of(expression, &table));
                    let base = match column {
                        Some(column) => format!("{table_name}_{column}_check"),
                        None => format!("{table_name}_check"),
                    };
                    let mut candidate = base.clone();
                    let mut number = 0;
                    while check_names.contains(&candidate) {
                        number += 1;
                        candidate = format!("{base}{number}");
                    }
                    candidate
                });
                check_names.insert(name.clone());
                table.checks.push(CheckDef {
                    name,
                    expression: expression.clone(),
                });
            }
            for (name, columns, referenced, referenced_columns, on_delete, on_update) in &constraints.foreign_keys {
                let slots = slots_of(&table, columns)?;
                let (referenced_table, referenced_slots) = if lookup(catalog, &self.shared.temp_schema, referenced)?.is_none()
                    && qualify(catalog, referenced)?.name == table_name
                {
                    let slots_referenced = if referenced_columns.is_empty() {
                        table.primary_key.clone()
                    } else {
                        slots_of(&table, referenced_columns)?
                    };
                    (table.clone(), slots_referenced)
                } else {
                    let parent = match lookup(catalog, &self.shared.temp_schema, referenced)? {
                        Some(Object::Table(parent)) => parent.clone(),
                        _ => {
                            return Err(Error::user(
                                "42P01",
                                format!("relation \"{referenced}\" does not exist"),
                            ));
                        }
                    };
                    let referenced_slots = if referenced_columns.is_empty() {
                        if parent.primary_key.is_empty() {
                            return Err(Error::user(
                                "42830",
                                format!("there is no primary key for referenced table \"{}\"", parent.name),
                            ));
                        }
                        parent.primary_key.clone()
                    } else {
                        slots_of(&parent, referenced_columns)?
                    };
                    (parent, referenced_slots)
                };
                if slots.len() != referenced_slots.len() {
                    return Err(Error::user(
                        "42830",
                        "number of referencing and referenced columns for foreign key disagree",
                    ));
                }
                same_persistence(catalog, table.schema, referenced_table.schema)?;
                let unique_target = crate::sql::write::same_columns(&referenced_table.primary_key, &referenced_slots)
                    || catalog.indexes_of(referenced_table.id).any(|index| {
                        index.unique && index.is_plain() && crate::sql::write::same_columns(&index.columns, &referenced_slots)
                    })
                    || (referenced_table.id == table.id
                        && constraints.uniques.iter().any(|(_, names)| {
                            slots_of(&table, names)
                                .map(|unique_slots| crate::sql::write::same_columns(&unique_slots, &referenced_slots))
                                .unwrap_or(false)
                        }));
                if !unique_target {
                    return Err(Error::user(
                        "42830",
                        format!(
                            "there is no unique constraint matching given keys for referenced table \"{}\"",
                            referenced_table.name
                        ),
                    ));
                }
                let name = name.clone().unwrap_or_else(|| {
                    unique_name(catalog, schema, &format!("{table_name}_{}_fkey", columns.join("_")), &taken)
                });
                taken.insert(name.clone());
                table.foreign_keys.push(ForeignKeyDef {
                    name,
                    columns: slots,
                    referenced_table: referenced_table.id,
                    referenced_columns: referenced_slots,
                    on_delete: *on_delete,
                    on_update: *on_update,
                });
            }
            let mut indexes = Vec::new();
            for (name, columns) in &constraints.uniques {
                let slots = slots_of(&table, columns)?;
                if slots == table.primary_key {
                    continue;
                }
                let name = name.clone().unwrap_or_else(|| {
                    unique_name(catalog, schema, &format!("{table_name}_{}_key", columns.join("_")), &taken)
                });
                if catalog.named(schema, &name).is_some() || !taken.insert(name.clone()) {
                    return Err(already_exists("relation", &name));
                }
                indexes.push(IndexDef {
                    id: Catalog::allocate_id(transaction)?,
                    schema,
                    name,
                    table: table_id,
                    columns: slots,
                    unique: true,
                    constraint: true,
                    expressions: Vec::new(),
                    predicate: None,
                    include: Vec::new(),
                    method: IndexMethod::BTree,
                });
            }
            let checks: Vec<String> = table.checks.iter().map(|check| check.expression.clone()).collect();
            catalog.put(transaction, Object::Table(table))?;
            for sequence in sequences {
                catalog.put(transaction, Object::Sequence(sequence))?;
            }
            for index in indexes {
                catalog.put(transaction, Object::Index(index))?;
            }
            Ok((table_id, checks))
        })?;
        // Validate CHECK and DEFAULT expressions against the new table now, not at the first insert.
        let catalog = self.shared.state.lock().catalog.clone();
        let table = catalog
            .table(table_id)
            .cloned()
            .ok_or_else(|| Error::internal("created table vanished"))?;
        let full_name = format!(
            "{}.{}",
            quote(catalog.schema_name(table.schema)),
            quote(&table.name)
        );
        for expression in check_sql {
            self.collect_query(parse_query(&format!(
                "SELECT ({expression}) FROM {full_name} WHERE FALSE"
            ))?)
            .await?;
        }
        for column in table.columns.iter() {
            if let Some(default) = &column.default
                && !default.contains("nextval(")
            {
                self.collect_query(parse_query(&format!("SELECT ({default}) WHERE FALSE"))?)
                    .await?;
            }
        }
        if let Some(batches) = as_rows {
            let count = self.insert_batches(&table, &batches)?;
            return Ok(QueryResult::command(StatementOutcome::command(
                format!("SELECT {count}"),
                count,
            )));
        }
        done("CREATE TABLE")
    }

    /// Inserts already computed rows (CREATE TABLE AS): one batch column per live column.
    fn insert_batches(
        &self,
        table: &TableDef,
        batches: &[datafusion::arrow::array::RecordBatch],
    ) -> Result<u64> {
        let catalog = self.shared.state.lock().catalog.clone();
        let database = self.shared.database.clone();
        let live: Vec<usize> = table.live_columns().map(|(slot, _)| slot).collect();
        self.with_state(|state| {
            let transaction = state.transaction()?;
            let writer = TableWriter::new(&catalog, table, &database)?;
            let mut count = 0;
            for batch in batches {
                let columns: Vec<_> = live
                    .iter()
                    .enumerate()
                    .map(|(position, &slot)| {
                        cast_to(batch.column(position), table.columns[slot].data_type)
                    })
                    .collect::<Result<_>>()?;
                for row in 0..batch.num_rows() {
                    let mut values = vec![Value::Null; table.columns.len()];
                    for (position, &slot) in live.iter().enumerate() {
                        values[slot] =
                            value_at(&columns[position], row, table.columns[slot].data_type)?;
                    }
                    let key = writer.new_row_key(&values)?;
                    writer.insert(transaction, key, &values)?;
                    count += 1;
                }
            }
            Ok(count)
        })
    }

    async fn create_view(&mut self, create: CreateView) -> Result<QueryResult> {
        if create.materialized || create.temporary {
            return Err(Error::not_supported("CREATE MATERIALIZED / TEMPORARY VIEW"));
        }
        // Plan the query once: an invalid view is refused at creation.
        let (schema, _) = {
            let mut probe = (*create.query).clone();
            probe.limit_clause = Some(ast::LimitClause::LimitOffset {
                limit: Some(ast::Expr::value(ast::Value::Number("0".into(), false))),
                offset: None,
                limit_by: Vec::new(),
            });
            self.collect_query(probe).await?
        };
        let columns: Vec<String> = create
            .columns
            .iter()
            .map(|column| normalize(&column.name))
            .collect();
        if columns.len() > schema.fields().len() {
            return Err(Error::user(
                "42601",
                "CREATE VIEW specifies more column names than columns",
            ));
        }
        let mut names: Vec<String> = schema
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        for (position, column) in columns.iter().enumerate() {
            names[position] = column.clone();
        }
        let query = create.query.to_string();
        self.change_catalog(|catalog, transaction| {
            let qualified = qualify(catalog, &create.name)?;
            let id = match catalog.named(qualified.schema, &qualified.name) {
                Some(Object::View(view)) if create.or_replace => view.id,
                Some(_) if create.if_not_exists => return Ok(()),
                Some(existing) => return Err(already_exists(existing.kind(), &qualified.name)),
                None => Catalog::allocate_id(transaction)?,
            };
            catalog.put(
                transaction,
                Object::View(ViewDef {
                    id,
                    schema: qualified.schema,
                    name: qualified.name,
                    query,
                    columns: names,
                }),
            )?;
            Ok(())
        })?;
        done("CREATE VIEW")
    }

    fn create_index(&mut self, create: CreateIndex) -> Result<QueryResult> {
        let method = index_method(&create)?;
        let gin = !method.is_btree();
        let hnsw = method.hnsw().is_some();
        if create.nulls_distinct == Some(false) {
            return Err(Error::not_supported("NULLS NOT DISTINCT"));
        }
        for option in create.with.iter().filter(|_| !hnsw) {
            let name = match option {
                ast::Expr::BinaryOp { left, .. } => left.to_string().to_lowercase(),
                other => other.to_string().to_lowercase(),
            };
            if !matches!(name.as_str(), "fillfactor" | "deduplicate_items") {
                return Err(Error::user(
                    "22023",
                    format!("unrecognized parameter \"{name}\""),
                ));
            }
        }
        let key = IndexKeySpec::of(&create.columns, gin)?;
        if gin
            && (key.expressions.is_some()
                || create.predicate.is_some()
                || !create.include.is_empty())
        {
            return Err(Error::not_supported(format!(
                "a {} index on an expression, with a WHERE clause or with INCLUDE",
                method.name()
            )));
        }
        let include: Vec<String> = create.include.iter().map(normalize).collect();
        let predicate = create.predicate.as_ref().map(ToString::to_string);
        let shared = self.shared.clone();
        let database = self.shared.database.clone();
        self.change_catalog(|catalog, transaction| {
            let table = match lookup(catalog, &self.shared.temp_schema, &create.table_name)? {
                Some(Object::Table(table)) => table.clone(),
                _ => {
                    return Err(Error::user(
                        "42P01",
                        format!(
                            "relation \"{}\" does not exist",
                            crate::sql::rewrite::display_name(&create.table_name)
                        ),
                    ));
                }
            };
            let columns = match &key.expressions {
                None => slots_of(&table, &key.names)?,
                Some(_) => Vec::new(),
            };
            if hnsw {
                let kind = match method {
                    IndexMethod::Hnsw { kind, .. } => kind,
                    _ => VectorKind::Single,
                };
                let data_type = table.columns[columns[0]].data_type;
                let (column_kind, dimensions) = match data_type {
                    DataType::Vector(dimensions) => (Some(VectorKind::Single), dimensions),
                    DataType::HalfVector(dimensions) => (Some(VectorKind::Half), dimensions),
                    _ => (None, None),
                };
                if column_kind != Some(kind) {
                    return Err(Error::user(
                        "42804",
                        format!(
                            "operator class \"{}\" does not accept data type {}",
                            method.operator_class().unwrap_or_default(),
                            data_type.sql_name()
                        ),
                    ));
                }
                let Some(dimensions) = dimensions else {
                    return Err(Error::user("22000", "column does not have dimensions"));
                };
                if dimensions as usize > qubedb_model::hnsw::HNSW_DIMENSIONS_MAX {
                    return Err(Error::user(
                        "54000",
                        format!(
                            "column cannot have more than {} dimensions for hnsw index",
                            qubedb_model::hnsw::HNSW_DIMENSIONS_MAX
                        ),
                    ));
                }
            } else if gin {
                let data_type = table.columns[columns[0]].data_type;
                if data_type != DataType::Jsonb {
                    return Err(Error::user(
                        "42704",
                        format!(
                            "data type {} has no default operator class for access method \"gin\"",
                            data_type.sql_name()
                        ),
                    )
                    .with_hint("You must specify an operator class for the index or define a default operator class for the data type."));
                }
            }
            let include = include
                .iter()
                .map(|name| {
                    table.column_slot(name).ok_or_else(|| {
                        Error::user("42703", format!("column \"{name}\" does not exist"))
                    })
                })
                .collect::<Result<Vec<usize>>>()?;
            let name = match &create.name {
                Some(name) => qualify(catalog, name)?.name,
                None => unique_name(
                    catalog,
                    table.schema,
                    &format!("{}_{}_idx", table.name, key.names.join("_")),
                    &HashSet::new(),
                ),
            };
            if catalog.named(table.schema, &name).is_some() {
                return if create.if_not_exists {
                    skip_existing(&shared, "relation", &name);
                    Ok(())
                } else {
                    Err(already_exists("relation", &name))
                };
            }
            let index = IndexDef {
                id: Catalog::allocate_id(transaction)?,
                schema: table.schema,
                name,
                table: table.id,
                columns,
                unique: create.unique,
                constraint: false,
                expressions: key.expressions.clone().unwrap_or_default(),
                predicate: predicate.clone(),
                include,
                method,
            };
            catalog.put(transaction, Object::Index(index.clone()))?;
            build_index(transaction, &database, &table, &index)
        })?;
        done("CREATE INDEX")
    }

    /// `REINDEX`: rebuilds the entries of one index, a table's indexes, or every index of a schema or
    /// of the database, from the rows (in the session's transaction).
    pub(crate) fn reindex(
        &mut self,
        kind: crate::sql::parse::ReindexKind,
        name: &ObjectName,
    ) -> Result<QueryResult> {
        use crate::sql::parse::ReindexKind;
        let database = self.shared.database.clone();
        let given = crate::sql::rewrite::display_name(name);
        self.change_catalog(|catalog, transaction| {
            let table_indexes = |table: &TableDef| -> Vec<(TableDef, IndexDef)> {
                catalog
                    .indexes_of(table.id)
                    .map(|index| (table.clone(), index.clone()))
                    .collect()
            };
            let one_index = |index: &IndexDef| -> Result<Vec<(TableDef, IndexDef)>> {
                let table = catalog
                    .table(index.table)
                    .ok_or_else(|| Error::internal("index of a missing table"))?;
                Ok(vec![(table.clone(), index.clone())])
            };
            let missing = || Error::user("42P01", format!("relation \"{given}\" does not exist"));
            let targets: Vec<(TableDef, IndexDef)> = match kind {
                ReindexKind::Table => match lookup(catalog, &self.shared.temp_schema, name)? {
                    Some(Object::Table(table)) => table_indexes(table),
                    Some(_) => {
                        return Err(Error::user("42809", format!("\"{given}\" is not a table")));
                    }
                    None => return Err(missing()),
                },
                ReindexKind::IndexOrTable => match lookup(catalog, &self.shared.temp_schema, name)?
                {
                    Some(Object::Index(index)) => one_index(index)?,
                    Some(Object::Table(table)) => table_indexes(table),
                    Some(_) => {
                        return Err(Error::user(
                            "42809",
                            format!("\"{given}\" is not a table or an index"),
                        ));
                    }
                    None => return Err(missing()),
                },
                ReindexKind::Index => match lookup(catalog, &self.shared.temp_schema, name)? {
                    Some(Object::Index(index)) => one_index(index)?,
                    Some(_) => {
                        return Err(Error::user("42809", format!("\"{given}\" is not an index")));
                    }
                    None => return Err(missing()),
                },
                ReindexKind::Schema => {
                    let schema = catalog.schema_id(&given).ok_or_else(|| {
                        Error::user("3F000", format!("schema \"{given}\" does not exist"))
                    })?;
                    catalog
                        .objects()
                        .filter_map(|object| match object {
                            Object::Table(table) if table.schema == schema => {
                                Some(table_indexes(table))
                            }
                            _ => None,
                        })
                        .flatten()
                        .collect()
                }
                ReindexKind::Database | ReindexKind::System => {
                    if given != "*" && given != database.name {
                        return Err(Error::user(
                            "0A000",
                            "can only reindex the currently open database",
                        ));
                    }
                    if kind == ReindexKind::System {
                        // The system catalogs are computed from the catalog: no index to rebuild.
                        Vec::new()
                    } else {
                        catalog
                            .objects()
                            .filter_map(|object| match object {
                                Object::Table(table) => Some(table_indexes(table)),
                                _ => None,
                            })
                            .flatten()
                            .collect()
                    }
                }
            };
            for (table, index) in targets {
                clear_index(transaction, index.id)?;
                build_index(transaction, &database, &table, &index)?;
            }
            Ok(())
        })?;
        done("REINDEX")
    }

    fn drop(
        &mut self,
        kind: ObjectType,
        if_exists: bool,
        names: &[ObjectName],
        cascade: bool,
    ) -> Result<QueryResult> {
        let database = self.shared.database.clone();
        let shared = self.shared.clone();
        if kind == ObjectType::Type {
            return self.drop_types(false, names, if_exists, cascade);
        }
        let tag = match kind {
            ObjectType::Table => "DROP TABLE",
            ObjectType::View => "DROP VIEW",
            ObjectType::Index => "DROP INDEX",
            ObjectType::Schema => "DROP SCHEMA",
            ObjectType::Sequence => "DROP SEQUENCE",
            other => return Err(Error::not_supported(format!("DROP {other}"))),
        };
        self.change_catalog(|catalog, transaction| {
            for name in names {
                if kind == ObjectType::Schema {
                    let schema_name = name.to_string().trim_matches('"').to_string();
                    let schema_name = match name.0.as_slice() {
                        [ast::ObjectNamePart::Identifier(ident)] => normalize(ident),
                        _ => schema_name,
                    };
                    let Some(schema) = catalog.schema_id(&schema_name) else {
                        if if_exists {
                            shared.notice(
                                "00000",
                                format!("schema \"{schema_name}\" does not exist, skipping"),
                            );
                            continue;
                        }
                        return Err(Error::user("3F000", format!("schema \"{schema_name}\" does not exist")));
                    };
                    let members: Vec<u64> = catalog
                        .objects()
                        .filter(|object| object.qualified_name().0 == schema)
                        .map(Object::id)
                        .collect();
                    if !members.is_empty() && !cascade {
                        return Err(Error::user(
                            "2BP01",
                            format!("cannot drop schema {schema_name} because other objects depend on it"),
                        )
                        .with_detail("Use DROP ... CASCADE to drop the dependent objects too."));
                    }
                    drop_schema(transaction, catalog, &database, schema)?;
                    continue;
                }
                let object = match lookup(catalog, &self.shared.temp_schema, name)? {
                    Some(object) => object.clone(),
                    None => {
                        let noun = match kind {
                            ObjectType::Table => "table",
                            ObjectType::View => "view",
                            ObjectType::Index => "index",
                            _ => "sequence",
                        };
                        if if_exists {
                            shared.notice(
                                "00000",
                                format!("{noun} \"{name}\" does not exist, skipping"),
                            );
                            continue;
                        }
                        return Err(Error::user("42P01", format!("{noun} \"{name}\" does not exist")));
                    }
                };
                let matches_kind = matches!(
                    (&object, kind),
                    (Object::Table(_), ObjectType::Table)
                        | (Object::View(_), ObjectType::View)
                        | (Object::Index(_), ObjectType::Index)
                        | (Object::Sequence(_), ObjectType::Sequence)
                );
                if !matches_kind {
                    return Err(Error::user(
                        "42809",
                        format!("\"{name}\" is not a {}", tag.trim_start_matches("DROP ").to_lowercase()),
                    ));
                }
                drop_object(transaction, catalog, &database, object.id(), cascade)?;
            }
            Ok(())
        })?;
        done(tag)
    }

    fn truncate(&mut self, truncate: ast::Truncate) -> Result<QueryResult> {
        let database = self.shared.database.clone();
        let cascade = matches!(truncate.cascade, Some(ast::CascadeOption::Cascade));
        let restart = matches!(
            truncate.identity,
            Some(ast::TruncateIdentityOption::Restart)
        );
        self.change_catalog(|catalog, transaction| {
            let mut tables = Vec::new();
            for target in &truncate.table_names {
                match lookup(catalog, &self.shared.temp_schema, &target.name)? {
                    Some(Object::Table(table)) => tables.push(table.clone()),
                    _ if truncate.if_exists => {}
                    _ => {
                        return Err(Error::user(
                            "42P01",
                            format!(
                                "relation \"{}\" does not exist",
                                crate::sql::rewrite::display_name(&target.name)
                            ),
                        ));
                    }
                }
            }
            let ids: HashSet<u64> = tables.iter().map(|table| table.id).collect();
            let mut queue = tables.clone();
            while let Some(table) = queue.pop() {
                for (child, foreign_key) in catalog.referencing(table.id) {
                    if ids.contains(&child.id) || tables.iter().any(|t| t.id == child.id) {
                        continue;
                    }
                    if !cascade {
                        return Err(Error::user(
                            "0A000",
                            "cannot truncate a table referenced in a foreign key constraint",
                        )
                        .with_detail(format!(
                            "Table \"{}\" references \"{}\" (constraint \"{}\").",
                            child.name, table.name, foreign_key.name
                        )));
                    }
                    tables.push(child.clone());
                    queue.push(child.clone());
                }
            }
            for table in &tables {
                clear_table(transaction, catalog, table)?;
                if restart {
                    for sequence in catalog.sequences_owned_by(table.id) {
                        database.set_sequence_value(sequence, sequence.start, false)?;
                    }
                }
            }
            Ok(())
        })?;
        done("TRUNCATE TABLE")
    }

    async fn alter_table(&mut self, alter: ast::AlterTable) -> Result<QueryResult> {
        let catalog = self.shared.state.lock().catalog.clone();
        let table = match lookup(&catalog, &self.shared.temp_schema, &alter.name)? {
            Some(Object::Table(table)) => table.clone(),
            Some(other) => {
                return Err(Error::user(
                    "42809",
                    format!(
                        "\"{}\" is not a table (it is a {})",
                        alter.name,
                        other.kind()
                    ),
                ));
            }
            None if alter.if_exists => {
                self.shared.notice(
                    "00000",
                    format!(
                        "relation \"{}\" does not exist, skipping",
                        crate::sql::rewrite::display_name(&alter.name)
                    ),
                );
                return done("ALTER TABLE");
            }
            None => {
                return Err(Error::user(
                    "42P01",
                    format!(
                        "relation \"{}\" does not exist",
                        crate::sql::rewrite::display_name(&alter.name)
                    ),
                ));
            }
        };
        for operation in alter.operations {
            self.alter_operation(table.id, operation).await?;
        }
        done("ALTER TABLE")
    }

    async fn alter_operation(
        &mut self,
        table_id: u64,
        operation: AlterTableOperation,
    ) -> Result<()> {
        let table = {
            let state = self.shared.state.lock();
            state
                .catalog
                .table(table_id)
                .cloned()
                .ok_or_else(|| Error::internal("altered table vanished"))?
        };
        let database = self.shared.database.clone();
        match operation {
            AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                ..
            } => {
                let name = normalize(&column_def.name);
                if table.column_slot(&name).is_some() {
                    return if if_not_exists {
                        self.shared.notice(
                            "42701",
                            format!(
                                "column \"{name}\" of relation \"{}\" already exists, skipping",
                                table.name
                            ),
                        );
                        Ok(())
                    } else {
                        Err(Error::user(
                            "42701",
                            format!(
                                "column \"{name}\" of relation \"{}\" already exists",
                                table.name
                            ),
                        ))
                    };
                }
                let column_type = {
                    let catalog = self.shared.state.lock().catalog.clone();
                    crate::sql::user_types::table_column_type(&catalog, &column_def.data_type)?
                };
                if column_type.serial {
                    return Err(Error::not_supported("ADD COLUMN of a SERIAL column"));
                }
                let mut column = ColumnDef {
                    name: name.clone(),
                    data_type: column_type.data_type,
                    not_null: false,
                    default: None,
                    identity: None,
                    dropped: false,
                    missing: Value::Null,
                };
                let mut check = None;
                for option in &column_def.options {
                    match &option.option {
                        ColumnOption::Null => {}
                        ColumnOption::NotNull => column.not_null = true,
                        ColumnOption::Default(expr) => column.default = Some(expr.to_string()),
                        ColumnOption::Check(constraint) => {
                            check = Some(constraint.expr.to_string())
                        }
                        other => {
                            return Err(Error::not_supported(format!("ADD COLUMN with {other}")));
                        }
                    }
                }
                if let Some(default) = &column.default {
                    // Existing rows read the default as evaluated now (PostgreSQL's "missing value").
                    let (_, batches) = self
                        .collect_query(parse_query(&format!("SELECT ({default})"))?)
                        .await?;
                    let batch = batches
                        .first()
                        .ok_or_else(|| Error::internal("default produced no row"))?;
                    let array = cast_to(batch.column(0), column.data_type)?;
                    column.missing = value_at(&array, 0, column.data_type)?;
                }
                let has_rows = self.with_state(|state| {
                    let transaction = state.transaction()?;
                    Ok(transaction
                        .scan(Key::row_range(table.id), false)?
                        .next()
                        .is_some())
                })?;
                if column.not_null && column.missing.is_null() && has_rows {
                    return Err(Error::user(
                        "23502",
                        format!(
                            "column \"{name}\" of relation \"{}\" contains null values",
                            table.name
                        ),
                    ));
                }
                self.change_catalog(|catalog, transaction| {
                    let mut table = table.clone();
                    table.columns.push(column);
                    table.version += 1;
                    if let Some(expression) = check {
                        table.checks.push(CheckDef {
                            name: format!("{}_{name}_check", table.name),
                            expression,
                        });
                    }
                    catalog.put(transaction, Object::Table(table))?;
                    Ok(())
                })?;
            }
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                drop_behavior,
                ..
            } => {
                let cascade = matches!(drop_behavior, Some(ast::DropBehavior::Cascade));
                let shared = self.shared.clone();
                self.change_catalog(|catalog, transaction| {
                    let mut table = table.clone();
                    for ident in &column_names {
                        let name = normalize(ident);
                        let Some(slot) = table.column_slot(&name) else {
                            if if_exists {
                                shared.notice(
                                    "00000",
                                    format!(
                                        "column \"{name}\" of relation \"{}\" does not exist, skipping",
                                        table.name
                                    ),
                                );
                                continue;
                            }
                            return Err(Error::user(
                                "42703",
                                format!("column \"{name}\" of relation \"{}\" does not exist", table.name),
                            ));
                        };
                        if table.primary_key.contains(&slot) {
                            return Err(Error::not_supported(format!(
                                "dropping primary key column \"{name}\""
                            )));
                        }
                        if catalog.referencing(table.id).iter().any(|(_, key)| key.referenced_columns.contains(&slot)) && !cascade {
                            return Err(Error::user(
                                "2BP01",
                                format!("cannot drop column {name} of table {} because other objects depend on it", table.name),
                            ));
                        }
                        table.columns[slot].dropped = true;
                        table.columns[slot].not_null = false;
                        table.columns[slot].name = format!("........pg.dropped.{}........", slot + 1);
                        table.foreign_keys.retain(|key| !key.columns.contains(&slot));
                        table.checks.retain(|check| !mentions(&check.expression, &name));
                        let reads_column = |index: &IndexDef| {
                            index.columns.contains(&slot)
                                || index.include.contains(&slot)
                                || index.expressions.iter().chain(&index.predicate).any(|text| mentions(text, &name))
                        };
                        for index in catalog.indexes_of(table.id).filter(|index| reads_column(index)).map(|index| index.id).collect::<Vec<_>>() {
                            drop_object(transaction, catalog, &database, index, true)?;
                        }
                        for sequence in catalog.sequences_owned_by(table.id).into_iter().filter(|sequence| sequence.owned_by == Some((table.id, slot))).map(|sequence| sequence.id).collect::<Vec<_>>() {
                            catalog.remove(transaction, sequence)?;
                        }
                    }
                    if table.live_columns().next().is_none() && table.has_row_id() {
                        // PostgreSQL allows zero-column tables; so do we.
                    }
                    table.version += 1;
                    catalog.put(transaction, Object::Table(table))?;
                    Ok(())
                })?;
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let old = normalize(&old_column_name);
                let new = normalize(&new_column_name);
                self.change_catalog(|catalog, transaction| {
                    let mut table = table.clone();
                    let slot = table.column_slot(&old).ok_or_else(|| {
                        Error::user("42703", format!("column \"{old}\" does not exist"))
                    })?;
                    if table.column_slot(&new).is_some() {
                        return Err(Error::user(
                            "42701",
                            format!(
                                "column \"{new}\" of relation \"{}\" already exists",
                                table.name
                            ),
                        ));
                    }
                    table.columns[slot].name = new.clone();
                    for check in &mut table.checks {
                        check.expression = rename_identifier(&check.expression, &old, &new);
                    }
                    let renamed: Vec<IndexDef> = catalog
                        .indexes_of(table.id)
                        .filter(|index| !index.is_plain())
                        .map(|index| {
                            let mut index = index.clone();
                            for text in index.expressions.iter_mut().chain(index.predicate.as_mut())
                            {
                                *text = rename_identifier(text, &old, &new);
                            }
                            index
                        })
                        .collect();
                    for index in renamed {
                        catalog.put(transaction, Object::Index(index))?;
                    }
                    catalog.put(transaction, Object::Table(table))?;
                    Ok(())
                })?;
            }
            AlterTableOperation::RenameTable { table_name } => {
                let target = match table_name {
                    ast::RenameTableNameKind::As(name) | ast::RenameTableNameKind::To(name) => name,
                };
                self.change_catalog(|catalog, transaction| {
                    let new = qualify(catalog, &target)?.name;
                    if catalog.named(table.schema, &new).is_some() {
                        return Err(already_exists("relation", &new));
                    }
                    let mut table = table.clone();
                    table.name = new;
                    catalog.put(transaction, Object::Table(table))?;
                    Ok(())
                })?;
            }
            AlterTableOperation::AlterColumn { column_name, op } => {
                let name = normalize(&column_name);
                let slot = table.column_slot(&name).ok_or_else(|| {
                    Error::user(
                        "42703",
                        format!(
                            "column \"{name}\" of relation \"{}\" does not exist",
                            table.name
                        ),
                    )
                })?;
                let mut changed = table.clone();
                match op {
                    AlterColumnOperation::SetDefault { value } => {
                        self.collect_query(parse_query(&format!("SELECT ({value}) WHERE FALSE"))?)
                            .await?;
                        changed.columns[slot].default = Some(value.to_string());
                    }
                    AlterColumnOperation::DropDefault => changed.columns[slot].default = None,
                    AlterColumnOperation::SetNotNull => {
                        let has_null = self.with_state(|state| {
                            let transaction = state.transaction()?;
                            Ok(scan_table(transaction, &table)?
                                .iter()
                                .any(|row| row.values[slot].is_null()))
                        })?;
                        if has_null {
                            return Err(Error::user(
                                "23502",
                                format!(
                                    "column \"{name}\" of relation \"{}\" contains null values",
                                    table.name
                                ),
                            ));
                        }
                        changed.columns[slot].not_null = true;
                    }
                    AlterColumnOperation::DropNotNull => {
                        if table.primary_key.contains(&slot) {
                            return Err(Error::user(
                                "42P16",
                                format!("column \"{name}\" is in a primary key"),
                            ));
                        }
                        changed.columns[slot].not_null = false;
                    }
                    other => return Err(Error::not_supported(format!("ALTER COLUMN {other}"))),
                }
                self.change_catalog(|catalog, transaction| {
                    transaction.validate_range(Key::row_range(table.id));
                    catalog.put(transaction, Object::Table(changed))?;
                    Ok(())
                })?;
            }
            AlterTableOperation::AddConstraint { constraint, .. } => {
                let mut constraints = Constraints::default();
                constraints.add(&constraint, None)?;
                if let Some((name, columns)) = constraints.primary_key.take() {
                    let database = database.clone();
                    self.change_catalog(|catalog, transaction| {
                        let table = catalog
                            .table(table.id)
                            .cloned()
                            .ok_or_else(|| Error::internal("table vanished"))?;
                        add_primary_key(transaction, catalog, &database, table, name, &columns)
                    })?;
                }
                for (name, expression, _) in constraints.checks {
                    let full = format!(
                        "{}.{}",
                        quote(&catalog_schema(self, table.schema)),
                        quote(&table.name)
                    );
                    let (_, batches) = self
                        .collect_query(parse_query(&format!(
                            "SELECT count(*) FROM {full} WHERE NOT ({expression})"
                        ))?)
                        .await?;
                    let violations = batches
                        .first()
                        .and_then(|batch| {
                            batch
                                .column(0)
                                .as_any()
                                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                                .map(|a| a.value(0))
                        })
                        .unwrap_or(0);
                    let name = name.unwrap_or_else(|| match only_column_of(&expression, &table) {
                        Some(column) => format!("{}_{column}_check", table.name),
                        None => format!("{}_check", table.name),
                    });
                    if violations > 0 {
                        return Err(Error::user(
                            "23514",
                            format!(
                                "check constraint \"{name}\" of relation \"{}\" is violated by some row",
                                table.name
                            ),
                        ));
                    }
                    self.change_catalog(|catalog, transaction| {
                        let mut changed = catalog
                            .table(table.id)
                            .cloned()
                            .ok_or_else(|| Error::internal("table vanished"))?;
                        changed.checks.push(CheckDef { name, expression });
                        transaction.validate_range(Key::row_range(table.id));
                        catalog.put(transaction, Object::Table(changed))?;
                        Ok(())
                    })?;
                }
                for (name, columns) in constraints.uniques {
                    self.change_catalog(|catalog, transaction| {
                        let slots = slots_of(&table, &columns)?;
                        let name = name.unwrap_or_else(|| {
                            unique_name(
                                catalog,
                                table.schema,
                                &format!("{}_{}_key", table.name, columns.join("_")),
                                &HashSet::new(),
                            )
                        });
                        if catalog.named(table.schema, &name).is_some() {
                            return Err(already_exists("relation", &name));
                        }
                        let index = IndexDef {
                            id: Catalog::allocate_id(transaction)?,
                            schema: table.schema,
                            name,
                            table: table.id,
                            columns: slots,
                            unique: true,
                            constraint: true,
                            expressions: Vec::new(),
                            predicate: None,
                            include: Vec::new(),
                            method: IndexMethod::BTree,
                        };
                        catalog.put(transaction, Object::Index(index.clone()))?;
                        build_index(transaction, &self.shared.database, &table, &index)
                    })?;
                }
                for (name, columns, referenced, referenced_columns, on_delete, on_update) in
                    constraints.foreign_keys
                {
                    self.change_catalog(|catalog, transaction| {
                        let parent = match lookup(catalog, &self.shared.temp_schema, &referenced)? {
                            Some(Object::Table(parent)) => parent.clone(),
                            _ => return Err(Error::user("42P01", format!("relation \"{referenced}\" does not exist"))),
                        };
                        same_persistence(catalog, table.schema, parent.schema)?;
                        let slots = slots_of(&table, &columns)?;
                        let referenced_slots = if referenced_columns.is_empty() {
                            parent.primary_key.clone()
                        } else {
                            slots_of(&parent, &referenced_columns)?
                        };
                        if slots.len() != referenced_slots.len() || referenced_slots.is_empty() {
                            return Err(Error::user(
                                "42830",
                                "number of referencing and referenced columns for foreign key disagree",
                            ));
                        }
                        let mut changed = catalog.table(table.id).cloned().ok_or_else(|| Error::internal("table vanished"))?;
                        let name = name.unwrap_or_else(|| format!("{}_{}_fkey", table.name, columns.join("_")));
                        changed.foreign_keys.push(ForeignKeyDef {
                            name,
                            columns: slots,
                            referenced_table: parent.id,
                            referenced_columns: referenced_slots,
                            on_delete,
                            on_update,
                        });
                        catalog.put(transaction, Object::Table(changed.clone()))?;
                        let writer = TableWriter::new(catalog, &changed, &database)?;
                        for row in scan_table(transaction, &changed)? {
                            writer.check_references(transaction, &row.values)?;
                        }
                        Ok(())
                    })?;
                }
            }
            AlterTableOperation::DropConstraint {
                if_exists, name, ..
            } => {
                let name = normalize(&name);
                let shared = self.shared.clone();
                self.change_catalog(|catalog, transaction| {
                    let mut changed = table.clone();
                    let before = changed.checks.len() + changed.foreign_keys.len();
                    changed.checks.retain(|check| check.name != name);
                    changed.foreign_keys.retain(|key| key.name != name);
                    let index = catalog
                        .indexes_of(table.id)
                        .find(|index| index.constraint && index.name == name)
                        .map(|index| index.id);
                    if let Some(index) = index {
                        drop_object(transaction, catalog, &database, index, true)?;
                    } else if changed.checks.len() + changed.foreign_keys.len() == before {
                        if changed.primary_key_name.as_deref() == Some(name.as_str()) {
                            return Err(Error::not_supported("dropping a primary key"));
                        }
                        if if_exists {
                            shared.notice(
                                "00000",
                                format!(
                                    "constraint \"{name}\" of relation \"{}\" does not exist, skipping",
                                    table.name
                                ),
                            );
                            return Ok(());
                        }
                        return Err(Error::user(
                            "42704",
                            format!(
                                "constraint \"{name}\" of relation \"{}\" does not exist",
                                table.name
                            ),
                        ));
                    }
                    catalog.put(transaction, Object::Table(changed))?;
                    Ok(())
                })?;
            }
            other => return Err(Error::not_supported(format!("ALTER TABLE {other}"))),
        }
        Ok(())
    }
}

fn catalog_schema(session: &Session, schema: u64) -> String {
    session
        .shared
        .state
        .lock()
        .catalog
        .schema_name(schema)
        .to_string()
}

/// True when `expression` mentions identifier `name` (a conservative textual test for dropped columns).
fn mentions(expression: &str, name: &str) -> bool {
    expression
        .split(|character: char| !(character.is_alphanumeric() || character == '_'))
        .any(|word| word.eq_ignore_ascii_case(name))
}

fn rename_identifier(expression: &str, old: &str, new: &str) -> String {
    let mut out = String::with_capacity(expression.len());
    let mut word = String::new();
    let mut in_string = false;
    for character in expression.chars() {
        if character == '\'' {
            in_string = !in_string;
        }
        if !in_string && (character.is_alphanumeric() || character == '_') {
            word.push(character);
            continue;
        }
        if !word.is_empty() {
            out.push_str(if word.eq_ignore_ascii_case(old) {
                new
            } else {
                &word
            });
            word.clear();
        }
        out.push(character);
    }
    if !word.is_empty() {
        out.push_str(if word.eq_ignore_ascii_case(old) {
            new
        } else {
            &word
        });
    }
    out
}

/// Writes the entries of a new index for every existing row; a unique index fails on duplicates.
fn build_index(
    transaction: &mut Transaction,
    database: &crate::database::DatabaseInner,
    table: &TableDef,
    index: &IndexDef,
) -> Result<()> {
    let entries = crate::sql::write::IndexEntries::new(database, table, index)?;
    transaction.validate_range(Key::row_range(table.id));
    if let Some(config) = index.method.hnsw() {
        // Built in memory on both cores, then written.
        let prefix = Key::row_prefix(table.id).len();
        let rows: Vec<(Vec<u8>, Vec<f32>)> = scan_table(transaction, table)?
            .into_iter()
            .filter_map(|row| match &row.values[index.columns[0]] {
                Value::Vector(elements) | Value::HalfVector(elements) => {
                    Some((row.key[prefix..].to_vec(), elements.clone()))
                }
                _ => None,
            })
            .collect();
        let threads =
            std::thread::available_parallelism().map_or(1, |threads| threads.get().min(8));
        let graph = qubedb_model::hnsw::build(index.id, &config, rows, threads)?;
        qubedb_model::hnsw::write(transaction, index.id, &graph)?;
        return Ok(());
    }
    for row in scan_table(transaction, table)? {
        let primary_key = &row.key[Key::row_prefix(table.id).len()..];
        for entry in entries.entries(&row.values, primary_key)? {
            if index.unique && transaction.contains(&entry.key)? {
                return Err(Error::user(
                    "23505",
                    format!("could not create unique index \"{}\"", index.name),
                )
                .with_detail(format!("{} is duplicated.", entries.describe(&row.values)?)));
            }
            transaction.put(entry.key, entry.value)?;
        }
    }
    Ok(())
}

/// Deletes every row and index entry of a table, keeping the table.
fn clear_table(transaction: &mut Transaction, catalog: &Catalog, table: &TableDef) -> Result<()> {
    transaction.validate_range(Key::row_range(table.id));
    let keys: Vec<Vec<u8>> = transaction
        .scan(Key::row_range(table.id), false)?
        .map(|item| item.map(|(key, _)| key))
        .collect::<qubedb_kv::Result<_>>()?;
    for key in keys {
        transaction.delete(key)?;
    }
    for index in catalog.indexes_of(table.id) {
        clear_index(transaction, index.id)?;
    }
    Ok(())
}

fn clear_index(transaction: &mut Transaction, index: u64) -> Result<()> {
    let keys: Vec<Vec<u8>> = transaction
        .scan(Key::index_range(index), false)?
        .map(|item| item.map(|(key, _)| key))
        .collect::<qubedb_kv::Result<_>>()?;
    for key in keys {
        transaction.delete(key)?;
    }
    Ok(())
}

/// The views whose query reads relation `name` in schema `schema`.
fn dependent_views(catalog: &Catalog, schema: u64, name: &str) -> Vec<u64> {
    catalog
        .objects()
        .filter_map(|object| match object {
            Object::View(view) => {
                let statements = crate::sql::parse::parse(&view.query).ok()?;
                let mut reads = false;
                let _ = visit_relations(&statements, |relation| {
                    if let Ok(qualified) = qualify(catalog, relation)
                        && qualified.schema == schema
                        && qualified.name == name
                    {
                        reads = true;
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                });
                reads.then_some(view.id)
            }
            _ => None,
        })
        .collect()
}

/// True for `pg_temp.name`, which creates a temporary relation.
fn is_pg_temp_name(name: &ast::ObjectName) -> bool {
    matches!(name.0.as_slice(), [ast::ObjectNamePart::Identifier(schema), _] if normalize(schema) == "pg_temp")
}

/// Where `CREATE TEMPORARY TABLE name` puts its table: the session's temporary schema `temp_schema`
/// (id `schema`, which exists); a name qualified with another schema is an error, as in PostgreSQL.
fn temp_name(
    catalog: &Catalog,
    temp_schema: &str,
    schema: u64,
    name: &ast::ObjectName,
) -> Result<crate::sql::rewrite::QualifiedName> {
    let qualified = crate::sql::rewrite::resolve(catalog, temp_schema, name)?;
    if name.0.len() > 1 && qualified.schema_name != temp_schema {
        return Err(Error::user(
            "42P16",
            "cannot create temporary relation in non-temporary schema",
        ));
    }
    Ok(crate::sql::rewrite::QualifiedName {
        schema,
        schema_name: temp_schema.to_string(),
        name: qualified.name,
    })
}

/// Drops schema `schema` and everything in it.
pub(crate) fn drop_schema(
    transaction: &mut Transaction,
    catalog: &mut Catalog,
    database: &crate::database::DatabaseInner,
    schema: u64,
) -> Result<()> {
    let members: Vec<u64> = catalog
        .objects()
        .filter(|object| object.qualified_name().0 == schema)
        .map(Object::id)
        .collect();
    for member in members {
        if catalog.object(member).is_some() {
            drop_object(transaction, catalog, database, member, true)?;
        }
    }
    catalog.remove(transaction, schema)?;
    Ok(())
}

/// Drops one object and, with `cascade`, what depends on it; without, fails with 2BP01 if anything does.
fn drop_object(
    transaction: &mut Transaction,
    catalog: &mut Catalog,
    database: &crate::database::DatabaseInner,
    id: u64,
    cascade: bool,
) -> Result<()> {
    let Some(object) = catalog.object(id).cloned() else {
        return Ok(());
    };
    let depends = |what: String| {
        Error::user(
            "2BP01",
            format!(
                "cannot drop {} {} because other objects depend on it",
                object.kind(),
                object.qualified_name().1
            ),
        )
        .with_detail(what)
        .with_hint("Use DROP ... CASCADE to drop the dependent objects too.")
    };
    match &object {
        Object::Table(table) => {
            let views = dependent_views(catalog, table.schema, &table.name);
            let referencing: Vec<(u64, String, String)> = catalog
                .referencing(table.id)
                .into_iter()
                .filter(|(child, _)| child.id != table.id)
                .map(|(child, key)| (child.id, child.name.clone(), key.name.clone()))
                .collect();
            if !cascade {
                if let Some((_, child, key)) = referencing.first() {
                    return Err(depends(format!(
                        "constraint {key} on table {child} depends on table {}",
                        table.name
                    )));
                }
                if let Some(view) = views.first().and_then(|id| catalog.object(*id)) {
                    return Err(depends(format!(
                        "view {} depends on table {}",
                        view.qualified_name().1,
                        table.name
                    )));
                }
            }
            for view in views {
                drop_object(transaction, catalog, database, view, true)?;
            }
            for (child, _, key) in referencing {
                if let Some(mut child_table) = catalog.table(child).cloned() {
                    child_table
                        .foreign_keys
                        .retain(|foreign_key| foreign_key.name != key);
                    catalog.put(transaction, Object::Table(child_table))?;
                }
            }
            clear_table(transaction, catalog, table)?;
            let owned: Vec<u64> = catalog.indexes_of(table.id).map(|index| index.id).collect();
            for index in owned {
                catalog.remove(transaction, index)?;
            }
            for sequence in catalog
                .sequences_owned_by(table.id)
                .into_iter()
                .map(|sequence| sequence.id)
                .collect::<Vec<_>>()
            {
                catalog.remove(transaction, sequence)?;
                database.forget_sequence(sequence);
            }
            database.forget_sequence(table.id);
            transaction.delete(Key::Sequence(table.id).encode())?;
            transaction.delete(Key::Statistics(table.id).encode())?;
        }
        Object::View(view) => {
            let views: Vec<u64> = dependent_views(catalog, view.schema, &view.name)
                .into_iter()
                .filter(|other| *other != view.id)
                .collect();
            if !views.is_empty() && !cascade {
                let name = catalog
                    .object(views[0])
                    .map(|object| object.qualified_name().1.to_string())
                    .unwrap_or_default();
                return Err(depends(format!(
                    "view {name} depends on view {}",
                    view.name
                )));
            }
            for other in views {
                drop_object(transaction, catalog, database, other, true)?;
            }
        }
        Object::Index(index) => {
            if index.constraint && !cascade {
                return Err(Error::user(
                    "2BP01",
                    format!(
                        "cannot drop index {} because constraint {} on its table requires it",
                        index.name, index.name
                    ),
                )
                .with_hint("You can drop the constraint instead."));
            }
            clear_index(transaction, index.id)?;
        }
        Object::Sequence(sequence) => {
            if let Some((table, slot)) = sequence.owned_by
                && let Some(owner) = catalog.table(table)
                && !cascade
                && owner
                    .columns
                    .get(slot)
                    .is_some_and(|column| !column.dropped)
            {
                return Err(depends(format!(
                    "default value for column {} of table {} depends on sequence {}",
                    owner.columns[slot].name, owner.name, sequence.name
                )));
            }
            database.forget_sequence(sequence.id);
        }
        Object::Type(_) => {
            return crate::sql::user_types::drop_type(transaction, catalog, id, cascade);
        }
        Object::Schema(_) => {}
    }
    catalog.remove(transaction, id)?;
    Ok(())
}

fn sequence_def(
    id: u64,
    schema: u64,
    name: String,
    data_type: DataType,
    options: &[SequenceOptions],
) -> Result<SequenceDef> {
    let type_max = match data_type {
        DataType::SmallInt => i64::from(i16::MAX),
        DataType::Integer => i64::from(i32::MAX),
        DataType::BigInt => i64::MAX,
        other => {
            return Err(Error::user(
                "22023",
                format!(
                    "sequence type must be smallint, integer, or bigint, not {}",
                    other.sql_name()
                ),
            ));
        }
    };
    let number = |expr: &ast::Expr| -> Result<i64> {
        let text = expr.to_string().replace(' ', "");
        text.parse::<i64>().map_err(|_| {
            Error::user(
                "22023",
                format!("sequence option value {text} is not an integer"),
            )
        })
    };
    let mut increment = 1;
    let mut min_value = None;
    let mut max_value = None;
    let mut start = None;
    let mut cycle = false;
    for option in options {
        match option {
            SequenceOptions::IncrementBy(expr, _) => increment = number(expr)?,
            SequenceOptions::MinValue(Some(expr)) => min_value = Some(number(expr)?),
            SequenceOptions::MaxValue(Some(expr)) => max_value = Some(number(expr)?),
            SequenceOptions::MinValue(None) | SequenceOptions::MaxValue(None) => {}
            SequenceOptions::StartWith(expr, _) => start = Some(number(expr)?),
            SequenceOptions::Cache(_) => {}
            // sqlparser 0.62 reports `CYCLE` as Cycle(false) and `NO CYCLE` as Cycle(true).
            SequenceOptions::Cycle(no_cycle) => cycle = !*no_cycle,
        }
    }
    if increment == 0 {
        return Err(Error::user("22023", "INCREMENT must not be zero"));
    }
    let min_value = min_value.unwrap_or(if increment > 0 { 1 } else { -type_max - 1 });
    let max_value = max_value.unwrap_or(if increment > 0 { type_max } else { -1 });
    let start = start.unwrap_or(if increment > 0 { min_value } else { max_value });
    if min_value >= max_value {
        return Err(Error::user(
            "22023",
            format!("MINVALUE ({min_value}) must be less than MAXVALUE ({max_value})"),
        ));
    }
    if start < min_value || start > max_value {
        return Err(Error::user(
            "22023",
            format!(
                "START value ({start}) cannot be outside MINVALUE ({min_value}) .. MAXVALUE ({max_value})"
            ),
        ));
    }
    Ok(SequenceDef {
        id,
        schema,
        name,
        data_type,
        start,
        increment,
        min_value,
        max_value,
        cycle,
        owned_by: None,
    })
}
