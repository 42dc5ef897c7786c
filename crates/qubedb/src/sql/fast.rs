//! The OLTP fast path: point statements run straight against the store, without DataFusion.
//!
//! DataFusion costs tens to hundreds of microseconds to plan even a one-row lookup
//! (`shared/bench/DATAFUSION-KV.md`), while the lookup itself is about a microsecond. The statements an
//! OLTP application sends most often are recognised here from their syntax tree and run directly:
//!
//! - `SELECT columns FROM t WHERE pk = x [AND pk2 = y]`: one `get` of the row key; with the columns of
//!   a secondary index (or the key parts of an expression index, `WHERE lower(email) = $1`) fixed
//!   instead, a scan of that index's entries for those values and a `get` per row;
//! - `SELECT count(*)` with the same WHERE clauses: the row key or the index entries counted;
//! - `UPDATE t SET c = x, d = d + y WHERE pk = z`: read, change, write one row;
//! - `DELETE FROM t WHERE pk = x`;
//! - `INSERT INTO t [(columns)] VALUES (...), ...`.
//!
//! where every `x` is a `$n` parameter, a literal or `now()` / `CURRENT_TIMESTAMP`. [`plan`] turns a
//! statement into a [`FastPlan`] against one catalog (a prepared statement keeps it while the catalog is
//! the same `Arc`); [`execute`] runs it with the parameters.
//!
//! The rule that keeps results identical to the general path: the fast path only does what it is sure
//! the general path would do the same way, and otherwise hands the statement back (`Ok(None)`) *before
//! writing anything*. So anything unusual — a value that needs a conversion with its own error (an
//! integer out of a column's range, text too long for `varchar(n)`), a NULL in a NOT NULL column, a
//! column with a default, CHECK constraints, an indexed or referenced column changed by an UPDATE, a
//! table other tables reference for a DELETE — goes the general way, which raises PostgreSQL's error or
//! does the work. Unique and foreign-key checks of an INSERT go through the same [`TableWriter`] as the
//! general path. `SET qubedb.fast_path = off` turns the fast path off (tests compare both ways).

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast::{
    self, AssignmentTarget, BinaryOperator, Expr, FromTable, FunctionArguments, GroupByExpr,
    SelectItem, SetExpr, Statement, TableFactor, TableObject, TableWithJoins, UnaryOperator,
    Value as SqlValue,
};
use qubedb_kv::Transaction;
use qubedb_model::catalog::{Catalog, Identity, IndexDef, Object, TableDef};
use qubedb_model::keycode::encode_value;
use qubedb_model::keys::Key;
use qubedb_model::row::{RawValue, RowReader, encode_row};
use qubedb_model::vector::{Metric, VectorKind};
use qubedb_model::{DataType, Value};

use crate::database::DatabaseInner;
use crate::error::{Error, Result};
use crate::params::Param;
use crate::sql::convert::{ColumnBuilder, field};
use crate::sql::provider::VectorSettings;
use crate::sql::rewrite::{normalize, resolve};
use crate::sql::write::{TableWriter, decode_row};

/// An input of a fast statement.
#[derive(Debug, Clone)]
pub(crate) enum Operand {
    /// `$n`, zero-based.
    Parameter(usize),
    /// A literal written in the SQL.
    Constant(Param),
    /// `now()`, `CURRENT_TIMESTAMP`, `LOCALTIMESTAMP`: the time the statement runs.
    Now,
}

/// The new value of an updated column.
#[derive(Debug, Clone)]
pub(crate) enum Assigned {
    Value(Operand),
    /// `c = c + x` (or `c - x` with `negate`).
    Add {
        operand: Operand,
        negate: bool,
    },
}

/// A statement the fast path runs, resolved against one catalog.
#[derive(Debug)]
pub(crate) enum FastPlan {
    Select {
        table: TableDef,
        /// The unique-or-not index whose columns (or key expressions) the WHERE clause fixes; `None`:
        /// the primary key.
        index: Option<IndexDef>,
        /// One operand per key column or key expression (primary key or index), in key order.
        key: Vec<Operand>,
        /// The slot of each output column (none for a count).
        slots: Vec<usize>,
        /// `SELECT count(*)`: the number of rows the key finds, counted from the index entries.
        count: bool,
        schema: SchemaRef,
    },
    Insert {
        table: TableDef,
        /// The slot each VALUES position fills.
        targets: Vec<usize>,
        rows: Vec<Vec<Operand>>,
    },
    Update {
        table: TableDef,
        key: Vec<Operand>,
        assignments: Vec<(usize, Assigned)>,
    },
    Delete {
        table: TableDef,
        key: Vec<Operand>,
    },
    /// `SELECT columns FROM t ORDER BY v <op> x LIMIT k` through an HNSW index of `v`.
    Nearest {
        table: TableDef,
        index: IndexDef,
        /// The vector column's slot, its dimensions and kind (`vector` or `halfvec`).
        column: usize,
        dimensions: u32,
        kind: VectorKind,
        metric: Metric,
        query: Operand,
        limit: usize,
        slots: Vec<usize>,
        schema: SchemaRef,
    },
}

/// What a fast statement produced.
pub(crate) enum FastOutcome {
    Rows(SchemaRef, Vec<RecordBatch>),
    /// A command tag and the rows it affected.
    Command(String, u64),
}

/// True for the statement kinds the fast path may take (checked before anything else is done).
pub(crate) fn is_candidate(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Query(_) | Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
    )
}

/// The fast plan of `statement` against `catalog`, or `None` when it takes the general path.
/// (`temp_schema`: the session's temporary schema, searched first for unqualified names.)
pub(crate) fn plan(
    statement: &Statement,
    catalog: &Catalog,
    temp_schema: &str,
) -> Option<FastPlan> {
    let scope = Scope {
        catalog,
        temp_schema,
    };
    match statement {
        Statement::Query(query) if query.order_by.is_some() => plan_nearest(query, scope),
        Statement::Query(query) => plan_select(query, scope),
        Statement::Insert(insert) => plan_insert(insert, scope),
        Statement::Update(update) => plan_update(update, scope),
        Statement::Delete(delete) => plan_delete(delete, scope),
        _ => None,
    }
}

