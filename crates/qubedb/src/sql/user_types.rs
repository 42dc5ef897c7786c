//! User-defined types: composite types (`CREATE TYPE name AS (...)`) and domains (`CREATE DOMAIN`), and
//! what a statement that names them becomes before DataFusion plans it.
//!
//! The catalog keeps a type as a [`TypeDef`] whose parts are SQL type text, resolved when a statement
//! uses the type. Resolving gives a [`Shape`]: the type with every name expanded — base types, arrays,
//! records (a composite type's fields, or a table's columns: every table is also a row type, as in
//! PostgreSQL) and domains (a base shape with NOT NULL and CHECK constraints). DataFusion knows none of
//! these names, so the rewrite here ([`rewrite`]) turns them into what it does know:
//!
//! - `expr::rec` (a composite type) becomes `qubedb_record(expr, 'shape')`, an Arrow struct built from a
//!   row (`ROW(...)`, fields cast by position), a record literal (`'(a,42)'`) or NULL
//!   (see [`crate::sql::records`]);
//! - `expr::dom` (a domain) becomes the cast to the domain's base, wrapped in `qubedb_domain_check`,
//!   which refuses NULL (when the domain is NOT NULL) and any row whose CHECK expressions — the domain's
//!   text with `VALUE` replaced by the value — are false;
//! - `jsonb_populate_record[set]`, `jsonb_to_record[set]` and their `json_` twins become calls of
//!   `qubedb_jsonb_populate_record[set]` with the result's shape as an argument; in FROM, a derived table
//!   that splits the record into columns (checking domain-typed fields as it does).
//!
//! The shape travels to the functions as JSON text in a literal, so the functions need no catalog and
//! a plan stays valid for as long as the catalog version it was made under.
//!
//! Arrays have the number of dimensions the type declares (`int[][]` is a list of lists): PostgreSQL's
//! arrays carry their dimensions in each value instead, so a two-dimensional value for an `int[]` field
//! is refused here where PostgreSQL accepts it. Columns of tables cannot have these types yet.

use std::ops::ControlFlow;

use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Fields};
use datafusion::sql::sqlparser::ast::{
    self, ArrayElemTypeDef, DataType as SqlType, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, ObjectName, Query, TableAlias, TableFactor, UserDefinedTypeRepresentation,
    VisitMut, VisitorMut, visit_expressions_mut,
};
use qubedb_model::catalog::{Catalog, CheckDef, Object, TypeDef, TypeFieldDef, TypeKind};
use qubedb_model::types::DataType;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::result::QueryResult;
use crate::session::Session;
use crate::sql::convert::arrow_type;
use crate::sql::ddl::{column_type, done};
use crate::sql::rewrite::{normalize, parse_expression, parts, qualify};

/// Deepest nesting of types in types (a composite of composites of ...).
pub const TYPE_DEPTH_MAX: usize = 32;

/// Constraint name the parser gives a domain's `NOT NULL` (sqlparser has no domain NOT NULL; see
/// `sql/parse.rs`).
pub(crate) const NOT_NULL_MARKER: &str = "qubedb_domain_not_null";

/// A type with every name resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    Base(DataType),
    /// One array dimension of the element shape.
    Array(Box<Shape>),
    /// A row type: its name (`record` for an anonymous one) and its fields.
    Record {
        name: String,
        fields: Vec<(String, Shape)>,
    },
    Domain(Box<DomainShape>),
}

/// A domain: its base and its constraints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainShape {
    pub name: String,
    pub base: Shape,
    pub not_null: bool,
    pub checks: Vec<CheckDef>,
}

impl Shape {
    /// The Arrow type values of this shape are computed in.
    pub fn arrow_type(&self) -> ArrowType {
        match self {
            Shape::Base(data_type) => arrow_type(*data_type),
            Shape::Array(element) => ArrowType::List(std::sync::Arc::new(Field::new_list_field(
                element.arrow_type(),
                true,
            ))),
            Shape::Record { fields, .. } => ArrowType::Struct(record_fields(fields)),
            Shape::Domain(domain) => domain.base.arrow_type(),
        }
    }

    /// The shape without its domains (a domain's values are its base's).
    pub fn base(&self) -> &Shape {
        match self {
            Shape::Domain(domain) => domain.base.base(),
            other => other,
        }
    }

