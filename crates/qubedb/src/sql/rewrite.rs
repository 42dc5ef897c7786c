//! Rewrites of parsed statements before DataFusion plans them, and name resolution shared by DDL and DML.
//!
//! Views are expanded here: a reference to a view becomes the view's query as a derived table with the view's
//! name (and column names) as alias. DataFusion therefore never needs to know about views, and a view always
//! reads through the same transaction as the statement that uses it.

use qubedb_model::vector::VectorKind;
use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    ArrayElemTypeDef, DataType as SqlType, Expr, Ident, ObjectName, ObjectNamePart, Query, Select,
    SelectItem, SetExpr, Statement, TableAlias, TableAliasColumnDef, TableFactor, TimezoneInfo,
    UnaryOperator, Value as SqlValue, ValueWithSpan, VisitMut, VisitorMut, visit_expressions_mut,
};
use qubedb_model::catalog::{Catalog, Object};

use crate::error::{Error, Result};
use crate::sql::convert::parse_interval;
use crate::sql::parse::parse;

/// Deepest nesting of views in views.
pub const VIEW_DEPTH_MAX: usize = 32;

/// An identifier as PostgreSQL folds it: unquoted names are lower-cased.
pub fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// A qualified name as PostgreSQL prints it in messages: each part folded, joined with dots.
pub fn display_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => normalize(ident),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

pub(crate) fn parts(name: &ObjectName) -> Result<Vec<String>> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Ok(normalize(ident)),
            other => Err(Error::not_supported(format!("name part {other}"))),
        })
        .collect()
}

/// A name resolved to a schema and an object name within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    pub schema: u64,
    pub schema_name: String,
    pub name: String,
}

/// Splits `[schema.]name` and resolves the schema (default `public`, where new objects go), checking
/// the name's length. Names of existing relations are resolved with [`resolve`], which also searches the
/// session's temporary schema.
pub fn qualify(catalog: &Catalog, name: &ObjectName) -> Result<QualifiedName> {
    let parts = parts(name)?;
    let (schema_name, object) = match parts.as_slice() {
        [object] => ("public".to_string(), object.clone()),
        [schema, object] => (schema.clone(), object.clone()),
        [database, schema, object] if database == "qubedb" => (schema.clone(), object.clone()),
        _ => {
            return Err(Error::user(
                "42601",
                format!("improper qualified name (too many dotted names): {name}"),
            ));
        }
    };
    if object.len() > qubedb_model::IDENTIFIER_BYTES_MAX {
        return Err(Error::user(
            "42622",
            format!(
                "identifier \"{object}\" is longer than identifier_bytes_max = {}",
                qubedb_model::IDENTIFIER_BYTES_MAX
            ),
        ));
    }
    let schema = catalog
        .schema_id(&schema_name)
        .ok_or_else(|| Error::user("3F000", format!("schema \"{schema_name}\" does not exist")))?;
    Ok(QualifiedName {
        schema,
        schema_name,
        name: object,
    })
}

/// Splits `[schema.]name` of an existing relation: an unqualified name is looked up first in the
/// session's temporary schema `temp_schema` (when the catalog has it), then in `public`, as PostgreSQL
/// puts `pg_temp` first on every search path; `pg_temp.name` names the temporary schema itself.
pub fn resolve(catalog: &Catalog, temp_schema: &str, name: &ObjectName) -> Result<QualifiedName> {
    let temp = catalog.schema_id(temp_schema);
    if let [ObjectNamePart::Identifier(first), ..] = name.0.as_slice()
        && name.0.len() == 2
        && normalize(first) == "pg_temp"
    {
        let mut renamed = name.clone();
        renamed.0[0] = ObjectNamePart::Identifier(Ident::new(temp_schema));
        return match temp {
            Some(_) => qualify(catalog, &renamed),
            None => Err(Error::user(
                "42P01",
                format!("relation \"{}\" does not exist", display_name(name)),
            )),
        };
    }
    let qualified = qualify(catalog, name)?;
    if name.0.len() == 1
        && let Some(temp) = temp
        && catalog.relation(temp, &qualified.name).is_some()
    {
        return Ok(QualifiedName {
            schema: temp,
            schema_name: temp_schema.to_string(),
            name: qualified.name,
        });
    }
    Ok(qualified)
}

/// Resolves a name to an existing object (see [`resolve`]), or `None`.
pub fn lookup<'a>(
    catalog: &'a Catalog,
    temp_schema: &str,
    name: &ObjectName,
) -> Result<Option<&'a Object>> {
    let qualified = resolve(catalog, temp_schema, name)?;
    Ok(catalog.relation(qualified.schema, &qualified.name))
}

/// Applies every rewrite to a query.
///
/// Unqualified names resolve to the statement's local tables (`locals`: `excluded`, the rows a CHECK
/// reads), then the session's temporary schema `temp_schema`, then `public`.
pub fn rewrite_query(
    query: &mut Query,
    catalog: &Catalog,
    temp_schema: &str,
    locals: HashSet<String>,
) -> Result<()> {
    expand_views(query, catalog, temp_schema, locals, 0)?;
    remove_unary_plus(query);
    let _ = query.visit(&mut ColumnNamer);
    rewrite_bitwise_not(query);
    let _ = query.visit(&mut ValuesColumns);
    crate::sql::whole_row::rewrite(query, catalog, temp_schema)?;
    crate::sql::user_types::rewrite(query, catalog)?;
    rewrite_pg_compat(query)?;
    rewrite_casts(query)?;
    rewrite_literals(query)
}

/// Marks an output name made unique for DataFusion; the part before it is the name the client sees.
pub const DUPLICATE_NAME_MARKER: char = '\u{1}';

/// Names output columns as PostgreSQL does: unnamed expressions get PostgreSQL's name (`count`, `upper`,
/// `date` for `'...'::date`, `?column?`). PostgreSQL allows duplicate output names and DataFusion does not,
/// so a repeated name gets an internal suffix after [`DUPLICATE_NAME_MARKER`], which
/// `Session::run_query` removes from the result's schema.
struct ColumnNamer;

impl VisitorMut for ColumnNamer {
    type Break = ();

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        let names: Vec<Option<String>> = select
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::UnnamedExpr(expr) => {
                    Some(pg_column_name(expr).unwrap_or_else(|| "?column?".to_string()))
                }
                SelectItem::ExprWithAlias { alias, .. } => Some(normalize(alias)),
                _ => None,
            })
            .collect();
        let mut seen: HashSet<String> = HashSet::new();
        for (position, (item, name)) in select.projection.iter_mut().zip(names).enumerate() {
            let Some(name) = name else { continue };
            let first = seen.insert(name.clone());
            let alias = if first {
                name
            } else {
                format!("{name}{DUPLICATE_NAME_MARKER}{}", position + 1)
            };
            match item {
                SelectItem::UnnamedExpr(expr) => {
                    let is_column =
                        matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
                    if !is_column || !first {
                        *item = SelectItem::ExprWithAlias {
                            expr: expr.clone(),
                            alias: Ident::with_quote('"', alias),
                        };
                    }
                }
                SelectItem::ExprWithAlias {
                    alias: existing, ..
                } if !first => {
                    *existing = Ident::with_quote('"', alias);
                }
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }
}