/// Where a statement's names are resolved.
#[derive(Clone, Copy)]
struct Scope<'a> {
    catalog: &'a Catalog,
    temp_schema: &'a str,
}

fn table_named<'a>(scope: Scope<'a>, name: &ast::ObjectName) -> Option<&'a TableDef> {
    let qualified = resolve(scope.catalog, scope.temp_schema, name).ok()?;
    match scope.catalog.relation(qualified.schema, &qualified.name)? {
        Object::Table(table) => Some(table),
        _ => None,
    }
}

/// Key columns the fast path can look up by their keycode: types whose SQL equality is byte equality of
/// the stored value.
fn simple_key(table: &TableDef, key_slots: &[usize]) -> bool {
    key_slots.iter().all(|&slot| {
        matches!(
            table.columns[slot].data_type,
            DataType::SmallInt
                | DataType::Integer
                | DataType::BigInt
                | DataType::Text
                | DataType::Varchar(_)
                | DataType::Boolean
        )
    })
}

/// The one table of a FROM list (with its alias), if that is all there is.
fn single_table<'a>(
    from: &'a TableWithJoins,
    scope: Scope<'a>,
) -> Option<(&'a TableDef, Option<String>)> {
    if !from.joins.is_empty() {
        return None;
    }
    let TableFactor::Table {
        name,
        alias,
        args: None,
        with_hints,
        version: None,
        with_ordinality: false,
        partitions,
        json_path: None,
        sample: None,
        index_hints,
    } = &from.relation
    else {
        return None;
    };
    if !with_hints.is_empty() || !partitions.is_empty() || !index_hints.is_empty() {
        return None;
    }
    let alias = match alias {
        None => None,
        Some(alias) if alias.columns.is_empty() => Some(normalize(&alias.name)),
        Some(_) => return None,
    };
    Some((table_named(scope, name)?, alias))
}

/// The live column a (possibly qualified) column reference names.
fn column_of(expr: &Expr, table: &TableDef, alias: Option<&str>) -> Option<usize> {
    match expr {
        Expr::Identifier(ident) => table.column_slot(&normalize(ident)),
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
            let qualifier = normalize(&parts[0]);
            let visible = alias.unwrap_or(&table.name);
            (qualifier == visible).then_some(())?;
            table.column_slot(&normalize(&parts[1]))
        }
        Expr::Nested(inner) => column_of(inner, table, alias),
        _ => None,
    }
}

fn operand(expr: &Expr) -> Option<Operand> {
    match expr {
        Expr::Nested(inner) => operand(inner),
        Expr::Value(value) => match &value.value {
            SqlValue::Placeholder(name) => {
                let number: usize = name.strip_prefix('$')?.parse().ok()?;
                Some(Operand::Parameter(number.checked_sub(1)?))
            }
            SqlValue::Number(text, false) => {
                Some(Operand::Constant(Param::Integer(text.parse().ok()?)))
            }
            SqlValue::SingleQuotedString(text) => {
                Some(Operand::Constant(Param::Text(text.clone())))
            }
            SqlValue::Boolean(value) => Some(Operand::Constant(Param::Boolean(*value))),
            SqlValue::Null => Some(Operand::Constant(Param::Null)),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(value) => match &value.value {
                SqlValue::Number(text, false) => Some(Operand::Constant(Param::Integer(
                    format!("-{text}").parse().ok()?,
                ))),
                _ => None,
            },
            _ => None,
        },
        Expr::Function(function) => {
            let name = function.name.to_string().to_lowercase();
            let no_arguments = match &function.args {
                FunctionArguments::None => true,
                FunctionArguments::List(list) => list.args.is_empty() && list.clauses.is_empty(),
                FunctionArguments::Subquery(_) => false,
            };
            (no_arguments
                && plain_call(function)
                && matches!(
                    name.as_str(),
                    "now" | "current_timestamp" | "localtimestamp" | "pg_catalog.now"
                ))
            .then_some(Operand::Now)
        }
        _ => None,
    }
}

/// What one side of a WHERE clause's equality is: a column, or an expression over the table's columns
/// (for an expression index's key part), held in [`comparable`] form.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Column(usize),
    Expression(Box<Expr>),
}