    /// The type's name as PostgreSQL prints it in messages.
    pub fn sql_name(&self) -> String {
        match self {
            Shape::Base(data_type) => data_type.sql_name(),
            Shape::Array(element) => format!("{}[]", element.sql_name()),
            Shape::Record { name, .. } => name.clone(),
            Shape::Domain(domain) => domain.name.clone(),
        }
    }

    /// True if the shape is one DataFusion computes without help: a base type or an array of one.
    fn is_plain(&self) -> bool {
        match self {
            Shape::Base(_) => true,
            Shape::Array(element) => element.is_plain(),
            _ => false,
        }
    }

    /// The shape as JSON text, for a function's literal argument.
    pub fn to_spec(&self) -> String {
        serde_json::to_string(self).expect("a shape always serializes")
    }

    /// The shape a function's literal argument spells. The functions are callable by name, so a shape
    /// that no type resolves to (a `char(4000000000)`, nesting past [`TYPE_DEPTH_MAX`]) is refused
    /// rather than trusted.
    pub fn from_spec(text: &str) -> Result<Shape> {
        let shape: Shape = serde_json::from_str(text)
            .map_err(|error| Error::user("22023", format!("invalid type shape {text}: {error}")))?;
        shape.check(0)?;
        Ok(shape)
    }

    /// Checks the limits [`resolve`] keeps.
    fn check(&self, depth: usize) -> Result<()> {
        let invalid = || Error::user("22023", "invalid type shape");
        if depth > TYPE_DEPTH_MAX {
            return Err(invalid());
        }
        match self {
            Shape::Base(DataType::Char(length) | DataType::Varchar(Some(length))) => {
                if *length == 0 || *length > qubedb_model::types::CHARACTER_LENGTH_MAX {
                    return Err(invalid());
                }
            }
            Shape::Base(DataType::Numeric {
                precision: Some(precision),
                scale,
            }) => {
                if *precision == 0
                    || *precision > qubedb_model::types::NUMERIC_PRECISION_MAX
                    || *scale < 0
                    || *scale as u8 > *precision
                {
                    return Err(invalid());
                }
            }
            Shape::Base(_) => {}
            Shape::Array(element) => element.check(depth + 1)?,
            Shape::Record { fields, .. } => {
                for (_, field) in fields {
                    field.check(depth + 1)?;
                }
            }
            Shape::Domain(domain) => domain.base.check(depth + 1)?,
        }
        Ok(())
    }

    /// The shape of values DataFusion computed in `arrow` (for anonymous records: `ROW(1, 2)`).
    pub fn of_arrow(arrow: &ArrowType) -> Option<Shape> {
        Some(match arrow {
            ArrowType::Struct(fields) => Shape::Record {
                name: "record".into(),
                fields: fields
                    .iter()
                    .map(|field| Some((field.name().clone(), Shape::of_arrow(field.data_type())?)))
                    .collect::<Option<Vec<_>>>()?,
            },
            ArrowType::List(field) | ArrowType::LargeList(field) => {
                Shape::Array(Box::new(Shape::of_arrow(field.data_type())?))
            }
            other => Shape::Base(crate::sql::convert::sql_type_of_arrow(other)?),
        })
    }
}

/// The Arrow fields of a record's fields.
pub fn record_fields(fields: &[(String, Shape)]) -> Fields {
    fields
        .iter()
        .map(|(name, shape)| Field::new(name, shape.arrow_type(), true))
        .collect()
}

/// Resolves a SQL type that may name user-defined types.
pub fn resolve(catalog: &Catalog, sql: &SqlType) -> Result<Shape> {
    resolve_at(catalog, sql, 0)
}