/// `VALUES (t.a), (t.a * 10)` (a LATERAL or correlated VALUES list): a column carries its SQL type in
/// its field's metadata and an expression does not, and DataFusion refuses a VALUES column whose rows'
/// metadata differ ("Inconsistent metadata across values list"). In a column whose rows are not all the
/// same expression, each column reference (or cast of one) becomes `coalesce(...)` — the same value,
/// without the metadata — so the rows agree, and the column's type is what their values unify to, as in
/// PostgreSQL.
struct ValuesColumns;

impl ValuesColumns {
    /// A column, or a cast of one (a cast keeps its input's metadata until the analyzer runs).
    fn keeps_column_type(expr: &Expr) -> bool {
        match expr {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
            Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => Self::keeps_column_type(inner),
            _ => false,
        }
    }

    fn rewrite(body: &mut SetExpr) {
        match body {
            SetExpr::Values(values) if values.rows.len() > 1 => {
                let width = values
                    .rows
                    .iter()
                    .map(|row| row.content.len())
                    .max()
                    .unwrap_or(0);
                for column in 0..width {
                    let first = values.rows[0].content.get(column);
                    let uniform = values
                        .rows
                        .iter()
                        .all(|row| row.content.get(column) == first);
                    if uniform {
                        continue;
                    }
                    for row in &mut values.rows {
                        // `DEFAULT` in an INSERT's VALUES parses as an identifier too.
                        if let Some(item) = row.content.get_mut(column)
                            && Self::keeps_column_type(item)
                            && !crate::sql::dml::is_default_keyword(item)
                        {
                            let column = item.clone();
                            *item =
                                parse_expression(&format!("coalesce({column})")).unwrap_or(column);
                        }
                    }
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                Self::rewrite(left);
                Self::rewrite(right);
            }
            _ => {}
        }
    }
}

impl VisitorMut for ValuesColumns {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        Self::rewrite(&mut query.body);
        ControlFlow::Continue(())
    }
}

/// PostgreSQL's name for an output expression (its `FigureColname`), `None` for `?column?`.
fn pg_column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(ident) => Some(normalize(ident)),
        Expr::CompoundIdentifier(parts) => parts.last().map(normalize),
        Expr::Function(function) => function.name.0.last().map(|part| match part {
            ObjectNamePart::Identifier(ident) => normalize(ident),
            other => other.to_string().to_lowercase(),
        }),
        // A cast's own name is weaker than a column's or a function's: a cast of a cast is named
        // after the outer type, as PostgreSQL's FigureColname does.
        Expr::Cast {
            expr, data_type, ..
        } => {
            let mut inner = expr.as_ref();
            while let Expr::Cast { expr, .. } | Expr::Nested(expr) = inner {
                inner = expr;
            }
            match inner {
                Expr::TypedString(_) => Some(pg_type_name(data_type)),
                inner => pg_column_name(inner).or_else(|| Some(pg_type_name(data_type))),
            }
        }
        Expr::Nested(inner) => pg_column_name(inner),
        Expr::Case { .. } => Some("case".into()),
        Expr::Exists { .. } => Some("exists".into()),
        Expr::Extract { .. } => Some("extract".into()),
        Expr::Substring { .. } => Some("substring".into()),
        Expr::Trim { .. } => Some("btrim".into()),
        Expr::Position { .. } => Some("position".into()),
        Expr::Interval(_) => Some("interval".into()),
        Expr::Array(_) => Some("array".into()),
        Expr::Tuple(_) => Some("row".into()),
        Expr::TypedString(typed) => Some(pg_type_name(&typed.data_type)),
        // A scalar subquery is named after its (leftmost) query's first output column.
        Expr::Subquery(query) => subquery_column_name(&query.body),
        _ => None,
    }
}

fn subquery_column_name(body: &SetExpr) -> Option<String> {
    match body {
        SetExpr::Select(select) => match select.projection.first()? {
            SelectItem::UnnamedExpr(expr) => pg_column_name(expr),
            SelectItem::ExprWithAlias { alias, .. } => Some(normalize(alias)),
            _ => None,
        },
        SetExpr::Query(query) => subquery_column_name(&query.body),
        SetExpr::SetOperation { left, .. } => subquery_column_name(left),
        _ => None,
    }
}

fn pg_type_name(data_type: &SqlType) -> String {
    match data_type {
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => "int4".into(),
        SqlType::BigInt(_) | SqlType::Int8(_) => "int8".into(),
        SqlType::SmallInt(_) | SqlType::Int2(_) => "int2".into(),
        SqlType::Real | SqlType::Float4 => "float4".into(),
        SqlType::DoublePrecision | SqlType::Float8 | SqlType::Double(_) => "float8".into(),
        SqlType::Bool | SqlType::Boolean => "bool".into(),
        SqlType::Varchar(_) | SqlType::CharacterVarying(_) | SqlType::CharVarying(_) => {
            "varchar".into()
        }
        SqlType::Char(_) | SqlType::Character(_) => "bpchar".into(),
        SqlType::Numeric(_) | SqlType::Decimal(_) | SqlType::Dec(_) => "numeric".into(),
        SqlType::Timestamp(_, TimezoneInfo::Tz | TimezoneInfo::WithTimeZone) => {
            "timestamptz".into()
        }
        SqlType::Timestamp(..) => "timestamp".into(),
        SqlType::Time(..) => "time".into(),
        SqlType::JSONB => "jsonb".into(),
        SqlType::JSON => "json".into(),
        // `vector(3)` names its column `vector`, `real[]` `float4`.
        SqlType::Custom(name, _) => name
            .0
            .last()
            .map_or_else(String::new, |part| part.to_string().to_lowercase()),
        SqlType::Array(
            ArrayElemTypeDef::SquareBracket(element, _)
            | ArrayElemTypeDef::AngleBracket(element)
            | ArrayElemTypeDef::Parenthesis(element),
        ) => pg_type_name(element),
        other => other.to_string().to_lowercase(),
    }
}