/// `expr` as an expression index's key part is compared with a query's: parentheses dropped,
/// identifiers folded as PostgreSQL folds them, the table's name or alias dropped from columns.
fn comparable(expr: &Expr, table: &TableDef, alias: Option<&str>) -> Option<Expr> {
    let mut expr = expr.clone();
    let visible = alias.unwrap_or(&table.name).to_string();
    let mut foreign = false;
    let _ = ast::visit_expressions_mut(&mut expr, |expr| {
        while let Expr::Nested(inner) = expr {
            *expr = std::mem::replace(inner.as_mut(), Expr::value(SqlValue::Null));
        }
        match expr {
            Expr::Identifier(ident) => *ident = ast::Ident::new(normalize(ident)),
            Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                if normalize(&parts[0]) == visible {
                    *expr = Expr::Identifier(ast::Ident::new(normalize(&parts[1])));
                } else {
                    foreign = true;
                }
            }
            Expr::CompoundIdentifier(_) | Expr::Subquery(_) | Expr::Exists { .. } => foreign = true,
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    (!foreign).then_some(expr)
}

/// The equalities `column = x AND expr = y ...` of a WHERE clause, one per column or expression, if
/// that is all it holds.
fn equalities(
    selection: Option<&Expr>,
    table: &TableDef,
    alias: Option<&str>,
) -> Option<Vec<(Target, Operand)>> {
    let mut conjuncts = Vec::new();
    let mut pending = vec![selection?];
    while let Some(expr) = pending.pop() {
        match expr {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                pending.push(right);
                pending.push(left);
            }
            Expr::Nested(inner) => pending.push(inner),
            other => conjuncts.push(other),
        }
    }
    let mut found: Vec<(Target, Operand)> = Vec::new();
    for conjunct in conjuncts {
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = conjunct
        else {
            return None;
        };
        let target = |expr: &Expr| match column_of(expr, table, alias) {
            Some(slot) => Some(Target::Column(slot)),
            None => comparable(expr, table, alias).map(|expr| Target::Expression(Box::new(expr))),
        };
        let (target, value) = match (operand(left), operand(right)) {
            (None, Some(value)) => (target(left)?, value),
            (Some(value), None) => (target(right)?, value),
            _ => return None,
        };
        if found.iter().any(|(seen, _)| *seen == target) {
            return None;
        }
        found.push((target, value));
    }
    Some(found)
}

/// The operands for the columns `key_slots`, in that order, when the equalities name exactly those
/// columns and each is of a type the fast path looks up by its keycode.
fn key_for(
    equalities: &[(Target, Operand)],
    key_slots: &[usize],
    table: &TableDef,
) -> Option<Vec<Operand>> {
    if key_slots.is_empty() || key_slots.len() != equalities.len() || !simple_key(table, key_slots)
    {
        return None;
    }
    key_slots
        .iter()
        .map(|&slot| {
            equalities
                .iter()
                .find(|(target, _)| *target == Target::Column(slot))
                .map(|(_, operand)| operand.clone())
        })
        .collect()
}

/// The operands for the key parts of expression index `index` (not partial), in key order, when the
/// equalities fix exactly those parts. (Whether each part's type is looked up by keycode is checked
/// when the plan runs: the parts' types come from the compiled index.)
fn expression_key_for(
    equalities: &[(Target, Operand)],
    index: &IndexDef,
    table: &TableDef,
) -> Option<Vec<Operand>> {
    // Parsing the key parts is skipped unless the WHERE clause compares an expression.
    if index.expressions.is_empty()
        || index.predicate.is_some()
        || index.expressions.len() != equalities.len()
        || !equalities
            .iter()
            .any(|(target, _)| matches!(target, Target::Expression(_)))
    {
        return None;
    }
    index
        .expressions
        .iter()
        .map(|text| {
            let part = crate::sql::rewrite::parse_expression(text).ok()?;
            let part = match column_of(&part, table, None) {
                Some(slot) => Target::Column(slot),
                None => Target::Expression(Box::new(comparable(&part, table, None)?)),
            };
            equalities
                .iter()
                .find(|(target, _)| *target == part)
                .map(|(_, operand)| operand.clone())
        })
        .collect()
}

/// A function call without `FILTER`, `OVER`, `WITHIN GROUP` or a NULL treatment.
fn plain_call(function: &ast::Function) -> bool {
    function.filter.is_none()
        && function.over.is_none()
        && function.within_group.is_empty()
        && function.null_treatment.is_none()
}

/// True for `count(*)`.
fn is_count_star(expr: &Expr) -> bool {
    let Expr::Function(function) = expr else {
        return false;
    };
    let FunctionArguments::List(list) = &function.args else {
        return false;
    };
    function.name.to_string().eq_ignore_ascii_case("count")
        && plain_call(function)
        && list.duplicate_treatment.is_none()
        && list.clauses.is_empty()
        && matches!(
            list.args.as_slice(),
            [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)]
        )
}

/// `pk = x AND pk2 = y`: one operand per primary-key column, each named exactly once, nothing else.
fn key_operands(
    selection: Option<&Expr>,
    table: &TableDef,
    alias: Option<&str>,
) -> Option<Vec<Operand>> {
    key_for(
        &equalities(selection, table, alias)?,
        &table.primary_key,
        table,
    )
}

/// A SELECT of one table with nothing but columns, a WHERE clause and (in the query) ORDER BY/LIMIT.
fn plain_select(select: &ast::Select) -> bool {
    select.optimizer_hints.is_empty()
        && select.distinct.is_none()
        && select.select_modifiers.is_none()
        && select.top.is_none()
        && select.exclude.is_none()
        && select.into.is_none()
        && select.from.len() == 1
        && select.lateral_views.is_empty()
        && select.prewhere.is_none()
        && select.connect_by.is_empty()
        && matches!(&select.group_by, GroupByExpr::Expressions(list, modifiers) if list.is_empty() && modifiers.is_empty())
        && select.cluster_by.is_empty()
        && select.distribute_by.is_empty()
        && select.sort_by.is_empty()
        && select.having.is_none()
        && select.named_window.is_empty()
        && select.qualify.is_none()
        && select.value_table_mode.is_none()
}

/// True when no output name repeats.
fn distinct(names: &[String]) -> bool {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    sorted.dedup();
    sorted.len() == names.len()
}

/// The slots and output names of a SELECT list of plain columns (`*` included).
fn projection(
    select: &ast::Select,
    table: &TableDef,
    alias: Option<&str>,
) -> Option<(Vec<usize>, Vec<String>)> {
    let mut slots = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(expr) => {
                let slot = column_of(expr, table, alias)?;
                slots.push(slot);
                names.push(table.columns[slot].name.clone());
            }
            SelectItem::ExprWithAlias { expr, alias: name } => {
                slots.push(column_of(expr, table, alias)?);
                names.push(normalize(name));
            }
            SelectItem::Wildcard(options) => {
                let ast::WildcardAdditionalOptions {
                    opt_ilike: None,
                    opt_exclude: None,
                    opt_except: None,
                    opt_replace: None,
                    opt_rename: None,
                    opt_alias: None,
                    ..
                } = options
                else {
                    return None;
                };
                for (slot, column) in table.live_columns() {
                    slots.push(slot);
                    names.push(column.name.clone());
                }
            }
            _ => return None,
        }
    }
    Some((slots, names))
}

fn plan_select(query: &ast::Query, scope: Scope) -> Option<FastPlan> {
    let catalog = scope.catalog;
    let ast::Query {
        with: None,
        body,
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks,
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators,
    } = query
    else {
        return None;
    };
    if !locks.is_empty() || !pipe_operators.is_empty() {
        return None;
    }
    let SetExpr::Select(select) = body.as_ref() else {
        return None;
    };
    if !plain_select(select) {
        return None;
    }
    let (table, alias) = single_table(&select.from[0], scope)?;
    let alias = alias.as_deref();
    let mut slots = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let count = match select.projection.as_slice() {
        [SelectItem::UnnamedExpr(expr)] if is_count_star(expr) => Some("count".to_string()),
        [SelectItem::ExprWithAlias { expr, alias }] if is_count_star(expr) => {
            Some(normalize(alias))
        }
        _ => None,
    };
    if count.is_none() {
        (slots, names) = projection(select, table, alias)?;
    }
    // PostgreSQL allows repeated output names; the general path handles them.
    if !distinct(&names) || (slots.is_empty() && count.is_none()) {
        return None;
    }
    let equalities = equalities(select.selection.as_ref(), table, alias)?;
    let (index, key) = match key_for(&equalities, &table.primary_key, table) {
        Some(key) => (None, key),
        None => catalog
            .indexes_of(table.id)
            .filter(|index| index.method.is_btree())
            .find_map(|index| {
                let key = if index.is_plain() {
                    key_for(&equalities, &index.columns, table)?
                } else {
                    expression_key_for(&equalities, index, table)?
                };
                Some((Some(index.clone()), key))
            })?,
    };
    let schema = Arc::new(Schema::new(match &count {
        Some(name) => vec![field(name, DataType::BigInt, true)],
        None => slots
            .iter()
            .zip(&names)
            .map(|(&slot, name)| field(name, table.columns[slot].data_type, true))
            .collect::<Vec<_>>(),
    }));
    Some(FastPlan::Select {
        table: table.clone(),
        index,
        key,
        slots,
        count: count.is_some(),
        schema,
    })
}