fn resolve_at(catalog: &Catalog, sql: &SqlType, depth: usize) -> Result<Shape> {
    if depth > TYPE_DEPTH_MAX {
        return Err(Error::user(
            "54001",
            format!("types nest deeper than type_depth_max = {TYPE_DEPTH_MAX}"),
        ));
    }
    match sql {
        SqlType::Array(
            ArrayElemTypeDef::SquareBracket(element, _)
            | ArrayElemTypeDef::AngleBracket(element)
            | ArrayElemTypeDef::Parenthesis(element),
        ) => Ok(Shape::Array(Box::new(resolve_at(
            catalog,
            element,
            depth + 1,
        )?))),
        SqlType::Custom(name, modifiers) if modifiers.is_empty() => {
            let parts = parts(name)?;
            let unqualified = match parts.as_slice() {
                [single] => Some(single.as_str()),
                [schema, single] if schema == "pg_catalog" => {
                    return resolve_at(
                        catalog,
                        &crate::params::parse_type_name(single)?,
                        depth + 1,
                    );
                }
                _ => None,
            };
            // `_int4`: PostgreSQL's name for the array type of `int4`.
            if let Some(element) = unqualified.and_then(|single| single.strip_prefix('_'))
                && !element.is_empty()
                && find_type(catalog, name)?.is_none()
            {
                let element = crate::params::parse_type_name(element)?;
                return Ok(Shape::Array(Box::new(resolve_at(
                    catalog,
                    &element,
                    depth + 1,
                )?)));
            }
            match find_type(catalog, name)? {
                Some(Object::Type(type_def)) => shape_of(catalog, type_def, depth),
                Some(Object::Table(table)) => Ok(Shape::Record {
                    name: table.name.clone(),
                    fields: table
                        .live_columns()
                        .map(|(_, column)| (column.name.clone(), Shape::Base(column.data_type)))
                        .collect(),
                }),
                _ => Ok(Shape::Base(plain_type(sql)?)),
            }
        }
        other => Ok(Shape::Base(plain_type(other)?)),
    }
}

/// The stored type of a table column's SQL type: [`column_type`], with a clear refusal for the
/// user-defined types, which columns cannot have yet.
pub(crate) fn table_column_type(
    catalog: &Catalog,
    sql: &SqlType,
) -> Result<crate::sql::ddl::ColumnType> {
    match column_type(sql) {
        Err(error) if error.code == "42704" => match resolve(catalog, sql) {
            Ok(shape) if !shape.is_plain() => Err(Error::not_supported(format!(
                "columns of type {} (composite and domain types are not yet column types)",
                shape.sql_name()
            ))),
            _ => Err(error),
        },
        other => other,
    }
}

/// A built-in type (SERIAL is a column shorthand, not a type).
fn plain_type(sql: &SqlType) -> Result<DataType> {
    let column = column_type(sql)?;
    if column.serial {
        return Err(Error::user(
            "42704",
            format!("type \"{}\" does not exist", sql.to_string().to_lowercase()),
        ));
    }
    Ok(column.data_type)
}

/// The type or table `name` names, if any.
fn find_type<'a>(catalog: &'a Catalog, name: &ObjectName) -> Result<Option<&'a Object>> {
    let qualified = match qualify(catalog, name) {
        Ok(qualified) => qualified,
        Err(error) if error.code == "3F000" => return Ok(None),
        Err(error) => return Err(error),
    };
    Ok(catalog
        .named(qualified.schema, &qualified.name)
        .filter(|object| matches!(object, Object::Type(_) | Object::Table(_))))
}

/// The shape of a catalog type.
fn shape_of(catalog: &Catalog, type_def: &TypeDef, depth: usize) -> Result<Shape> {
    let parse = |text: &str| -> Result<Shape> {
        resolve_at(catalog, &crate::params::parse_type_name(text)?, depth + 1)
    };
    Ok(match &type_def.kind {
        TypeKind::Composite { fields } => Shape::Record {
            name: type_def.name.clone(),
            fields: fields
                .iter()
                .map(|field| Ok((field.name.clone(), parse(&field.type_name)?)))
                .collect::<Result<Vec<_>>>()?,
        },
        TypeKind::Domain {
            base,
            not_null,
            checks,
            ..
        } => Shape::Domain(Box::new(DomainShape {
            name: type_def.name.clone(),
            base: parse(base)?,
            not_null: *not_null,
            checks: checks.clone(),
        })),
    })
}

/// The last part of the type name a SQL type text ends in (`public.jbpop[]` is `jbpop`), folded.
fn named_type(text: &str) -> Option<String> {
    let mut sql = crate::params::parse_type_name(text).ok()?;
    while let SqlType::Array(
        ArrayElemTypeDef::SquareBracket(element, _)
        | ArrayElemTypeDef::AngleBracket(element)
        | ArrayElemTypeDef::Parenthesis(element),
    ) = sql
    {
        sql = *element;
    }
    match sql {
        SqlType::Custom(name, _) => parts(&name).ok()?.pop(),
        _ => None,
    }
}