/// Casts to types DataFusion lacks or reads differently become QubeDB functions with PostgreSQL's input
/// rules: `::uuid`, `::jsonb`, `::json`, `::bytea` (the `\\x` hex and escape formats), `::interval`.
fn rewrite_casts(query: &mut Query) -> Result<()> {
    let mut failure = None;
    let _ = visit_expressions_mut(query, |expr| {
        // `B'1010'`, a bit-string literal; `bit '...'` and `varbit '...'`, typed ones.
        let bit_input = match expr {
            Expr::Value(ValueWithSpan {
                value: SqlValue::SingleQuotedByteStringLiteral(bits),
                ..
            }) => Some(Ok(format!("qubedb_varbit('{}')", bits.replace('\'', "''")))),
            Expr::TypedString(typed) => match typed.data_type {
                // The literal's own length when none is named (PostgreSQL's `ConstBit`).
                SqlType::Bit(None) | SqlType::BitVarying(None) | SqlType::VarBit(None) => {
                    Some(Ok(format!("qubedb_varbit({})", typed.value)))
                }
                SqlType::Bit(length) => {
                    Some(crate::sql::ddl::bit_length(length, false).map(|length| {
                        format!("qubedb_bit({}, {})", typed.value, length.unwrap_or(1))
                    }))
                }
                SqlType::BitVarying(length) | SqlType::VarBit(length) => Some(
                    crate::sql::ddl::bit_length(length, true).map(|length| match length {
                        Some(length) => format!("qubedb_varbit({}, {length})", typed.value),
                        None => format!("qubedb_varbit({})", typed.value),
                    }),
                ),
                _ => None,
            },
            Expr::Cast {
                expr: inner,
                data_type: SqlType::Bit(length),
                ..
            } => Some(
                crate::sql::ddl::bit_length(*length, false)
                    .map(|length| format!("qubedb_bit({inner}, {})", length.unwrap_or(1))),
            ),
            Expr::Cast {
                expr: inner,
                data_type: SqlType::BitVarying(length) | SqlType::VarBit(length),
                ..
            } => Some(
                crate::sql::ddl::bit_length(*length, true).map(|length| match length {
                    Some(length) => format!("qubedb_varbit({inner}, {length})"),
                    None => format!("qubedb_varbit({inner})"),
                }),
            ),
            _ => None,
        };
        if let Some(call) = bit_input {
            match call.and_then(|call| parse_expression(&call)) {
                Ok(replacement) => *expr = replacement,
                Err(error) => {
                    failure = Some(error);
                    return ControlFlow::Break(());
                }
            }
            return ControlFlow::Continue(());
        }
        // `jsonb '...'`: the input function of the type, as `'...'::jsonb`.
        if let Expr::TypedString(typed) = expr
            && matches!(typed.data_type, SqlType::JSONB | SqlType::JSON)
        {
            let function = if typed.data_type == SqlType::JSON {
                "qubedb_json"
            } else {
                "qubedb_jsonb"
            };
            match parse_expression(&format!("{function}({})", typed.value)) {
                Ok(replacement) => *expr = replacement,
                Err(error) => {
                    failure = Some(error);
                    return ControlFlow::Break(());
                }
            }
            return ControlFlow::Continue(());
        }
        let Expr::Cast {
            expr: inner,
            data_type,
            ..
        } = expr
        else {
            return ControlFlow::Continue(());
        };
        // PostgreSQL's identifier type reads as text.
        if let SqlType::Custom(name, modifiers) = data_type
            && modifiers.is_empty()
            && name.to_string().eq_ignore_ascii_case("name")
        {
            *data_type = SqlType::Text;
            return ControlFlow::Continue(());
        }
        // `::vector`, `::vector(n)`, `::vector[]` (and `halfvec`'s): pgvector's input, with the
        // dimensions checked.
        let vector_kind = |name: &ObjectName| {
            let name = name.to_string();
            if name.eq_ignore_ascii_case("vector") {
                Some(VectorKind::Single)
            } else if name.eq_ignore_ascii_case("halfvec") {
                Some(VectorKind::Half)
            } else {
                None
            }
        };
        let vector = match data_type {
            SqlType::Custom(name, modifiers) => vector_kind(name).map(|kind| {
                let function = match kind {
                    VectorKind::Single => "qubedb_vector",
                    VectorKind::Half => "qubedb_halfvec",
                };
                (kind, function, modifiers.clone())
            }),
            SqlType::Array(
                ArrayElemTypeDef::SquareBracket(element, _)
                | ArrayElemTypeDef::AngleBracket(element),
            ) => match element.as_ref() {
                SqlType::Custom(name, modifiers) => vector_kind(name).map(|kind| {
                    let function = match kind {
                        VectorKind::Single => "qubedb_vector_array",
                        VectorKind::Half => "qubedb_halfvec_array",
                    };
                    (kind, function, modifiers.clone())
                }),
                _ => None,
            },
            _ => None,
        };
        // The function and the dimensions the type names (checked as the type checks them).
        let input = match (&*data_type, vector) {
            (SqlType::Custom(name, modifiers), _)
                if name.to_string().eq_ignore_ascii_case("sparsevec") =>
            {
                Some(
                    crate::sql::ddl::sparse_vector_dimensions(modifiers)
                        .map(|dimensions| ("qubedb_sparsevec", dimensions)),
                )
            }
            (_, Some((kind, function, modifiers))) => Some(
                crate::sql::ddl::vector_dimensions_of(kind, &modifiers)
                    .map(|dimensions| (function, dimensions)),
            ),
            _ => None,
        };
        if let Some(input) = input {
            let call = input.and_then(|(function, dimensions)| {
                let dimensions = dimensions.map(|n| format!(", {n}")).unwrap_or_default();
                parse_expression(&format!("{function}({inner}{dimensions})"))
            });
            match call {
                Ok(replacement) => *expr = replacement,
                Err(error) => {
                    failure = Some(error);
                    return ControlFlow::Break(());
                }
            }
            return ControlFlow::Continue(());
        }
        let function = match data_type {
            SqlType::Custom(name, modifiers)
                if modifiers.is_empty() && name.to_string().eq_ignore_ascii_case("jsonpath") =>
            {
                "qubedb_jsonpath"
            }
            SqlType::Uuid => "qubedb_uuid",
            SqlType::JSONB => "qubedb_jsonb",
            SqlType::JSON => "qubedb_json",
            SqlType::Bytea => "qubedb_bytea",
            SqlType::Interval { .. } => {
                if let Expr::Value(ValueWithSpan {
                    value: SqlValue::SingleQuotedString(text),
                    ..
                }) = inner.as_ref()
                {
                    match parse_interval(text) {
                        Ok((months, days, microseconds)) => {
                            let literal = format!(
                                "INTERVAL '{months} months {days} days {microseconds} microseconds'"
                            );
                            match parse_expression(&literal) {
                                Ok(replacement) => *expr = replacement,
                                Err(error) => failure = Some(error),
                            }
                        }
                        Err(error) => failure = Some(error),
                    }
                    if failure.is_some() {
                        return ControlFlow::Break(());
                    }
                }
                return ControlFlow::Continue(());
            }
            _ => return ControlFlow::Continue(()),
        };
        match parse_expression(&format!("{function}({inner})")) {
            Ok(replacement) => *expr = replacement,
            Err(error) => {
                failure = Some(error);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// PostgreSQL spellings that clients' catalog queries use and DataFusion does not read:
/// - `OPERATOR(pg_catalog.~)` and friends become the plain operator;
/// - `COLLATE "C"` / `"POSIX"` / `pg_catalog.default` go (QubeDB compares text bytewise, which is those
///   collations' order); any other collation is refused;
/// - `pg_catalog.f(...)` is `f(...)`, and `::pg_catalog.t` is `::t`;
/// - the object identifier types: `'name'::regclass` is the relation's OID, `oid::regclass` prints its
///   name, likewise `regtype` and `regnamespace`; `::oid` is a bigint.
fn rewrite_pg_compat(query: &mut Query) -> Result<()> {
    use datafusion::sql::sqlparser::ast::BinaryOperator;
    let _ = query.visit(&mut TableFunctions);
    let mut failure = None;
    let _ = visit_expressions_mut(query, |expr| {
        match expr {
            Expr::BinaryOp { op, .. } => {
                if let BinaryOperator::PGCustomBinaryOperator(parts) = op {
                    let operator = match parts.last().map(String::as_str) {
                        Some("~") => Some(BinaryOperator::PGRegexMatch),
                        Some("~*") => Some(BinaryOperator::PGRegexIMatch),
                        Some("!~") => Some(BinaryOperator::PGRegexNotMatch),
                        Some("!~*") => Some(BinaryOperator::PGRegexNotIMatch),
                        Some("=") => Some(BinaryOperator::Eq),
                        Some("<>") => Some(BinaryOperator::NotEq),
                        Some("<") => Some(BinaryOperator::Lt),
                        Some("<=") => Some(BinaryOperator::LtEq),
                        Some(">") => Some(BinaryOperator::Gt),
                        Some(">=") => Some(BinaryOperator::GtEq),
                        Some("||") => Some(BinaryOperator::StringConcat),
                        Some("~~") => Some(BinaryOperator::PGLikeMatch),
                        Some("!~~") => Some(BinaryOperator::PGNotLikeMatch),
                        _ => None,
                    };
                    match operator {
                        Some(operator) => *op = operator,
                        None => {
                            failure = Some(Error::not_supported(format!("operator {op}")));
                            return ControlFlow::Break(());
                        }
                    }
                }
            }
            Expr::Collate {
                expr: inner,
                collation,
            } => {
                let name = collation
                    .0
                    .last()
                    .map(|part| match part {
                        ObjectNamePart::Identifier(ident) => ident.value.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default();
                if !matches!(name.as_str(), "C" | "POSIX" | "default" | "ucs_basic") {
                    failure = Some(Error::user(
                        "42704",
                        format!("collation \"{name}\" for encoding \"UTF8\" does not exist"),
                    ));
                    return ControlFlow::Break(());
                }
                let inner = std::mem::replace(inner.as_mut(), Expr::value(SqlValue::Null));
                *expr = Expr::Nested(Box::new(inner));
            }
            // ARRAY(SELECT x FROM ...): the subquery's values aggregated into an array, as
            // `(SELECT array_agg(x ORDER BY ...) FROM ...)` so that it may still refer to outer columns.
            Expr::Function(function)
                if function.name.to_string().eq_ignore_ascii_case("array")
                    && matches!(
                        function.args,
                        datafusion::sql::sqlparser::ast::FunctionArguments::Subquery(_)
                    ) =>
            {
                let datafusion::sql::sqlparser::ast::FunctionArguments::Subquery(subquery) =
                    &function.args
                else {
                    return ControlFlow::Continue(());
                };
                match array_subquery(subquery) {
                    Ok(replacement) => *expr = replacement,
                    Err(error) => {
                        failure = Some(error);
                        return ControlFlow::Break(());
                    }
                }
            }
            // `(composite).field` (JDBC's `(information_schema._pg_expandarray(a)).n`): DataFusion reads
            // struct fields with `get_field`.
            Expr::CompoundFieldAccess { root, access_chain }
                if !matches!(
                    root.as_ref(),
                    Expr::Identifier(_) | Expr::CompoundIdentifier(_)
                ) && access_chain.iter().all(|access| {
                    matches!(
                        access,
                        datafusion::sql::sqlparser::ast::AccessExpr::Dot(Expr::Identifier(_))
                    )
                }) =>
            {
                let mut text = root.to_string();
                for access in access_chain.iter() {
                    if let datafusion::sql::sqlparser::ast::AccessExpr::Dot(Expr::Identifier(
                        field,
                    )) = access
                    {
                        text = format!("get_field({text}, '{}')", field.value.replace('\'', "''"));
                    }
                }
                match parse_expression(&text) {
                    Ok(replacement) => *expr = replacement,
                    Err(error) => {
                        failure = Some(error);
                        return ControlFlow::Break(());
                    }
                }
            }
            Expr::Function(function)
                if function
                    .name
                    .to_string()
                    .eq_ignore_ascii_case("information_schema._pg_expandarray") =>
            {
                // A set of (x, n): each element with its 1-based position.
                let arguments = match &function.args {
                    datafusion::sql::sqlparser::ast::FunctionArguments::List(list) => list
                        .args
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>(),
                    _ => Vec::new(),
                };
                match parse_expression(&format!(
                    "unnest(qubedb_expand_array({}))",
                    arguments.join(", ")
                )) {
                    Ok(replacement) => *expr = replacement,
                    Err(error) => {
                        failure = Some(error);
                        return ControlFlow::Break(());
                    }
                }
            }
            // `ROW(a, b)`: a record whose fields are named f1, f2, ... as PostgreSQL names them.
            Expr::Function(function)
                if function.name.to_string().eq_ignore_ascii_case("row")
                    && matches!(
                        &function.args,
                        datafusion::sql::sqlparser::ast::FunctionArguments::List(list)
                            if !list.args.is_empty()
                    ) =>
            {
                let datafusion::sql::sqlparser::ast::FunctionArguments::List(list) = &function.args
                else {
                    return ControlFlow::Continue(());
                };
                let fields: Vec<String> = list
                    .args
                    .iter()
                    .enumerate()
                    .map(|(position, argument)| format!("'f{}', {argument}", position + 1))
                    .collect();
                match parse_expression(&format!("named_struct({})", fields.join(", "))) {
                    Ok(replacement) => *expr = replacement,
                    Err(error) => {
                        failure = Some(error);
                        return ControlFlow::Break(());
                    }
                }
            }
            // jsonb's set-returning functions in a select list: their array form, unnested.
            Expr::Function(function) if json_set_function(&function.name).is_some() => {
                let Some((_, array_function, _)) = json_set_function(&function.name) else {
                    return ControlFlow::Continue(());
                };
                if let Err(error) = positional_arguments(function) {
                    failure = Some(error);
                    return ControlFlow::Break(());
                }
                let arguments = match &function.args {
                    datafusion::sql::sqlparser::ast::FunctionArguments::List(list) => list
                        .args
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>(),
                    _ => Vec::new(),
                };
                match parse_expression(&format!(
                    "unnest({array_function}({}))",
                    arguments.join(", ")
                )) {
                    Ok(replacement) => *expr = replacement,
                    Err(error) => {
                        failure = Some(error);
                        return ControlFlow::Break(());
                    }
                }
            }
            Expr::Function(function) => {
                unqualify_pg_catalog(&mut function.name);
                rename_array_bounds(function);
                if let Err(error) =
                    positional_arguments(function).and_then(|()| check_variadic(function))
                {
                    failure = Some(error);
                    return ControlFlow::Break(());
                }
                if let Some(replacement) = array_subscripts(function) {
                    match replacement {
                        Ok(replacement) => *expr = replacement,
                        Err(error) => {
                            failure = Some(error);
                            return ControlFlow::Break(());
                        }
                    }
                }
            }
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } => {
                if let Err(error) = unqualify_type(data_type) {
                    failure = Some(error);
                    return ControlFlow::Break(());
                }
                let identifier_type = match data_type {
                    SqlType::Regclass => Some("regclass".to_string()),
                    SqlType::Custom(name, modifiers) if modifiers.is_empty() => {
                        Some(name.to_string().to_lowercase())
                    }
                    _ => None,
                };
                let literal = matches!(
                    inner.as_ref(),
                    Expr::Value(ValueWithSpan {
                        value: SqlValue::SingleQuotedString(_),
                        ..
                    })
                );
                let function = match (identifier_type.as_deref(), literal) {
                    (Some("regclass"), true) => "qubedb_regclass_oid",
                    (Some("regclass"), false) => "qubedb_regclass_name",
                    (Some("regtype"), true) => "qubedb_regtype_oid",
                    (Some("regtype"), false) => "format_type",
                    (Some("regnamespace"), false) => "qubedb_regnamespace_name",
                    (Some("oid"), _) => {
                        *data_type = SqlType::BigInt(None);
                        return ControlFlow::Continue(());
                    }
                    _ => return ControlFlow::Continue(()),
                };
                let call = if function == "format_type" {
                    format!("format_type({inner}, NULL)")
                } else {
                    format!("{function}({inner})")
                };
                match parse_expression(&call) {
                    Ok(replacement) => *expr = replacement,
                    Err(error) => {
                        failure = Some(error);
                        return ControlFlow::Break(());
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    });
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Table functions as PostgreSQL names them: `pg_catalog.generate_series(...)` is `generate_series(...)`,
/// and a one-column function aliased `s` names its column `s` too (`FROM generate_series(1, 3) s`
/// reads `s`).
struct TableFunctions;

impl VisitorMut for TableFunctions {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let set_function = match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => json_set_function(name),
            _ => None,
        };
        // `FROM unnest(a) v` (sqlparser's own UNNEST item) names its one column `v` too.
        if let TableFactor::UNNEST {
            alias: Some(alias),
            array_exprs,
            with_offset: false,
            ..
        } = factor
            && array_exprs.len() == 1
            && alias.columns.is_empty()
        {
            alias.columns = vec![TableAliasColumnDef::from_name(alias.name.value.clone())];
        }
        if let Some(set_function) = set_function
            && let Some(derived) = json_set_function_as_subquery(factor, set_function)
        {
            *factor = derived;
            return ControlFlow::Continue(());
        }
        if let TableFactor::Table {
            name,
            args: Some(_),
            alias,
            ..
        } = factor
        {
            unqualify_pg_catalog(name);
            let function = name.to_string().to_lowercase();
            if matches!(function.as_str(), "generate_series" | "unnest")
                && let Some(alias) = alias
                && alias.columns.is_empty()
            {
                alias.columns = vec![TableAliasColumnDef::from_name(alias.name.value.clone())];
            }
            if matches!(
                function.as_str(),
                "generate_series" | "unnest" | "pg_partition_ancestors"
            ) && let Some(derived) = set_function_as_subquery(factor, &function)
            {
                *factor = derived;
            }
        }
        ControlFlow::Continue(())
    }
}

/// `FROM generate_series(a, b) s` whose arguments read columns (of an outer query, in a correlated
/// subquery: psql's `\d` does this): DataFusion's table function wants constants, so it becomes
/// `(SELECT unnest(generate_series(a, b)) AS s) AS s`, the array function unnested, which DataFusion
/// plans per outer row. `FROM pg_catalog.unnest(a) x` (which DataFusion does not read as its UNNEST)
/// becomes `(SELECT unnest(a) AS x) AS x` the same way, and so does `pg_partition_ancestors(r) [WITH
/// ORDINALITY]`, one row here (nothing is partitioned). `None` when nothing needs rewriting.
fn set_function_as_subquery(factor: &TableFactor, function: &str) -> Option<TableFactor> {
    let TableFactor::Table {
        args: Some(arguments),
        alias,
        with_ordinality,
        ..
    } = factor
    else {
        return None;
    };
    let mut reads_columns = false;
    for argument in &arguments.args {
        let _ = datafusion::sql::sqlparser::ast::visit_expressions(argument, |expression| {
            if matches!(
                expression,
                Expr::Identifier(_) | Expr::CompoundIdentifier(_)
            ) {
                reads_columns = true;
            }
            ControlFlow::<()>::Continue(())
        });
    }
    let is_unnest = function == "unnest";
    let is_series = function == "generate_series";
    if is_unnest && arguments.args.len() != 1 || is_series && !reads_columns {
        return None;
    }
    if *with_ordinality && !matches!(function, "pg_partition_ancestors") {
        return None;
    }
    let column = alias
        .as_ref()
        .and_then(|alias| alias.columns.first())
        .map_or_else(|| function.to_string(), |column| column.name.to_string());
    let listed: Vec<String> = arguments.args.iter().map(ToString::to_string).collect();
    let sql = if is_unnest {
        format!("SELECT unnest({}) AS {column}", listed.join(", "))
    } else if !is_series {
        let ordinality = alias
            .as_ref()
            .and_then(|alias| alias.columns.get(1))
            .map_or_else(
                || "ordinality".to_string(),
                |column| column.name.to_string(),
            );
        let ordinality = if *with_ordinality {
            format!(", CAST(1 AS BIGINT) AS {ordinality}")
        } else {
            String::new()
        };
        format!(
            "SELECT {function}({}) AS {column}{ordinality}",
            listed.join(", ")
        )
    } else {
        format!(
            "SELECT unnest(generate_series({})) AS {column}",
            listed.join(", ")
        )
    };
    let Ok(mut statements) = crate::sql::parse::parse(&sql) else {
        return None;
    };
    let Some(Statement::Query(subquery)) = statements.pop() else {
        return None;
    };
    Some(TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(alias.clone().unwrap_or_else(|| TableAlias {
            explicit: true,
            name: Ident::new(function),
            columns: Vec::new(),
            at: None,
        })),
        sample: None,
    })
}

/// The jsonb set-returning function `name` names: (its name, its array function, its columns).
fn json_set_function(
    name: &ObjectName,
) -> Option<(&'static str, &'static str, &'static [&'static str])> {
    let name = name.to_string().to_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    crate::sql::jsonb::SET_RETURNING
        .iter()
        .find(|(function, _, _)| *function == name)
        .copied()
}

/// `FROM jsonb_each(doc) [AS q [(k, v)]]`: a derived table of the function's array form unnested, its
/// records split into columns (`key`, `value`), named as the alias's column list says. A function of
/// one column takes the alias's name for it when the alias lists none (PostgreSQL's rule for
/// functions of a base type), except those whose column is named (`value`).
fn json_set_function_as_subquery(
    factor: &TableFactor,
    (function, array_function, columns): (&'static str, &'static str, &'static [&'static str]),
) -> Option<TableFactor> {
    let TableFactor::Table {
        args: Some(arguments),
        alias,
        with_ordinality: false,
        ..
    } = factor
    else {
        return None;
    };
    let listed: Vec<String> = arguments.args.iter().map(ToString::to_string).collect();
    let call = format!("unnest({array_function}({}))", listed.join(", "));
    let named = |position: usize, default: &str| -> String {
        let declared = alias
            .as_ref()
            .and_then(|alias| alias.columns.get(position))
            .map(|column| column.name.clone());
        match declared {
            Some(name) => name.to_string(),
            None if columns.len() == 1 && default == function => alias
                .as_ref()
                .map_or_else(|| default.to_string(), |alias| alias.name.to_string()),
            None => default.to_string(),
        }
    };
    let sql = if columns.len() == 1 {
        format!("SELECT {call} AS {}", named(0, columns[0]))
    } else {
        let fields: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(position, column)| {
                format!(
                    "get_field(record, '{column}') AS {}",
                    named(position, column)
                )
            })
            .collect();
        format!(
            "SELECT {} FROM (SELECT {call} AS record) AS records",
            fields.join(", ")
        )
    };
    derived_table(&sql, alias.as_ref(), function).ok()
}

/// A FROM item that is the query `sql`, named `alias` (its column list dropped: `sql` names its
/// columns) or `default_name`: how a function in FROM becomes a query DataFusion plans.
pub(crate) fn derived_table(
    sql: &str,
    alias: Option<&TableAlias>,
    default_name: &str,
) -> Result<TableFactor> {
    let mut statements = parse(sql)?;
    let Some(Statement::Query(subquery)) = statements.pop() else {
        return Err(Error::internal(format!(
            "generated query {sql} is not a query"
        )));
    };
    let mut alias = alias.cloned().unwrap_or_else(|| TableAlias {
        explicit: true,
        name: Ident::new(default_name),
        columns: Vec::new(),
        at: None,
    });
    alias.columns.clear();
    Ok(TableFactor::Derived {
        lateral: true,
        subquery,
        alias: Some(alias),
        sample: None,
    })
}

/// Drops a leading `pg_catalog.` from a two-part name (`pg_catalog.f` is `f`); true if it did.
fn unqualify_pg_catalog(name: &mut ObjectName) -> bool {
    let qualified = in_pg_catalog(name);
    if qualified {
        name.0.remove(0);
    }
    qualified
}

/// True for a two-part name whose first part is `pg_catalog`.
fn in_pg_catalog(name: &ObjectName) -> bool {
    name.0.len() == 2
        && matches!(&name.0[0], ObjectNamePart::Identifier(ident) if ident.value.eq_ignore_ascii_case("pg_catalog"))
}

/// `pg_catalog.t` (also as an array's element type) is `t`.
fn unqualify_type(data_type: &mut SqlType) -> Result<()> {
    use datafusion::sql::sqlparser::ast::ArrayElemTypeDef;
    match data_type {
        SqlType::Custom(name, modifiers) if in_pg_catalog(name) => {
            let text = name.0[1].to_string();
            let text = if modifiers.is_empty() {
                text
            } else {
                format!("{text}({})", modifiers.join(", "))
            };
            *data_type = crate::params::parse_type_name(&text)?;
        }
        SqlType::Array(
            ArrayElemTypeDef::SquareBracket(element, _)
            | ArrayElemTypeDef::AngleBracket(element)
            | ArrayElemTypeDef::Parenthesis(element),
        ) => unqualify_type(element)?,
        _ => {}
    }
    Ok(())
}

/// A function's parameters: each name, with the SQL text of its default if it has one.
type Parameters = &'static [(&'static str, Option<&'static str>)];

/// The parameters of the built-in functions that take named arguments (`name => value`), in order,
/// with the default of each optional one (SQL text).
const NAMED_PARAMETERS: &[(&str, Parameters)] = &[
    (
        "jsonb_set_lax",
        &[
            ("jsonb_in", None),
            ("path", None),
            ("replacement", None),
            ("create_if_missing", Some("true")),
            ("null_value_treatment", Some("'use_json_null'")),
        ],
    ),
    (
        "jsonb_set",
        &[
            ("jsonb_in", None),
            ("path", None),
            ("replacement", None),
            ("create_if_missing", Some("true")),
        ],
    ),
    (
        "jsonb_insert",
        &[
            ("jsonb_in", None),
            ("path", None),
            ("replacement", None),
            ("insert_after", Some("false")),
        ],
    ),
];

/// The path functions share one parameter list.
const PATH_PARAMETERS: Parameters = &[
    ("target", None),
    ("path", None),
    ("vars", Some("'{}'")),
    ("silent", Some("false")),
];

/// Named arguments (`f(a, name => v)`) put in their parameter's position, with the defaults of the
/// parameters skipped before them, for the functions of [`NAMED_PARAMETERS`] (DataFusion's functions
/// have no parameter names). A name the function does not have is 42883, as in PostgreSQL.
fn positional_arguments(function: &mut datafusion::sql::sqlparser::ast::Function) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgOperator, FunctionArguments};
    let FunctionArguments::List(list) = &mut function.args else {
        return Ok(());
    };
    if !list.args.iter().any(|argument| {
        matches!(
            argument,
            FunctionArg::Named { .. } | FunctionArg::ExprNamed { .. }
        )
    }) {
        return Ok(());
    }
    let name = function.name.to_string().to_lowercase();
    let parameters = NAMED_PARAMETERS
        .iter()
        .find(|(function, _)| *function == name)
        .map(|(_, parameters)| *parameters)
        .or_else(|| {
            let unprefixed = name.strip_prefix("qubedb_").unwrap_or(&name);
            unprefixed
                .starts_with("jsonb_path_")
                .then_some(PATH_PARAMETERS)
        });
    let no_function = || {
        Error::user(
            "42883",
            format!("function {name} with these named arguments does not exist"),
        )
        .with_hint(
            "No function matches the given name and argument types. You might need to add explicit type casts.",
        )
    };
    let Some(parameters) = parameters else {
        return Err(no_function());
    };
    let mut slots: Vec<Option<Expr>> = vec![None; parameters.len()];
    let mut positional = 0;
    for argument in &list.args {
        match argument {
            FunctionArg::Unnamed(datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(expr)) => {
                let slot = slots.get_mut(positional).ok_or_else(no_function)?;
                *slot = Some(expr.clone());
                positional += 1;
            }
            FunctionArg::Named {
                name: argument_name,
                arg: datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(expr),
                operator: FunctionArgOperator::RightArrow | FunctionArgOperator::Assignment,
            }
            | FunctionArg::ExprNamed {
                name: Expr::Identifier(argument_name),
                arg: datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(expr),
                operator: FunctionArgOperator::RightArrow | FunctionArgOperator::Assignment,
            } => {
                let wanted = normalize(argument_name);
                let position = parameters
                    .iter()
                    .position(|(parameter, _)| *parameter == wanted)
                    .ok_or_else(no_function)?;
                if slots[position].is_some() {
                    return Err(Error::user(
                        "42601",
                        format!("argument name \"{wanted}\" used more than once"),
                    ));
                }
                slots[position] = Some(expr.clone());
            }
            _ => return Err(no_function()),
        }
    }
    let last = slots.iter().rposition(Option::is_some).unwrap_or(0);
    let mut arguments = Vec::with_capacity(last + 1);
    for (slot, (_, default)) in slots.into_iter().zip(parameters).take(last + 1) {
        let expr = match (slot, default) {
            (Some(expr), _) => expr,
            (None, Some(default)) => parse_expression(default)?,
            (None, None) => return Err(no_function()),
        };
        arguments.push(FunctionArg::Unnamed(
            datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(expr),
        ));
    }
    list.args = arguments;
    Ok(())
}

/// `f(VARIADIC array)` (which `sql/parse.rs` spells `f(qubedb_variadic(array))`) is accepted by the JSON
/// builders; any other function would take the array as one argument, so it is refused.
fn check_variadic(function: &datafusion::sql::sqlparser::ast::Function) -> Result<()> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let name = function.name.to_string().to_lowercase();
    if name == "qubedb_variadic"
        || matches!(
            name.as_str(),
            "json_build_object" | "json_build_array" | "jsonb_build_object" | "jsonb_build_array"
        )
    {
        return Ok(());
    }
    let FunctionArguments::List(list) = &function.args else {
        return Ok(());
    };
    let variadic = list.args.iter().any(|argument| {
        matches!(argument, FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Function(inner)))
            if inner.name.to_string().eq_ignore_ascii_case("qubedb_variadic"))
    });
    if variadic {
        return Err(Error::not_supported(format!(
            "VARIADIC arguments of {name}"
        )));
    }
    Ok(())
}