/// `SELECT columns FROM t ORDER BY v <op> x LIMIT k` (`x` a parameter or literal, `k` a number) where
/// `v` has an HNSW index for the operator: the search the general path's vector scan makes
/// (`sql/vector_scan.rs`), without planning it.
fn plan_nearest(query: &ast::Query, scope: Scope) -> Option<FastPlan> {
    let ast::Query {
        with: None,
        body,
        order_by: Some(order_by),
        limit_clause:
            Some(ast::LimitClause::LimitOffset {
                limit: Some(limit),
                offset: None,
                limit_by,
            }),
        fetch: None,
        locks,
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators,
    } = query
    else {
        return None;
    };
    if !locks.is_empty()
        || !pipe_operators.is_empty()
        || !limit_by.is_empty()
        || order_by.interpolate.is_some()
    {
        return None;
    }
    let ast::OrderByKind::Expressions(order) = &order_by.kind else {
        return None;
    };
    let [
        ast::OrderByExpr {
            expr: Expr::BinaryOp { left, op, right },
            options:
                ast::OrderByOptions {
                    asc: None | Some(true),
                    nulls_first: None | Some(false),
                },
            with_fill: None,
        },
    ] = order.as_slice()
    else {
        return None;
    };
    let metric = crate::sql::vector_planner::operator_metric(op)?;
    let Expr::Value(ast::ValueWithSpan {
        value: SqlValue::Number(limit, false),
        ..
    }) = limit
    else {
        return None;
    };
    let limit: usize = limit.parse().ok().filter(|&limit| limit > 0)?;
    let SetExpr::Select(select) = body.as_ref() else {
        return None;
    };
    if !plain_select(select) || select.selection.is_some() {
        return None;
    }
    let (table, alias) = single_table(&select.from[0], scope)?;
    let alias = alias.as_deref();
    let (slots, names) = projection(select, table, alias)?;
    if !distinct(&names) || slots.is_empty() {
        return None;
    }
    let (column, query_operand) = match column_of(left, table, alias) {
        Some(column) => (column, operand(right)?),
        None => (column_of(right, table, alias)?, operand(left)?),
    };
    if matches!(query_operand, Operand::Now) {
        return None;
    }
    let (dimensions, kind) = match table.columns[column].data_type {
        DataType::Vector(Some(dimensions)) => (dimensions, VectorKind::Single),
        DataType::HalfVector(Some(dimensions)) => (dimensions, VectorKind::Half),
        _ => return None,
    };
    let index = scope
        .catalog
        .indexes_of(table.id)
        .find(|index| index.orders_by_distance(column, metric))?;
    let schema = Arc::new(Schema::new(
        slots
            .iter()
            .zip(&names)
            .map(|(&slot, name)| field(name, table.columns[slot].data_type, true))
            .collect::<Vec<_>>(),
    ));
    Some(FastPlan::Nearest {
        table: table.clone(),
        index: index.clone(),
        column,
        dimensions,
        kind,
        metric,
        query: query_operand,
        limit,
        slots,
        schema,
    })
}

/// The query vector of a nearest-neighbour statement over vectors of `kind` (a halfvec query is
/// rounded as its cast rounds it); `None` for anything that is not a valid one (the general path
/// reports the error).
fn query_vector(operand: &Operand, params: &[Param], kind: VectorKind) -> Option<Vec<f32>> {
    let param = match operand {
        Operand::Parameter(number) => params.get(*number)?,
        Operand::Constant(param) => param,
        Operand::Now => return None,
    };
    let elements = match param {
        Param::Vector(elements) => elements.clone(),
        Param::Text(text) => crate::sql::vector::parse_of(kind, text).ok()?,
        Param::Typed { text, type_name } if type_name == kind.type_name() => {
            crate::sql::vector::parse_of(kind, text).ok()?
        }
        _ => return None,
    };
    valid_vector(elements, None, kind)
}

fn plan_insert(insert: &ast::Insert, scope: Scope) -> Option<FastPlan> {
    let plain = insert.optimizer_hints.is_empty()
        && insert.or.is_none()
        && !insert.ignore
        && insert.table_alias.is_none()
        && !insert.overwrite
        && insert.assignments.is_empty()
        && insert.partitioned.is_none()
        && insert.after_columns.is_empty()
        && insert.on.is_none()
        && insert.returning.is_none()
        && insert.output.is_none()
        && !insert.replace_into
        && insert.priority.is_none()
        && insert.insert_alias.is_none()
        && insert.settings.is_none()
        && insert.format_clause.is_none()
        && insert.multi_table_insert_type.is_none()
        && insert.multi_table_into_clauses.is_empty()
        && insert.multi_table_when_clauses.is_empty();
    if !plain {
        return None;
    }
    let TableObject::TableName(name) = &insert.table else {
        return None;
    };
    let table = table_named(scope, name)?;
    if !table.checks.is_empty() {
        return None;
    }
    let source = insert.source.as_deref()?;
    if source.with.is_some()
        || source.order_by.is_some()
        || source.limit_clause.is_some()
        || source.fetch.is_some()
        || !source.locks.is_empty()
    {
        return None;
    }
    let SetExpr::Values(values) = source.body.as_ref() else {
        return None;
    };
    let width = values.rows.first()?.len();
    let targets: Vec<usize> = if insert.columns.is_empty() {
        table
            .live_columns()
            .map(|(slot, _)| slot)
            .take(width)
            .collect()
    } else {
        let mut targets = Vec::new();
        for column in &insert.columns {
            let [part] = column.0.as_slice() else {
                return None;
            };
            let slot = table.column_slot(&normalize(part.as_ident()?))?;
            if targets.contains(&slot) {
                return None;
            }
            targets.push(slot);
        }
        targets
    };
    if targets.len() != width {
        return None;
    }
    // Columns left out take their default: only NULL is taken here.
    for (slot, column) in table.live_columns() {
        let targeted = targets.contains(&slot);
        if (!targeted && (column.default.is_some() || column.identity.is_some() || column.not_null))
            || (targeted && column.identity == Some(Identity::Always))
        {
            return None;
        }
    }
    let mut rows = Vec::with_capacity(values.rows.len());
    for row in &values.rows {
        if row.len() != width {
            return None;
        }
        rows.push(row.iter().map(operand).collect::<Option<Vec<_>>>()?);
    }
    Some(FastPlan::Insert {
        table: table.clone(),
        targets,
        rows,
    })
}

