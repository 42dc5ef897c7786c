//! Describing a prepared statement without running it: the type of each `$n` parameter and the columns
//! of the rows it returns. This is what PostgreSQL's extended query protocol asks with Describe, and what
//! drivers (tokio-postgres, JDBC, pgx) use to encode parameters before they send them.
//!
//! Parameter types come from where each parameter is used, as PostgreSQL infers them:
//! - compared with something typed (`id = $1`, `$1 < x`, `IN ($1, $2)`, `BETWEEN`, `LIKE`): DataFusion's
//!   placeholder inference while planning;
//! - cast (`$1::date`), or declared by the client in its Parse message (the statement is planned with
//!   `CAST($n AS type)` in place of each declared `$n`, so the declaration also types what depends on it);
//! - stored into a column (`INSERT ... VALUES ($1)`, `UPDATE ... SET c = $1`, `ON CONFLICT ... SET`):
//!   the column's type;
//! - `LIMIT $1` / `OFFSET $1`: bigint.
//!
//! A parameter nothing types is `None`; a server reports it as `text`, as PostgreSQL resolves `unknown`.
//! Result columns come from planning the statement (queries, EXPLAIN), from SHOW's setting name, or, for
//! INSERT / UPDATE / DELETE with RETURNING, from planning RETURNING over an empty copy of the target table
//! — the same plan [`crate::sql::dml`] runs over the written rows.
//!
//! Describing reads the catalog as the session's transaction sees it (a fresh snapshot outside a block)
//! and writes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{FieldRef, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::expr::{Cast, Placeholder, TryCast};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::sql::sqlparser::ast::{
    DataType as SqlType, Delete, Expr as SqlExpr, FromTable, Insert, OnConflictAction, OnInsert,
    Query, SelectItem, SetExpr, Statement, TableObject, Update, Value as SqlValue, ValueWithSpan,
};
use futures::FutureExt;
use qubedb_model::catalog::TableDef;

use crate::error::{Error, Result};
use crate::params::{cast, declare_parameter_types, literal, placeholder_index};
use crate::session::{PreparedStatement, Session, aborted_error, restored_names, show_schema};
use crate::sql::convert::field;
use crate::sql::dml::{
    delete_source_sql, dml_target, insert_alias, insert_targets, last_name, mem_table, parse_query,
    returning_sql, rows_batch, target_table, update_source_sql,
};

/// What a prepared statement takes and returns.
#[derive(Debug, Clone)]
pub struct StatementDescription {
    /// One entry per parameter `$1 ... $n`: the type the statement expects (an Arrow field whose
    /// `qubedb.type` metadata names the SQL type when it comes from a column), `None` when nothing in
    /// the statement types it.
    pub parameters: Vec<Option<FieldRef>>,
    /// The columns of the rows it returns; `None` for a statement that returns none.
    pub columns: Option<SchemaRef>,
}

/// Parameter types found so far, by 1-based parameter number.
type Found = HashMap<usize, FieldRef>;

impl Session {
    /// Describes `prepared` without running it (blocking; see [`Session::describe_prepared_async`]).
    pub fn describe_prepared(
        &mut self,
        prepared: &PreparedStatement,
        declared: &[Option<String>],
    ) -> Result<StatementDescription> {
        let runtime = self.shared.database.runtime.clone();
        runtime.block_on(self.describe_prepared_async(prepared, declared))
    }