/// `array_upper(a, 1)` is `array_length(a, 1)`: QubeDB's arrays all start at 1.
fn rename_array_bounds(function: &mut datafusion::sql::sqlparser::ast::Function) {
    if function
        .name
        .to_string()
        .eq_ignore_ascii_case("array_upper")
    {
        function.name = ObjectName::from(vec![Ident::new("array_length")]);
    }
}

/// `generate_subscripts(a, d)` (a set-returning function, in a select list as SQLAlchemy uses it beside
/// `unnest(a)`) is `unnest(generate_series(1, array_length(a, d)))`: QubeDB's arrays start at 1, and
/// DataFusion zips the unnests of one select list as PostgreSQL zips its set-returning functions.
fn array_subscripts(function: &datafusion::sql::sqlparser::ast::Function) -> Option<Result<Expr>> {
    if !function
        .name
        .to_string()
        .eq_ignore_ascii_case("generate_subscripts")
    {
        return None;
    }
    let datafusion::sql::sqlparser::ast::FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let arguments: Vec<String> = list.args.iter().map(ToString::to_string).collect();
    let [array, dimension] = arguments.as_slice() else {
        return Some(Err(Error::not_supported(
            "generate_subscripts with other than two arguments",
        )));
    };
    Some(parse_expression(&format!(
        "unnest(generate_series(1, array_length({array}, {dimension})))"
    )))
}