/// True when some foreign key of `catalog` points at `table` (at any of `slots`, or at all if `None`).
fn referenced(catalog: &Catalog, table: &TableDef, slots: Option<&[usize]>) -> bool {
    catalog.objects().any(|object| match object {
        Object::Table(other) => other.foreign_keys.iter().any(|foreign_key| {
            foreign_key.referenced_table == table.id
                && slots.is_none_or(|slots| {
                    foreign_key
                        .referenced_columns
                        .iter()
                        .any(|column| slots.contains(column))
                })
        }),
        _ => false,
    })
}

fn plan_update(update: &ast::Update, scope: Scope) -> Option<FastPlan> {
    let catalog = scope.catalog;
    if !update.optimizer_hints.is_empty()
        || update.from.is_some()
        || update.returning.is_some()
        || update.output.is_some()
        || update.or.is_some()
        || !update.order_by.is_empty()
        || update.limit.is_some()
    {
        return None;
    }
    let (table, alias) = single_table(&update.table, scope)?;
    let alias = alias.as_deref();
    if !table.checks.is_empty() {
        return None;
    }
    let mut assignments: Vec<(usize, Assigned)> = Vec::new();
    for assignment in &update.assignments {
        let AssignmentTarget::ColumnName(name) = &assignment.target else {
            return None;
        };
        let [part] = name.0.as_slice() else {
            return None;
        };
        let slot = table.column_slot(&normalize(part.as_ident()?))?;
        let column = &table.columns[slot];
        let changes_structure = table.primary_key.contains(&slot)
            || catalog.indexes_of(table.id).any(|index| {
                // An expression or partial index may read any column.
                !index.is_plain() || index.columns.contains(&slot) || index.include.contains(&slot)
            })
            || table
                .foreign_keys
                .iter()
                .any(|foreign_key| foreign_key.columns.contains(&slot))
            || column.identity == Some(Identity::Always)
            || assignments.iter().any(|(assigned, _)| *assigned == slot);
        if changes_structure {
            return None;
        }
        let value = match &assignment.value {
            Expr::BinaryOp { left, op, right }
                if matches!(op, BinaryOperator::Plus | BinaryOperator::Minus)
                    && column_of(left, table, alias) == Some(slot) =>
            {
                if !matches!(
                    column.data_type,
                    DataType::SmallInt | DataType::Integer | DataType::BigInt | DataType::Double
                ) {
                    return None;
                }
                Assigned::Add {
                    operand: operand(right)?,
                    negate: *op == BinaryOperator::Minus,
                }
            }
            other => Assigned::Value(operand(other)?),
        };
        assignments.push((slot, value));
    }
    let slots: Vec<usize> = assignments.iter().map(|(slot, _)| *slot).collect();
    if assignments.is_empty() || referenced(catalog, table, Some(&slots)) {
        return None;
    }
    let key = key_operands(update.selection.as_ref(), table, alias)?;
    Some(FastPlan::Update {
        table: table.clone(),
        key,
        assignments,
    })
}

fn plan_delete(delete: &ast::Delete, scope: Scope) -> Option<FastPlan> {
    let catalog = scope.catalog;
    if !delete.optimizer_hints.is_empty()
        || !delete.tables.is_empty()
        || delete.using.is_some()
        || delete.returning.is_some()
        || delete.output.is_some()
        || !delete.order_by.is_empty()
        || delete.limit.is_some()
    {
        return None;
    }
    let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &delete.from;
    let [from] = from.as_slice() else {
        return None;
    };
    let (table, alias) = single_table(from, scope)?;
    if referenced(catalog, table, None) {
        return None;
    }
    let key = key_operands(delete.selection.as_ref(), table, alias.as_deref())?;
    Some(FastPlan::Delete {
        table: table.clone(),
        key,
    })
}