    /// Describes `prepared` without running it. `declared[n - 1]` is the SQL type name the client gave
    /// parameter `$n` (`integer`, `timestamp with time zone`), `None` to let the statement decide.
    pub async fn describe_prepared_async(
        &mut self,
        prepared: &PreparedStatement,
        declared: &[Option<String>],
    ) -> Result<StatementDescription> {
        let mut statement = prepared.statement.clone();
        declare_parameter_types(&mut statement, declared)?;
        let count = prepared.parameter_count.max(declared.len());
        let (mut found, columns) = match &statement {
            Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Explain { .. } => {
                if self.transaction_failed() {
                    return Err(aborted_error());
                }
                let implicit = !self.in_transaction();
                self.ensure_transaction()?;
                let described = std::panic::AssertUnwindSafe(self.describe_statement(statement))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| Err(crate::session::panic_error(panic.as_ref())));
                self.shared.state.lock().locals.clear();
                if implicit {
                    self.rollback_transaction();
                }
                described?
            }
            Statement::ShowVariable { variable } => (Found::new(), Some(show_schema(variable))),
            _ => (Found::new(), None),
        };
        let parameters = (1..=count).map(|index| found.remove(&index)).collect();
        Ok(StatementDescription {
            parameters,
            columns,
        })
    }

    async fn describe_statement(
        &mut self,
        statement: Statement,
    ) -> Result<(Found, Option<SchemaRef>)> {
        match statement {
            Statement::Query(query) => {
                let plan = self.plan_described(*query).await?;
                let schema = result_schema(&self.analyzed(&plan));
                Ok((parameter_fields(&plan)?, Some(schema)))
            }
            Statement::Explain {
                statement,
                analyze,
                verbose,
                ..
            } => {
                let Statement::Query(query) = *statement else {
                    return Err(Error::not_supported(
                        "EXPLAIN of a statement other than a query",
                    ));
                };
                let mut query = *query;
                type_limits(&mut query);
                let plan = self.explain_plan(query, analyze, verbose).await?;
                let schema = result_schema(&plan);
                Ok((parameter_fields(&plan)?, Some(schema)))
            }
            Statement::Insert(insert) => self.describe_insert(insert).await,
            Statement::Update(update) => self.describe_update(update).await,
            Statement::Delete(delete) => self.describe_delete(delete).await,
            _ => Ok((Found::new(), None)),
        }
    }

    /// `plan` after the analyzer rules, whose casts carry the fields execution will produce (a cast of
    /// a column to another type drops the column's SQL type, `JsonbCasts`); `plan` itself when
    /// analysis fails (its parameters may be untyped until bound).
    fn analyzed(&self, plan: &LogicalPlan) -> LogicalPlan {
        let state = self.context.state();
        state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {})
            .unwrap_or_else(|_| plan.clone())
    }

    /// Plans a query for its description, LIMIT / OFFSET parameters typed bigint.
    async fn plan_described(&mut self, mut query: Query) -> Result<LogicalPlan> {
        type_limits(&mut query);
        self.plan_query(query).await
    }

    async fn describe_insert(&mut self, insert: Insert) -> Result<(Found, Option<SchemaRef>)> {
        let catalog = self.shared.state.lock().catalog.clone();
        let TableObject::TableName(name) = &insert.table else {
            return Err(Error::not_supported("INSERT INTO a table function"));
        };
        let table = target_table(&catalog, &self.shared.temp_schema, name)?;
        let alias = insert_alias(&table, &insert);
        let targets = insert_targets(&table, &insert.columns)?;
        let mut found = Found::new();
        if let Some(source) = insert.source {
            match *source.body {
                SetExpr::Values(values) => {
                    for row in &values.rows {
                        for (expr, &slot) in row.iter().zip(&targets) {
                            if let Some(index) = bare_placeholder(expr) {
                                found.insert(index, column_field(&table, slot));
                            }
                        }
                    }
                }
                _ => {
                    let plan = self.plan_described(*source).await?;
                    found.extend(parameter_fields(&plan)?);
                }
            }
        }
        if let Some(OnInsert::OnConflict(on_conflict)) = &insert.on
            && let OnConflictAction::DoUpdate(update) = &on_conflict.action
        {
            for assignment in &update.assignments {
                if let Some(index) = bare_placeholder(&assignment.value)
                    && let Some(slot) = table.column_slot(&assignment_column(assignment))
                {
                    found.insert(index, column_field(&table, slot));
                }
            }
        }
        let columns = self
            .returning_schema(&table, &alias, insert.returning)
            .await?;
        Ok((found, columns))
    }

    async fn describe_update(&mut self, update: Update) -> Result<(Found, Option<SchemaRef>)> {
        let catalog = self.shared.state.lock().catalog.clone();
        let (table, alias) = dml_target(&catalog, &self.shared.temp_schema, &update.table)?;
        let (_, sql) = update_source_sql(&catalog, &table, &alias, &update)?;
        let plan = self.plan_described(parse_query(&sql)?).await?;
        let mut found = parameter_fields(&plan)?;
        for assignment in &update.assignments {
            if let Some(index) = bare_placeholder(&assignment.value)
                && let Some(slot) = table.column_slot(&assignment_column(assignment))
            {
                found.insert(index, column_field(&table, slot));
            }
        }
        let columns = self
            .returning_schema(&table, &alias, update.returning)
            .await?;
        Ok((found, columns))
    }

    async fn describe_delete(&mut self, delete: Delete) -> Result<(Found, Option<SchemaRef>)> {
        let catalog = self.shared.state.lock().catalog.clone();
        let from = match &delete.from {
            FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables) => tables,
        };
        let [target] = from.as_slice() else {
            return Err(Error::not_supported("DELETE from several tables"));
        };
        let (table, alias) = dml_target(&catalog, &self.shared.temp_schema, target)?;
        let sql = delete_source_sql(&catalog, &table, &alias, &delete);
        let plan = self.plan_described(parse_query(&sql)?).await?;
        let found = parameter_fields(&plan)?;
        let columns = self
            .returning_schema(&table, &alias, delete.returning)
            .await?;
        Ok((found, columns))
    }

    /// The columns RETURNING produces, planned over an empty copy of `table` named `alias`.
    async fn returning_schema(
        &mut self,
        table: &TableDef,
        alias: &str,
        returning: Option<Vec<SelectItem>>,
    ) -> Result<Option<SchemaRef>> {
        let Some(items) = returning else {
            return Ok(None);
        };
        self.register_local(alias, mem_table(rows_batch(table, &[], false)?)?);
        let plan = self
            .plan_query(parse_query(&returning_sql(&items, alias))?)
            .await?;
        Ok(Some(result_schema(&plan)))
    }
}