/// `ARRAY(subquery)` as a scalar subquery over `array_agg`.
fn array_subquery(subquery: &Query) -> Result<Expr> {
    let SetExpr::Select(select) = subquery.body.as_ref() else {
        return Err(Error::not_supported("ARRAY() over a set operation"));
    };
    let [item] = select.projection.as_slice() else {
        return Err(Error::user("42601", "subquery must return only one column"));
    };
    let value = match item {
        SelectItem::UnnamedExpr(value) | SelectItem::ExprWithAlias { expr: value, .. } => value,
        _ => return Err(Error::user("42601", "subquery must return only one column")),
    };
    if !matches!(
        select.group_by,
        datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(ref list, _) if list.is_empty()
    ) || subquery.limit_clause.is_some()
        || select.distinct.is_some()
    {
        return Err(Error::not_supported(
            "ARRAY() over a subquery with GROUP BY, DISTINCT or LIMIT",
        ));
    }
    // The ORDER BY moves into the aggregate, where `ORDER BY 1` would mean the constant: positions
    // become the projected value.
    let mut order_by = subquery.order_by.clone();
    if let Some(datafusion::sql::sqlparser::ast::OrderBy {
        kind: datafusion::sql::sqlparser::ast::OrderByKind::Expressions(list),
        ..
    }) = &mut order_by
    {
        for item in list {
            if let Expr::Value(ValueWithSpan {
                value: SqlValue::Number(number, _),
                ..
            }) = &item.expr
            {
                if number != "1" {
                    return Err(Error::user(
                        "42P10",
                        format!("ORDER BY position {number} is not in select list"),
                    ));
                }
                item.expr = value.clone();
            }
        }
    }
    let order = match &order_by {
        Some(order_by) => format!(" {order_by}"),
        None => String::new(),
    };
    let mut aggregated = subquery.clone();
    aggregated.order_by = None;
    if let SetExpr::Select(select) = aggregated.body.as_mut() {
        select.projection = vec![SelectItem::UnnamedExpr(parse_expression(&format!(
            "array_agg({value}{order})"
        ))?)];
    }
    Ok(Expr::Subquery(Box::new(aggregated)))
}