/// The value `param` stands for in a column of `data_type`, when the conversion cannot fail or differ
/// from the general path's; `None` otherwise.
fn column_value(param: &Param, data_type: DataType) -> Option<Value> {
    let integer_in = |value: i64, data_type: DataType| -> Option<Value> {
        let fits = match data_type {
            DataType::SmallInt => i16::try_from(value).is_ok(),
            DataType::Integer => i32::try_from(value).is_ok(),
            DataType::BigInt => true,
            _ => false,
        };
        fits.then_some(Value::Integer(value))
    };
    match (param, data_type) {
        (Param::Null, _) => Some(Value::Null),
        (Param::Integer(value), DataType::SmallInt | DataType::Integer | DataType::BigInt) => {
            integer_in(*value, data_type)
        }
        (Param::Integer(value), DataType::Double) if value.unsigned_abs() < (1 << 53) => {
            Some(Value::Double(*value as f64))
        }
        (Param::Double(value), DataType::Double) => Some(Value::Double(*value)),
        (Param::Boolean(value), DataType::Boolean) => Some(Value::Boolean(*value)),
        (Param::Text(text), DataType::Text | DataType::Varchar(None)) => {
            Some(Value::Text(text.clone()))
        }
        (Param::Text(text), DataType::Varchar(Some(length)))
            if text.chars().count() <= length as usize =>
        {
            Some(Value::Text(text.clone()))
        }
        (Param::Text(text), DataType::SmallInt | DataType::Integer | DataType::BigInt) => {
            integer_in(text.trim().parse().ok()?, data_type)
        }
        (Param::Bytes(bytes), DataType::Bytea) => Some(Value::Bytes(bytes.clone())),
        // A vector valid for the column (dimensions, finite elements); anything else goes the general
        // way, whose cast raises the error.
        (Param::Vector(elements), DataType::Vector(dimensions)) => {
            valid_vector(elements.clone(), dimensions, VectorKind::Single).map(Value::Vector)
        }
        (Param::Text(text), DataType::Vector(dimensions)) => valid_vector(
            crate::sql::vector::parse(text).ok()?,
            dimensions,
            VectorKind::Single,
        )
        .map(Value::Vector),
        (Param::Vector(elements), DataType::HalfVector(dimensions)) => {
            valid_vector(elements.clone(), dimensions, VectorKind::Half).map(Value::HalfVector)
        }
        (Param::Text(text), DataType::HalfVector(dimensions)) => valid_vector(
            crate::sql::vector::parse_of(VectorKind::Half, text).ok()?,
            dimensions,
            VectorKind::Half,
        )
        .map(Value::HalfVector),
        // An integer parameter a client sent as text with its declared type (the PostgreSQL protocol's
        // text format): valid for the declared type first, as `CAST(text AS type)` would check.
        (Param::Typed { text, type_name }, _) => {
            let declared = match type_name.as_str() {
                "smallint" => DataType::SmallInt,
                "integer" => DataType::Integer,
                "bigint" => DataType::BigInt,
                _ => return None,
            };
            let value: i64 = text.trim().parse().ok()?;
            integer_in(value, declared)?;
            column_value(&Param::Integer(value), data_type)
        }
        _ => None,
    }
}

/// `elements` if they are a valid vector of `kind` and `dimensions` (any when `None`), as the cast
/// makes them (a halfvec's rounded); `None` otherwise, for the general path to report.
fn valid_vector(elements: Vec<f32>, dimensions: Option<u32>, kind: VectorKind) -> Option<Vec<f32>> {
    crate::sql::vector::checked_elements(kind, &elements, dimensions).ok()
}

/// Evaluates an operand for a column of `data_type`.
fn evaluate(
    operand: &Operand,
    params: &[Param],
    data_type: DataType,
    now_microseconds: i64,
) -> Option<Value> {
    match operand {
        Operand::Parameter(index) => column_value(params.get(*index)?, data_type),
        Operand::Constant(param) => column_value(param, data_type),
        Operand::Now => matches!(data_type, DataType::Timestamp | DataType::TimestampTz)
            .then_some(Value::Integer(now_microseconds)),
    }
}

/// The row key the key operands name, or `None` (general path) when one does not convert exactly.
fn row_key(table: &TableDef, key: &[Operand], params: &[Param]) -> Option<Vec<u8>> {
    let mut out = Key::row_prefix(table.id);
    for (operand, &slot) in key.iter().zip(&table.primary_key) {
        let value = evaluate(operand, params, table.columns[slot].data_type, 0)?;
        if value.is_null() {
            return None;
        }
        encode_value(&value, &mut out);
    }
    Some(out)
}