/// The types that name type `name`: (id, what depends, shown as PostgreSQL's DETAIL line).
pub(crate) fn dependents(catalog: &Catalog, name: &str) -> Vec<(u64, String)> {
    let mut found = Vec::new();
    for object in catalog.objects() {
        let Object::Type(other) = object else {
            continue;
        };
        match &other.kind {
            TypeKind::Composite { fields } => {
                for field in fields {
                    if named_type(&field.type_name).as_deref() == Some(name) {
                        found.push((
                            other.id,
                            format!(
                                "column {} of composite type {} depends on type {name}",
                                field.name, other.name
                            ),
                        ));
                    }
                }
            }
            TypeKind::Domain { base, .. } => {
                if named_type(base).as_deref() == Some(name) {
                    found.push((
                        other.id,
                        format!("type {} depends on type {name}", other.name),
                    ));
                }
            }
        }
    }
    found
}

/// Drops type `id` and, with `cascade`, what depends on it (fields of composite types naming it are
/// dropped from them; domains over it are dropped).
pub(crate) fn drop_type(
    transaction: &mut qubedb_kv::Transaction,
    catalog: &mut Catalog,
    id: u64,
    cascade: bool,
) -> Result<()> {
    let Some(Object::Type(type_def)) = catalog.object(id).cloned() else {
        return Ok(());
    };
    let dependents = dependents(catalog, &type_def.name);
    if let Some((_, detail)) = dependents.first()
        && !cascade
    {
        return Err(Error::user(
            "2BP01",
            format!(
                "cannot drop type {} because other objects depend on it",
                type_def.name
            ),
        )
        .with_detail(detail.clone())
        .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
    }
    for (dependent, _) in dependents {
        match catalog.object(dependent).cloned() {
            Some(Object::Type(mut other)) => match &mut other.kind {
                TypeKind::Composite { fields } => {
                    fields.retain(|field| {
                        named_type(&field.type_name).as_deref() != Some(&type_def.name)
                    });
                    catalog.put(transaction, Object::Type(other))?;
                }
                TypeKind::Domain { .. } => drop_type(transaction, catalog, dependent, true)?,
            },
            _ => continue,
        }
    }
    catalog.remove(transaction, id)?;
    Ok(())
}

impl Session {
    /// `CREATE TYPE name AS (field type, ...)`.
    pub(crate) fn create_type(
        &mut self,
        name: &ObjectName,
        representation: Option<&UserDefinedTypeRepresentation>,
    ) -> Result<QueryResult> {
        let attributes = match representation {
            Some(UserDefinedTypeRepresentation::Composite { attributes }) => attributes,
            Some(UserDefinedTypeRepresentation::Enum { .. }) => {
                return Err(Error::not_supported("enum types (CREATE TYPE ... AS ENUM)"));
            }
            Some(UserDefinedTypeRepresentation::Range { .. }) => {
                return Err(Error::not_supported(
                    "range types (CREATE TYPE ... AS RANGE)",
                ));
            }
            _ => {
                return Err(Error::not_supported(
                    "base and shell types (CREATE TYPE name)",
                ));
            }
        };
        self.change_catalog(|catalog, transaction| {
            let mut fields: Vec<TypeFieldDef> = Vec::with_capacity(attributes.len());
            for attribute in attributes {
                let field_name = normalize(&attribute.name);
                if fields.iter().any(|field| field.name == field_name) {
                    return Err(Error::user(
                        "42701",
                        format!("column \"{field_name}\" specified more than once"),
                    ));
                }
                resolve(catalog, &attribute.data_type)?;
                fields.push(TypeFieldDef {
                    name: field_name,
                    type_name: attribute.data_type.to_string(),
                });
            }
            put_new_type(catalog, transaction, name, TypeKind::Composite { fields })
        })?;
        done("CREATE TYPE")
    }

    /// `CREATE DOMAIN name AS type [DEFAULT expr] [NOT NULL] [CONSTRAINT c] CHECK (expr) ...`.
    pub(crate) fn create_domain(&mut self, create: &ast::CreateDomain) -> Result<QueryResult> {
        self.change_catalog(|catalog, transaction| {
            let type_name = qualify(catalog, &create.name)?.name;
            resolve(catalog, &create.data_type)?;
            let mut not_null = false;
            let mut checks: Vec<CheckDef> = Vec::new();
            for constraint in &create.constraints {
                match constraint {
                    ast::TableConstraint::Check(check) => {
                        let given = check.name.as_ref().map(normalize);
                        if given.as_deref() == Some(NOT_NULL_MARKER) {
                            not_null = true;
                            continue;
                        }
                        let name = given.unwrap_or_else(|| {
                            let base = format!("{type_name}_check");
                            let mut name = base.clone();
                            let mut number = 0;
                            while checks.iter().any(|existing| existing.name == name) {
                                number += 1;
                                name = format!("{base}{number}");
                            }
                            name
                        });
                        checks.push(CheckDef {
                            name,
                            expression: check.expr.to_string(),
                        });
                    }
                    other => {
                        return Err(Error::not_supported(format!("domain constraint {other}")));
                    }
                }
            }
            put_new_type(
                catalog,
                transaction,
                &create.name,
                TypeKind::Domain {
                    base: create.data_type.to_string(),
                    not_null,
                    default: create.default.as_ref().map(ToString::to_string),
                    checks,
                },
            )
        })?;
        done("CREATE DOMAIN")
    }

    /// `DROP TYPE` / `DROP DOMAIN [IF EXISTS] name, ... [CASCADE]`.
    pub(crate) fn drop_types(
        &mut self,
        domain: bool,
        names: &[ObjectName],
        if_exists: bool,
        cascade: bool,
    ) -> Result<QueryResult> {
        let shared = self.shared.clone();
        self.change_catalog(|catalog, transaction| {
            for name in names {
                let found = match find_type(catalog, name)? {
                    Some(Object::Type(type_def)) => Some(type_def.clone()),
                    _ => None,
                };
                let Some(type_def) = found else {
                    let shown = crate::sql::rewrite::display_name(name);
                    if if_exists {
                        shared.notice(
                            "00000",
                            format!("type \"{shown}\" does not exist, skipping"),
                        );
                        continue;
                    }
                    return Err(Error::user(
                        "42704",
                        format!("type \"{shown}\" does not exist"),
                    ));
                };
                let is_domain = matches!(type_def.kind, TypeKind::Domain { .. });
                if domain && !is_domain {
                    return Err(Error::user(
                        "42809",
                        format!("\"{}\" is not a domain", type_def.name),
                    ));
                }
                drop_type(transaction, catalog, type_def.id, cascade)?;
            }
            Ok(())
        })?;
        done(if domain { "DROP DOMAIN" } else { "DROP TYPE" })
    }
}

/// Stores a new type named `name` (42710 if a type or relation has the name).
fn put_new_type(
    catalog: &mut Catalog,
    transaction: &mut qubedb_kv::Transaction,
    name: &ObjectName,
    kind: TypeKind,
) -> Result<()> {
    let qualified = qualify(catalog, name)?;
    if catalog.named(qualified.schema, &qualified.name).is_some() {
        return Err(Error::user(
            "42710",
            format!("type \"{}\" already exists", qualified.name),
        ));
    }
    let id = Catalog::allocate_id(transaction)?;
    catalog.put(
        transaction,
        Object::Type(TypeDef {
            id,
            schema: qualified.schema,
            name: qualified.name,
            kind,
        }),
    )?;
    Ok(())
}

/// The set-returning and record functions this module rewrites: (name, populates from a base record,
/// returns a set).
const RECORD_FUNCTIONS: &[(&str, bool, bool)] = &[
    ("jsonb_populate_record", true, false),
    ("jsonb_populate_recordset", true, true),
    ("json_populate_record", true, false),
    ("json_populate_recordset", true, true),
    ("jsonb_to_record", false, false),
    ("jsonb_to_recordset", false, true),
    ("json_to_record", false, false),
    ("json_to_recordset", false, true),
];

fn record_function(name: &ObjectName) -> Option<(&'static str, bool, bool)> {
    let text = name.to_string().to_lowercase();
    let text = text.strip_prefix("pg_catalog.").unwrap_or(&text);
    RECORD_FUNCTIONS
        .iter()
        .find(|(function, _, _)| *function == text)
        .copied()
}

/// A string literal of `text`.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The SQL text of a plain shape's type (for CAST).
fn cast_type_text(shape: &Shape) -> String {
    match shape {
        Shape::Array(element) => format!("{}[]", cast_type_text(element)),
        Shape::Base(DataType::Jsonb) => "jsonb".into(),
        other => other.base().sql_name(),
    }
}

/// SQL for `value` cast to `shape`.
fn cast_sql(value: &str, shape: &Shape) -> Result<String> {
    Ok(match shape {
        _ if shape.is_plain() => format!("CAST(({value}) AS {})", cast_type_text(shape)),
        Shape::Domain(domain) => checked_sql(&cast_sql(value, &domain.base)?, shape)?,
        other => format!("qubedb_record(({value}), {})", literal(&other.to_spec())),
    })
}

/// SQL for `value` (already of the shape's base) with the constraints of the domains in `shape`.
fn checked_sql(value: &str, shape: &Shape) -> Result<String> {
    let Shape::Domain(domain) = shape else {
        return Ok(value.to_string());
    };
    let inner = checked_sql(value, &domain.base)?;
    let mut arguments = vec![
        format!("({inner})"),
        literal(&domain.name),
        domain.not_null.to_string(),
    ];
    for check in &domain.checks {
        let mut expression = parse_expression(&check.expression)?;
        let replacement = parse_expression(&format!("({inner})"))?;
        let _ = visit_expressions_mut(&mut expression, |expr| {
            if let Expr::Identifier(ident) = expr
                && ident.quote_style.is_none()
                && ident.value.eq_ignore_ascii_case("value")
            {
                *expr = replacement.clone();
            }
            ControlFlow::<()>::Continue(())
        });
        arguments.push(literal(&check.name));
        arguments.push(format!("({expression})"));
    }
    Ok(format!("qubedb_domain_check({})", arguments.join(", ")))
}

/// True if `shape` holds a domain anywhere (so values read out of it need checks).
fn has_domain(shape: &Shape) -> bool {
    match shape {
        Shape::Base(_) => false,
        Shape::Array(element) => has_domain(element),
        Shape::Record { fields, .. } => fields.iter().any(|(_, field)| has_domain(field)),
        Shape::Domain(_) => true,
    }
}

/// The expression an argument holds (named arguments are not used by these functions).
fn argument_expr(argument: &FunctionArg) -> Option<&Expr> {
    match argument {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Some(expr),
        _ => None,
    }
}

/// The shape of a populate function's base argument, when its type is spelled in the statement:
/// `NULL::rec`, `ROW(...)::rec`. `None` when only DataFusion can tell (`ROW(1, 2)`), an error for
/// `NULL::record` in a scalar call (PostgreSQL's).
fn base_shape(catalog: &Catalog, base: &Expr, function: &str) -> Result<Option<Shape>> {
    if let Expr::Cast { data_type, .. } = base {
        if let SqlType::Custom(name, _) = data_type
            && name.to_string().eq_ignore_ascii_case("record")
        {
            return Err(undetermined_row_type(function));
        }
        return Ok(Some(resolve(catalog, data_type)?));
    }
    Ok(None)
}

fn undetermined_row_type(function: &str) -> Error {
    Error::user(
        "42804",
        format!("could not determine row type for result of {function}"),
    )
    .with_hint(
        "Provide a non-null record argument, or call the function in the FROM clause using a column definition list.",
    )
}

/// The record shape a column definition list (`AS x(a int, b text)`) spells.
fn listed_shape(catalog: &Catalog, alias: &TableAlias) -> Result<Option<Shape>> {
    if alias.columns.is_empty()
        || alias
            .columns
            .iter()
            .any(|column| column.data_type.is_none())
    {
        return Ok(None);
    }
    let fields = alias
        .columns
        .iter()
        .map(|column| {
            let data_type = column.data_type.as_ref().expect("checked above");
            Ok((normalize(&column.name), resolve(catalog, data_type)?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Shape::Record {
        name: "record".into(),
        fields,
    }))
}

/// The call of the populate function with its arguments: `(base, json, 'shape')`.
fn populate_call(set: bool, base: &str, json: &str, shape: Option<&Shape>) -> String {
    let spec = shape.map(Shape::to_spec).unwrap_or_default();
    let function = if set {
        "qubedb_jsonb_populate_recordset"
    } else {
        "qubedb_jsonb_populate_record"
    };
    format!("{function}({base}, {json}, {})", literal(&spec))
}

/// `FROM jsonb_populate_record(base, json) [AS] q [(columns)]` as a derived table of the record's fields.
fn record_function_as_subquery(
    catalog: &Catalog,
    factor: &TableFactor,
) -> Result<Option<TableFactor>> {
    let TableFactor::Table {
        name,
        args: Some(arguments),
        alias,
        ..
    } = factor
    else {
        return Ok(None);
    };
    let Some((function, populate, set)) = record_function(name) else {
        return Ok(None);
    };
    let expressions: Vec<&Expr> = arguments.args.iter().filter_map(argument_expr).collect();
    let wanted = if populate { 2 } else { 1 };
    if expressions.len() != wanted || arguments.args.len() != wanted {
        return Err(Error::user(
            "42883",
            format!("function {function} takes {wanted} arguments"),
        ));
    }
    let listed = match alias {
        Some(alias) => listed_shape(catalog, alias)?,
        None => None,
    };
    let (base_sql, json_sql, shape) = if populate {
        let declared = match base_shape(catalog, expressions[0], function) {
            Err(error) if error.code == "42804" => None,
            other => other?,
        };
        let shape = match (declared, listed) {
            (Some(declared), Some(listed)) => {
                check_listed(&declared, &listed)?;
                declared
            }
            (Some(declared), None) => declared,
            (None, Some(listed)) => listed,
            (None, None) => return Err(undetermined_row_type(function)),
        };
        let base = match expressions[0] {
            Expr::Cast {
                data_type: SqlType::Custom(type_name, _),
                ..
            } if type_name.to_string().eq_ignore_ascii_case("record") => "NULL".to_string(),
            other => other.to_string(),
        };
        (base, expressions[1].to_string(), shape)
    } else {
        let Some(listed) = listed else {
            return Err(Error::user(
                "42601",
                "a column definition list is required for functions returning \"record\"",
            ));
        };
        ("NULL".to_string(), expressions[0].to_string(), listed)
    };
    let Shape::Record { fields, .. } = shape.base() else {
        return Err(Error::user(
            "42804",
            format!(
                "first argument of {function} must be a row type, not {}",
                shape.sql_name()
            ),
        ));
    };
    let call = populate_call(set, &base_sql, &json_sql, Some(&shape));
    let source = if set {
        format!("(SELECT unnest({call}) AS record) AS records")
    } else {
        format!("(SELECT {call} AS record) AS records")
    };
    // The domains' checks run in a filter, which no projection prunes: PostgreSQL checks every field
    // of the record, read or not.
    let mut checks = Vec::new();
    if matches!(shape, Shape::Domain(_)) {
        checks.push(checked_sql("record", &shape)?);
    }
    for (field, field_shape) in fields {
        if has_domain(field_shape) {
            checks.push(checked_sql(
                &format!("get_field(record, {})", literal(field)),
                field_shape,
            )?);
        }
    }
    let filter = if checks.is_empty() {
        String::new()
    } else {
        format!(" WHERE qubedb_domain_ok({})", checks.join(", "))
    };
    let columns: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(position, (field, _))| {
            let shown = alias
                .as_ref()
                .and_then(|alias| alias.columns.get(position))
                .map(|column| normalize(&column.name))
                .unwrap_or_else(|| field.clone());
            format!(
                "get_field(record, {}) AS \"{}\"",
                literal(field),
                shown.replace('"', "\"\"")
            )
        })
        .collect();
    let sql = format!("SELECT {} FROM {source}{filter}", columns.join(", "));
    crate::sql::rewrite::derived_table(&sql, alias.as_ref(), function).map(Some)
}

/// A base record and a column definition list must agree (PostgreSQL's check).
fn check_listed(declared: &Shape, listed: &Shape) -> Result<()> {
    let (Shape::Record { fields: have, .. }, Shape::Record { fields: want, .. }) =
        (declared.base(), listed.base())
    else {
        return Ok(());
    };
    if have.len() != want.len() {
        return Err(Error::user(
            "42804",
            "function return row and query-specified return row do not match",
        )
        .with_detail(format!(
            "Returned row contains {} attribute{}, but query expects {}.",
            have.len(),
            if have.len() == 1 { "" } else { "s" },
            want.len()
        )));
    }
    for (position, ((_, have), (_, want))) in have.iter().zip(want).enumerate() {
        if have.base() != want.base() {
            return Err(Error::user(
                "42804",
                "function return row and query-specified return row do not match",
            )
            .with_detail(format!(
                "Returned type {} at ordinal position {}, but query expects {}.",
                have.sql_name(),
                position + 1,
                want.sql_name()
            )));
        }
    }
    Ok(())
}

/// A scalar call `jsonb_populate_record(base, json)` (in a SELECT list or an expression).
fn record_function_call(catalog: &Catalog, call: &ast::Function) -> Result<Option<String>> {
    let Some((function, populate, set)) = record_function(&call.name) else {
        return Ok(None);
    };
    let FunctionArguments::List(list) = &call.args else {
        return Ok(None);
    };
    let expressions: Vec<&Expr> = list.args.iter().filter_map(argument_expr).collect();
    if !populate {
        return Err(Error::user(
            "0A000",
            format!(
                "function returning record called in context that cannot accept type record: {function}"
            ),
        ));
    }
    if expressions.len() != 2 || list.args.len() != 2 {
        return Err(Error::user(
            "42883",
            format!("function {function} takes 2 arguments"),
        ));
    }
    let shape = base_shape(catalog, expressions[0], function)?;
    let call_sql = populate_call(
        set,
        &expressions[0].to_string(),
        &expressions[1].to_string(),
        shape.as_ref(),
    );
    let value = match &shape {
        Some(shape) if has_domain(shape) => checked_sql(&call_sql, shape)?,
        _ => call_sql,
    };
    // A set-returning call in a SELECT list: its rows, as for the other set-returning functions.
    if set {
        if shape.as_ref().is_some_and(has_domain) {
            return Err(Error::not_supported(format!(
                "{function} of a domain type in a SELECT list (call it in FROM)"
            )));
        }
        return Ok(Some(format!("unnest({value})")));
    }
    Ok(Some(value))
}

/// Rewrites the uses of user-defined types and record functions in `query` (see the module docs).
pub fn rewrite(query: &mut Query, catalog: &Catalog) -> Result<()> {
    let mut rewriter = Rewriter {
        catalog,
        failure: None,
    };
    let _ = query.visit(&mut rewriter);
    if let Some(error) = rewriter.failure {
        return Err(error);
    }
    Ok(())
}

struct Rewriter<'a> {
    catalog: &'a Catalog,
    failure: Option<Error>,
}

impl Rewriter<'_> {
    fn expression(&self, expr: &Expr) -> Result<Option<Expr>> {
        match expr {
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } => {
                if matches!(data_type, SqlType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("record"))
                {
                    return Ok(None);
                }
                if !names_custom_type(data_type) && !is_nested_array(data_type) {
                    return Ok(None);
                }
                let shape = match resolve(self.catalog, data_type) {
                    Ok(shape) => shape,
                    // Types this module does not know (regclass, jsonpath, ...) are rewritten later.
                    Err(error) if error.code == "42704" || error.code == "0A000" => {
                        return Ok(None);
                    }
                    Err(error) => return Err(error),
                };
                // Plain shapes are DataFusion's casts, except arrays of arrays, whose text form
                // (`'{{1,2},{3,4}}'`) only `qubedb_record` reads.
                let nested = matches!(&shape, Shape::Array(element) if matches!(element.as_ref(), Shape::Array(_)));
                if nested {
                    let sql = format!("qubedb_record(({inner}), {})", literal(&shape.to_spec()));
                    return Ok(Some(parse_expression(&sql)?));
                }
                if shape.is_plain() {
                    return Ok(None);
                }
                let sql = cast_sql(&inner.to_string(), &shape)?;
                Ok(Some(parse_expression(&sql)?))
            }
            _ => Ok(None),
        }
    }
}