pub(crate) fn parse_expression(sql: &str) -> Result<Expr> {
    let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
    datafusion::sql::sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|error| {
            Error::internal(format!(
                "generated expression {sql} does not parse: {error}"
            ))
        })
}

/// Removes unary plus (`+ x` is `x`), which DataFusion does not accept.
fn remove_unary_plus(query: &mut Query) {
    let _ = visit_expressions_mut(query, |expr| {
        while let Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr: inner,
        } = expr
        {
            *expr = Expr::Nested(Box::new(std::mem::replace(
                inner.as_mut(),
                Expr::value(SqlValue::Null),
            )));
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Makes `~ x` the call `qubedb_bitwise_not(x)`, which inverts a bit string's bits as well as an
/// integer's (`sql/bit_string.rs`; the operand's type is not known here). Runs after the output
/// columns are named, so `~x` is still `?column?`.
fn rewrite_bitwise_not(query: &mut Query) {
    let _ = visit_expressions_mut(query, |expr| {
        if let Expr::UnaryOp {
            op: UnaryOperator::BitwiseNot,
            expr: inner,
        } = expr
            // The operand prints as SQL and reads back, as the bit-string casts do.
            && let Ok(call) = parse_expression(&format!("qubedb_bitwise_not({inner})"))
        {
            *expr = call;
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Rewrites literals whose PostgreSQL syntax DataFusion does not read: `INTERVAL '1 day 02:00:00'` is
/// parsed here ([`parse_interval`]) and handed on in a form DataFusion reads exactly.
fn rewrite_literals(query: &mut Query) -> Result<()> {
    let mut failure = None;
    let _ = visit_expressions_mut(query, |expr| {
        if let Expr::Interval(interval) = expr
            && interval.leading_field.is_none()
            && interval.last_field.is_none()
            && let Expr::Value(ValueWithSpan {
                value: SqlValue::SingleQuotedString(text),
                ..
            }) = interval.value.as_mut()
        {
            match parse_interval(text) {
                Ok((months, days, microseconds)) => {
                    *text = format!("{months} months {days} days {microseconds} microseconds");
                }
                Err(error) => {
                    failure = Some(error);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    });
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

fn expand_views(
    query: &mut Query,
    catalog: &Catalog,
    temp_schema: &str,
    shadowed: HashSet<String>,
    depth: usize,
) -> Result<()> {
    let mut expander = ViewExpander {
        catalog,
        temp_schema,
        shadowed,
        depth,
        error: None,
    };
    let _ = query.visit(&mut expander);
    match expander.error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

struct ViewExpander<'a> {
    catalog: &'a Catalog,
    /// The session's temporary schema: its tables shadow views of the same unqualified name.
    temp_schema: &'a str,
    /// CTE and statement-local table names, which shadow views and tables of the same unqualified name.
    shadowed: HashSet<String>,
    depth: usize,
    error: Option<Error>,
}

impl VisitorMut for ViewExpander<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for table in &with.cte_tables {
                self.shadowed.insert(normalize(&table.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        if name.0.len() == 1
            && let Some(ObjectNamePart::Identifier(ident)) = name.0.first()
            && self.shadowed.contains(&normalize(ident))
        {
            return ControlFlow::Continue(());
        }
        let view = match lookup(self.catalog, self.temp_schema, name) {
            Ok(Some(Object::View(view))) => view.clone(),
            Ok(Some(Object::Table(table))) => {
                // A temporary table: DataFusion resolves unqualified names to `public`, so name its
                // schema, keeping the name the query refers to it by.
                if self.catalog.schema_id(self.temp_schema) == Some(table.schema) {
                    if alias.is_none() {
                        *alias = Some(TableAlias {
                            explicit: true,
                            name: Ident::with_quote('"', table.name.clone()),
                            columns: Vec::new(),
                            at: None,
                        });
                    }
                    *name = ObjectName(vec![
                        ObjectNamePart::Identifier(Ident::with_quote('"', self.temp_schema)),
                        ObjectNamePart::Identifier(Ident::with_quote('"', table.name.clone())),
                    ]);
                }
                return ControlFlow::Continue(());
            }
            _ => return ControlFlow::Continue(()),
        };
        if self.depth >= VIEW_DEPTH_MAX {
            self.error = Some(Error::user(
                "54001",
                format!(
                    "views nested deeper than view_depth_max = {VIEW_DEPTH_MAX} (a view that refers to itself?)"
                ),
            ));
            return ControlFlow::Break(());
        }
        let mut subquery = match parse(&view.query).map(|mut statements| statements.pop()) {
            Ok(Some(Statement::Query(query))) => query,
            _ => {
                self.error = Some(Error::internal(format!(
                    "stored query of view \"{}\" does not parse",
                    view.name
                )));
                return ControlFlow::Break(());
            }
        };
        if let Err(error) = expand_views(
            &mut subquery,
            self.catalog,
            self.temp_schema,
            HashSet::new(),
            self.depth + 1,
        ) {
            self.error = Some(error);
            return ControlFlow::Break(());
        }
        let alias = alias.clone().unwrap_or_else(|| TableAlias {
            explicit: true,
            name: Ident::with_quote('"', view.name.clone()),
            columns: Vec::new(),
            at: None,
        });
        let alias = if alias.columns.is_empty() && !view.columns.is_empty() {
            TableAlias {
                columns: view
                    .columns
                    .iter()
                    .map(|column| TableAliasColumnDef {
                        name: Ident::with_quote('"', column.clone()),
                        data_type: None,
                    })
                    .collect(),
                ..alias
            }
        } else {
            alias
        };
        *factor = TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(alias),
            sample: None,
        };
        ControlFlow::Continue(())
    }
}