fn now_microseconds() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Runs a fast plan in `transaction`. `Ok(None)`: the statement must take the general path; nothing
/// has been written then.
/// Runs `plan` with `params` in `transaction`; `vector_settings` are the session's `hnsw.*` settings
/// (read by the caller for a [`FastPlan::Nearest`] only).
pub(crate) fn execute(
    plan: &FastPlan,
    params: &[Param],
    transaction: &mut Transaction,
    catalog: &Catalog,
    database: &DatabaseInner,
    vector_settings: Option<VectorSettings>,
) -> Result<Option<FastOutcome>> {
    match plan {
        FastPlan::Nearest {
            table,
            index,
            column,
            dimensions,
            kind,
            metric,
            query,
            limit,
            slots,
            schema,
        } => {
            let (Some(settings), Some(query)) =
                (vector_settings, query_vector(query, params, *kind))
            else {
                return Ok(None);
            };
            if query.len() != *dimensions as usize {
                return Ok(None);
            }
            let found = nearest_rows(
                transaction,
                database,
                table,
                index,
                (*column, *metric, &query),
                *limit,
                settings,
                keys_suffice(table, slots),
            )?;
            let batch = match found {
                Nearest::Rows(rows) => rows_batch(table, slots, schema, &rows)?,
                Nearest::Keys(keys) => keys_batch(table, slots, schema, &keys)?,
            };
            Ok(Some(FastOutcome::Rows(schema.clone(), vec![batch])))
        }
        FastPlan::Select {
            table,
            index: None,
            key,
            slots,
            count,
            schema,
        } => {
            let Some(row_key) = row_key(table, key, params) else {
                return Ok(None);
            };
            let row = transaction.get(&row_key)?;
            let batch = match count {
                true => count_batch(schema, row.iter().count())?,
                false => rows_batch(table, slots, schema, row.as_slice())?,
            };
            Ok(Some(FastOutcome::Rows(schema.clone(), vec![batch])))
        }
        FastPlan::Select {
            table,
            index: Some(index),
            key,
            slots,
            count,
            schema,
        } => {
            let types: Vec<DataType> = if index.expressions.is_empty() {
                index
                    .columns
                    .iter()
                    .map(|&slot| table.columns[slot].data_type)
                    .collect()
            } else {
                match database.index_compiler.compile(table, index)? {
                    Some(compiled) => compiled.part_types.clone(),
                    None => return Ok(None),
                }
            };
            let mut prefix = Key::index_prefix(index.id);
            for (operand, &data_type) in key.iter().zip(&types) {
                if !crate::sql::scan_filter::exact_key_type(data_type) {
                    return Ok(None);
                }
                match evaluate(operand, params, data_type, 0) {
                    Some(value) if !value.is_null() => encode_value(&value, &mut prefix),
                    _ => return Ok(None),
                }
            }
            if *count {
                let mut entries = 0;
                for entry in transaction.scan_prefix(&prefix, false)? {
                    entry?;
                    entries += 1;
                }
                let batch = count_batch(schema, entries)?;
                return Ok(Some(FastOutcome::Rows(schema.clone(), vec![batch])));
            }
            let mut rows = Vec::new();
            for entry in transaction.scan_prefix(&prefix, false)? {
                let (_, value) = entry?;
                let primary_key = crate::sql::write::entry_primary_key(table, index, &value)?;
                let row_key = Key::Row(table.id, primary_key.to_vec()).encode();
                let Some(row) = transaction.get(&row_key)? else {
                    return Err(Error::corruption(
                        "XX001",
                        format!("index {} points to a missing row", index.name),
                    ));
                };
                rows.push(row);
            }
            let batch = rows_batch(table, slots, schema, &rows)?;
            Ok(Some(FastOutcome::Rows(schema.clone(), vec![batch])))
        }
        FastPlan::Insert {
            table,
            targets,
            rows,
        } => {
            let now = now_microseconds();
            let mut new_rows = Vec::with_capacity(rows.len());
            for row in rows {
                let mut values: Vec<Value> = vec![Value::Null; table.columns.len()];
                for (operand, &slot) in row.iter().zip(targets) {
                    let column = &table.columns[slot];
                    let Some(value) = evaluate(operand, params, column.data_type, now) else {
                        return Ok(None);
                    };
                    if value.is_null() && column.not_null {
                        return Ok(None);
                    }
                    values[slot] = value;
                }
                new_rows.push(values);
            }
            transaction.validate_key(&Key::Object(table.id).encode());
            let writer = TableWriter::new(catalog, table, database)?;
            for values in &new_rows {
                writer.check_references(transaction, values)?;
                let key = writer.new_row_key(values)?;
                writer.insert(transaction, key, values)?;
            }
            Ok(Some(FastOutcome::Command(
                format!("INSERT 0 {}", new_rows.len()),
                new_rows.len() as u64,
            )))
        }
        FastPlan::Update {
            table,
            key,
            assignments,
        } => {
            let Some(row_key) = row_key(table, key, params) else {
                return Ok(None);
            };
            let now = now_microseconds();
            // Evaluate the assignments first: a value the fast path cannot convert sends the statement
            // the general way even when the row is absent (it may raise an error there).
            let mut changes = Vec::with_capacity(assignments.len());
            for (slot, assigned) in assignments {
                let data_type = table.columns[*slot].data_type;
                let operand = match assigned {
                    Assigned::Value(operand) | Assigned::Add { operand, .. } => operand,
                };
                let Some(value) = evaluate(operand, params, data_type, now) else {
                    return Ok(None);
                };
                changes.push(value);
            }
            transaction.validate_key(&Key::Object(table.id).encode());
            let Some(bytes) = transaction.get(&row_key)? else {
                return Ok(Some(FastOutcome::Command("UPDATE 0".into(), 0)));
            };
            let mut values = decode_row(table, &bytes)?;
            for ((slot, assigned), value) in assignments.iter().zip(changes) {
                let column = &table.columns[*slot];
                let new = match assigned {
                    Assigned::Value(_) => value,
                    Assigned::Add { negate, .. } => {
                        let Some(sum) = add(&values[*slot], &value, *negate, column.data_type)
                        else {
                            return Ok(None);
                        };
                        sum
                    }
                };
                if new.is_null() && column.not_null {
                    return Ok(None);
                }
                values[*slot] = new;
            }
            transaction.put(row_key, encode_row(table.version, &values))?;
            database.auto_analyze.note(table.id, 1);
            Ok(Some(FastOutcome::Command("UPDATE 1".into(), 1)))
        }
        FastPlan::Delete { table, key } => {
            let Some(row_key) = row_key(table, key, params) else {
                return Ok(None);
            };
            transaction.validate_key(&Key::Object(table.id).encode());
            let Some(bytes) = transaction.get(&row_key)? else {
                return Ok(Some(FastOutcome::Command("DELETE 0".into(), 0)));
            };
            let row = crate::sql::write::StoredRow {
                values: decode_row(table, &bytes)?,
                key: row_key,
            };
            TableWriter::new(catalog, table, database)?.delete(transaction, &row)?;
            Ok(Some(FastOutcome::Command("DELETE 1".into(), 1)))
        }
    }
}

/// `current + change` (or `-`), for integer and double columns; `None` on overflow or out of the
/// column's range (the general path raises 22003 then).
fn add(current: &Value, change: &Value, negate: bool, data_type: DataType) -> Option<Value> {
    match (current, change) {
        (Value::Null, _) | (_, Value::Null) => Some(Value::Null),
        (Value::Integer(current), Value::Integer(change)) => {
            let sum = if negate {
                current.checked_sub(*change)?
            } else {
                current.checked_add(*change)?
            };
            column_value(&Param::Integer(sum), data_type)
        }
        (Value::Double(current), Value::Double(change)) => {
            let sum = if negate {
                current - change
            } else {
                current + change
            };
            sum.is_finite().then_some(Value::Double(sum))
        }
        _ => None,
    }
}

/// The one-row batch of a count.
fn count_batch(schema: &SchemaRef, rows: usize) -> Result<RecordBatch> {
    let count = i64::try_from(rows).map_err(|_| Error::internal("row count beyond i64"))?;
    RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(datafusion::arrow::array::Int64Array::from(vec![
            count,
        ]))],
    )
    .map_err(|error| Error::internal(format!("fast path batch: {error}")))
}