/// True for an array of arrays (`int[][]`).
fn is_nested_array(data_type: &SqlType) -> bool {
    matches!(
        data_type,
        SqlType::Array(
            ArrayElemTypeDef::SquareBracket(element, _)
                | ArrayElemTypeDef::AngleBracket(element)
                | ArrayElemTypeDef::Parenthesis(element),
        ) if matches!(element.as_ref(), SqlType::Array(_))
    )
}

/// True if a SQL type names a type by name (a possible user-defined type), also as an array's element.
fn names_custom_type(data_type: &SqlType) -> bool {
    match data_type {
        SqlType::Custom(..) => true,
        SqlType::Array(
            ArrayElemTypeDef::SquareBracket(element, _)
            | ArrayElemTypeDef::AngleBracket(element)
            | ArrayElemTypeDef::Parenthesis(element),
        ) => names_custom_type(element),
        _ => false,
    }
}

/// Puts a rewrite's replacement in place, or keeps its error and stops the walk.
fn replace<T>(
    target: &mut T,
    outcome: Result<Option<T>>,
    failure: &mut Option<Error>,
) -> ControlFlow<()> {
    match outcome {
        Ok(Some(replacement)) => *target = replacement,
        Ok(None) => {}
        Err(error) => {
            *failure = Some(error);
            return ControlFlow::Break(());
        }
    }
    ControlFlow::Continue(())
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let outcome = record_function_as_subquery(self.catalog, factor);
        replace(factor, outcome, &mut self.failure)
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // Record functions before their arguments: the base's cast says the result's type.
        let Expr::Function(call) = expr else {
            return ControlFlow::Continue(());
        };
        let outcome = record_function_call(self.catalog, call)
            .and_then(|sql| sql.map(|sql| parse_expression(&sql)).transpose());
        replace(expr, outcome, &mut self.failure)
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let outcome = self.expression(expr);
        replace(expr, outcome, &mut self.failure)
    }
}