/// The Arrow schema of a plan's output, with the names clients see.
fn result_schema(plan: &LogicalPlan) -> SchemaRef {
    let schema = plan.schema().as_arrow();
    restored_names(schema).unwrap_or_else(|| Arc::new(schema.clone()))
}

/// The column of `slot` as a parameter type.
fn column_field(table: &TableDef, slot: usize) -> FieldRef {
    let column = &table.columns[slot];
    Arc::new(field(&column.name, column.data_type, true))
}

/// The column an assignment sets (its last name part, folded).
fn assignment_column(assignment: &datafusion::sql::sqlparser::ast::Assignment) -> String {
    use datafusion::sql::sqlparser::ast::AssignmentTarget;
    match &assignment.target {
        AssignmentTarget::ColumnName(name) => last_name(name),
        AssignmentTarget::Tuple(_) => String::new(),
    }
}

/// The number of `$n` when `expr` is that placeholder alone.
fn bare_placeholder(expr: &SqlExpr) -> Option<usize> {
    match expr {
        SqlExpr::Value(ValueWithSpan {
            value: SqlValue::Placeholder(text),
            ..
        }) => placeholder_index(text),
        SqlExpr::Nested(inner) => bare_placeholder(inner),
        _ => None,
    }
}

/// Casts bare placeholders in LIMIT and OFFSET to bigint, as PostgreSQL types them.
fn type_limits(query: &mut Query) {
    let mut cast_bigint = |expr: &mut SqlExpr| {
        if bare_placeholder(expr).is_some() {
            let placeholder = std::mem::replace(expr, literal(SqlValue::Null));
            *expr = cast(placeholder, SqlType::BigInt(None));
        }
    };
    if let Some(clause) = &mut query.limit_clause {
        use datafusion::sql::sqlparser::ast::LimitClause;
        match clause {
            LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            } => {
                if let Some(limit) = limit {
                    cast_bigint(limit);
                }
                if let Some(offset) = offset {
                    cast_bigint(&mut offset.value);
                }
                limit_by.iter_mut().for_each(&mut cast_bigint);
            }
            LimitClause::OffsetCommaLimit { offset, limit } => {
                cast_bigint(offset);
                cast_bigint(limit);
            }
        }
    }
    if let Some(fetch) = &mut query.fetch
        && let Some(quantity) = &mut fetch.quantity
    {
        cast_bigint(quantity);
    }
}

/// The parameter types a plan knows: DataFusion's inferred placeholder types, then the type of any
/// cast applied directly to an untyped placeholder.
fn parameter_fields(plan: &LogicalPlan) -> Result<Found> {
    let mut found = Found::new();
    for (id, field) in plan.get_parameter_fields()? {
        if let (Some(index), Some(field)) = (placeholder_index(&id), field) {
            found.insert(index, field);
        }
    }
    let mut casts: Vec<(usize, FieldRef)> = Vec::new();
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|expr| {
                let cast = match expr {
                    Expr::Cast(Cast { expr, field }) => Some((expr, field)),
                    Expr::TryCast(TryCast { expr, field }) => Some((expr, field)),
                    _ => None,
                };
                if let Some((inner, target)) = cast
                    && let Expr::Placeholder(Placeholder { id, field: None }) = inner.as_ref()
                    && let Some(index) = placeholder_index(id)
                {
                    casts.push((index, target.clone()));
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    for (index, target) in casts {
        found.entry(index).or_insert(target);
    }
    Ok(found)
}