/// The `limit` rows nearest the query, nearest first, as the general path's vector scan and sort find
/// them: batches of candidates from the index (`ef_search`, then widened while `hnsw.iterative_scan`
/// allows), each candidate's row read in the transaction in the index's order (a deleted row's node
/// reads as nothing) until `limit` rows are found, then those rows ordered by their exact distance.
///
/// When the output needs only primary-key columns (`keys_suffice`), the transaction changed no row
/// of the table, and the search's first batch came from a graph that holds exactly the snapshot's
/// rows (`Search::exact`), the batch's first `limit` keys are the answer: no row is read.
#[allow(clippy::too_many_arguments)]
fn nearest_rows(
    transaction: &Transaction,
    database: &DatabaseInner,
    table: &TableDef,
    index: &IndexDef,
    (column, metric, query): (usize, Metric, &[f32]),
    limit: usize,
    settings: VectorSettings,
    keys_suffice: bool,
) -> Result<Nearest> {
    let decode = match table.columns[column].data_type {
        DataType::HalfVector(_) => qubedb_model::vector::from_half_bytes,
        _ => qubedb_model::vector::from_bytes,
    };
    let Some(config) = index.method.hnsw() else {
        return Err(Error::internal(
            "a nearest-neighbour search of a non-HNSW index",
        ));
    };
    let graph = database.hnsw_graph(table, index)?;
    let mut search = qubedb_model::hnsw::Search::new(
        qubedb_model::hnsw::SearchSource::Cached(transaction.read_view(), graph),
        index.id,
        config.metric,
        query,
        settings.ef_search.max(limit),
    );
    let prefix = Key::row_prefix(table.id);
    let mut found: Vec<(f64, Vec<u8>)> = Vec::new();
    let mut returned = 0;
    let mut searched = false;
    while found.len() < limit
        && !(searched && (!settings.iterative || returned >= settings.max_scan_tuples))
    {
        let count = search.next_batch()?;
        if !searched
            && count >= limit
            && keys_suffice
            && search.exact()
            && transaction
                .buffered_writes(&Key::row_range(table.id))
                .next()
                .is_none()
        {
            let mut keys = Vec::with_capacity(limit);
            for position in 0..limit {
                let mut primary_key = Vec::new();
                if search.append_key(position, &mut primary_key) {
                    keys.push(primary_key);
                }
            }
            return Ok(Nearest::Keys(keys));
        }
        searched = true;
        if count == 0 {
            break;
        }
        returned += count;
        let mut row_key = prefix.clone();
        for position in 0..count {
            if found.len() == limit {
                break;
            }
            row_key.truncate(prefix.len());
            if !search.append_key(position, &mut row_key) {
                continue;
            }
            let Some(row) = transaction.get(&row_key)? else {
                continue;
            };
            let mut reader = RowReader::new(&row)?;
            let mut raw = None;
            for _ in 0..=column.min(reader.slots.saturating_sub(1)) {
                raw = reader.next_value()?;
            }
            let vector = match raw {
                Some(RawValue::Bytes(bytes)) if column < reader.slots => decode(bytes),
                _ => None,
            };
            // A row whose vector is NULL has no node; one of other dimensions cannot be (the column's
            // type fixes them), but is left out rather than measured.
            let Some(vector) = vector.filter(|vector| vector.len() == query.len()) else {
                continue;
            };
            found.push((metric.distance(query, &vector), row));
        }
    }
    found.sort_by(|a, b| a.0.total_cmp(&b.0));
    found.truncate(limit);
    Ok(Nearest::Rows(
        found.into_iter().map(|(_, row)| row).collect(),
    ))
}

/// What [`nearest_rows`] found, nearest first.
enum Nearest {
    /// The rows' stored values.
    Rows(Vec<Vec<u8>>),
    /// The rows' primary keys (keycode), when they are all the output needs.
    Keys(Vec<Vec<u8>>),
}

/// True when the output columns `slots` are all primary-key columns whose key form decodes to the
/// very value stored (no row read is needed to produce them).
fn keys_suffice(table: &TableDef, slots: &[usize]) -> bool {
    !table.has_row_id()
        && slots.iter().all(|slot| table.primary_key.contains(slot))
        && table.primary_key.iter().all(|&slot| {
            matches!(
                table.columns[slot].data_type,
                DataType::SmallInt
                    | DataType::Integer
                    | DataType::BigInt
                    | DataType::Boolean
                    | DataType::Text
                    | DataType::Varchar(_)
                    | DataType::Bytea
                    | DataType::Uuid
            )
        })
}

/// A builder per output column `slots`, for `rows` rows.
fn output_builders(table: &TableDef, slots: &[usize], rows: usize) -> Vec<ColumnBuilder> {
    slots
        .iter()
        .map(|&slot| ColumnBuilder::new(table.columns[slot].data_type, rows))
        .collect()
}

/// The batch of `schema` that `builders` built.
fn finish_batch(mut builders: Vec<ColumnBuilder>, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = builders
        .iter_mut()
        .map(ColumnBuilder::finish)
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|error| Error::internal(format!("fast path batch: {error}")))
}

/// One batch holding, per primary key (keycode) of `keys`, the output columns `slots` (all of the
/// primary key, see [`keys_suffice`]).
fn keys_batch(
    table: &TableDef,
    slots: &[usize],
    schema: &SchemaRef,
    keys: &[Vec<u8>],
) -> Result<RecordBatch> {
    let mut builders = output_builders(table, slots, keys.len());
    let mut values = Vec::with_capacity(table.primary_key.len());
    for key in keys {
        let mut position = 0;
        values.clear();
        for &slot in &table.primary_key {
            values.push((
                slot,
                qubedb_model::keycode::decode_value(
                    key,
                    &mut position,
                    table.columns[slot].data_type,
                )?,
            ));
        }
        for (builder, slot) in builders.iter_mut().zip(slots) {
            let value = values
                .iter()
                .find(|(key_slot, _)| key_slot == slot)
                .map(|(_, value)| value)
                .ok_or_else(|| Error::internal("fast path: an output column outside the key"))?;
            builder.append_value(value)?;
        }
    }
    finish_batch(builders, schema)
}

/// One batch holding `rows` (stored row values) with the output columns `slots`.
fn rows_batch(
    table: &TableDef,
    slots: &[usize],
    schema: &SchemaRef,
    rows: &[Vec<u8>],
) -> Result<RecordBatch> {
    let mut builders = output_builders(table, slots, rows.len());
    let last = slots.iter().copied().max().unwrap_or(0);
    let mut raws = Vec::with_capacity(last + 1);
    for bytes in rows {
        let mut reader = RowReader::new(bytes)?;
        raws.clear();
        for slot in 0..=last {
            raws.push(if slot < reader.slots {
                reader.next_value()?
            } else {
                None
            });
        }
        for (builder, &slot) in builders.iter_mut().zip(slots) {
            match raws[slot] {
                Some(raw) => builder.append_raw(raw)?,
                None => builder.append_value(&table.columns[slot].missing)?,
            }
        }
    }
    finish_batch(builders, schema)
}
