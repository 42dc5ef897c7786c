//! Expression and partial indexes: their SQL compiled once into DataFusion expressions, used both when
//! rows are written and when queries are planned.
//!
//! An expression index (`CREATE INDEX ON t (lower(name))`) stores for each row the values of its key
//! expressions; a partial index (`... WHERE NOT done`) has entries only for the rows its predicate
//! accepts. Both are SQL that QubeDB evaluates outside any query: every write of a row goes through
//! [`crate::sql::write::TableWriter`] (INSERT, UPDATE, DELETE, COPY, cascades, index builds), which
//! computes the row's entry with [`CompiledIndex::key_values`]; and the planner
//! ([`crate::sql::provider`]) compares a query's filters with the same expressions, in the same
//! compiled form, to decide whether the index answers them. The two sides cannot disagree about what
//! an expression means because they share one [`CompiledIndex`].
//!
//! [`IndexCompiler`] (one per database) compiles the text the way a query's expressions are planned:
//! QubeDB's rewrites of PostgreSQL syntax first, then DataFusion's planner, type coercion and
//! simplification, with DataFusion's functions and QubeDB's immutable ones. Expressions must be
//! immutable (PostgreSQL's rule: an entry computed today must match the row tomorrow), so volatile and
//! stable functions, subqueries and aggregates are refused when the index is created. Compiled forms
//! are cached by index id and a fingerprint of the definition and the table's columns, so an ALTER
//! TABLE that renames or retypes a column compiles the index again.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column as LogicalColumn, DFSchema, ScalarValue};
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, ExprSchemable, Operator, Volatility};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::{self, ExprWithAlias, SelectItem, SetExpr};
use parking_lot::Mutex;
use qubedb_model::catalog::{Catalog, IndexDef, TableDef};
use qubedb_model::{DataType, Value};

use crate::error::{Error, Result};
use crate::sql::convert::{ColumnBuilder, field, sql_type_of_arrow, value_at};
use crate::sql::dml::{cast_column, parse_query, quote};
use crate::sql::rewrite::rewrite_query;

/// An index's expressions and predicate, compiled.
#[derive(Debug)]
pub(crate) struct CompiledIndex {
    /// Each key part as the planner sees it, columns unqualified; empty for a plain index (whose key is
    /// its columns).
    pub parts: Vec<Expr>,
    /// The SQL type each key part is stored as.
    pub part_types: Vec<DataType>,
    physical_parts: Vec<Arc<dyn PhysicalExpr>>,
    /// The partial index's predicate split at AND, columns unqualified (empty: every row).
    pub predicate: Vec<Expr>,
    physical_predicate: Option<Arc<dyn PhysicalExpr>>,
    /// The slots the expressions and the predicate read, in slot order: the columns of the batch the
    /// physical expressions evaluate over.
    pub referenced: Vec<usize>,
    batch_schema: SchemaRef,
}

impl CompiledIndex {
    /// The values of the key parts for a row of `values` (one per slot), or `None` when the row has no
    /// entry (a partial index whose predicate is false or NULL for it). Only meaningful for expression
    /// parts; a partial index on plain columns returns an empty vector for rows it accepts.
    pub fn key_values(&self, table: &TableDef, values: &[Value]) -> Result<Option<Vec<Value>>> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.referenced.len());
        for &slot in &self.referenced {
            let mut builder = ColumnBuilder::new(table.columns[slot].data_type, 1);
            builder.append_value(&values[slot])?;
            columns.push(builder.finish()?);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(1));
        let batch =
            RecordBatch::try_new_with_options(self.batch_schema.clone(), columns, &options)?;
        if let Some(predicate) = &self.physical_predicate {
            let result = predicate.evaluate(&batch)?.into_array(1)?;
            let accepted = result
                .as_any()
                .downcast_ref::<BooleanArray>()
                .is_some_and(|booleans| booleans.is_valid(0) && booleans.value(0));
            if !accepted {
                return Ok(None);
            }
        }
        let mut key = Vec::with_capacity(self.physical_parts.len());
        for (part, &data_type) in self.physical_parts.iter().zip(&self.part_types) {
            let array = cast_column(&part.evaluate(&batch)?.into_array(1)?, data_type)?;
            key.push(value_at(&array, 0, data_type)?);
        }
        Ok(Some(key))
    }

    /// True when `filters` (a query's conjuncts on the table) imply the partial index's predicate: the
    /// index then holds every row the query can return.
    pub fn predicate_implied_by(&self, filters: &[Expr]) -> bool {
        let filters: Vec<Expr> = filters.iter().map(unqualified).collect();
        let mut conjuncts: Vec<&Expr> = Vec::new();
        for filter in &filters {
            conjuncts.extend(split_conjunction(filter));
        }
        self.predicate
            .iter()
            .all(|required| implied(&conjuncts, required))
    }

    /// The key part `expr` (a query expression over the table) is, if any.
    pub fn part_position(&self, expr: &Expr) -> Option<usize> {
        let expr = unqualified(expr);
        self.parts.iter().position(|part| *part == expr)
    }
}

/// `expr` with its columns' table qualifiers removed (a query names `t.a` or `alias.a`; an index `a`).
pub(crate) fn unqualified(expr: &Expr) -> Expr {
    expr.clone()
        .transform(|expr| {
            Ok(match expr {
                Expr::Column(column) if column.relation.is_some() => {
                    Transformed::yes(Expr::Column(LogicalColumn::new_unqualified(column.name)))
                }
                other => Transformed::no(other),
            })
        })
        .map(|transformed| transformed.data)
        .unwrap_or_else(|_| expr.clone())
}

/// True when the conjunction of `filters` implies `required`: one of them is it, or a comparison of
/// the same expression with a constant that lies within it (`a > 20` implies `a > 10`, `a = 3`
/// implies `a IS NOT NULL`), or it is an OR of which one branch is implied.
fn implied(filters: &[&Expr], required: &Expr) -> bool {
    if filters.contains(&required) {
        return true;
    }
    match required {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => implied(filters, left) || implied(filters, right),
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => implied(filters, left) && implied(filters, right),
        Expr::IsNotNull(subject) => filters
            .iter()
            .any(|filter| facts_about(filter, subject).is_some()),
        _ => {
            let Some((subject, op, bound)) = comparison(required) else {
                return false;
            };
            filters.iter().any(|filter| {
                facts_about(filter, &subject)
                    .is_some_and(|facts| facts.iter().all(|fact| fact.implies(op, &bound)))
            })
        }
    }
}

/// A comparison `subject op constant`, turned around when the constant comes first.
fn comparison(expr: &Expr) -> Option<(Expr, Operator, ScalarValue)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    if !matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
    ) {
        return None;
    }
    match (left.as_ref(), right.as_ref()) {
        (subject, Expr::Literal(value, _)) if !value.is_null() => {
            Some((subject.clone(), *op, value.clone()))
        }
        (Expr::Literal(value, _), subject) if !value.is_null() => {
            Some((subject.clone(), op.swap()?, value.clone()))
        }
        _ => None,
    }
}

/// What a filter says about an expression.
enum Fact {
    /// `subject op constant`.
    Compare(Operator, ScalarValue),
    /// `subject BETWEEN low AND high`.
    Between(ScalarValue, ScalarValue),
}

impl Fact {
    /// True when the fact proves `subject op bound`.
    fn implies(&self, op: Operator, bound: &ScalarValue) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let (fact_op, value) = match self {
            Fact::Between(low, high) => {
                return Fact::Compare(Operator::GtEq, low.clone()).implies(op, bound)
                    || Fact::Compare(Operator::LtEq, high.clone()).implies(op, bound);
            }
            Fact::Compare(fact_op, value) => (fact_op, value),
        };
        let Some(order) = value.partial_cmp(bound) else {
            return false;
        };
        match (fact_op, op) {
            (Operator::Eq, Operator::Eq) => order == Equal,
            (Operator::Eq, Operator::NotEq) => order != Equal,
            (Operator::Eq, Operator::Gt) => order == Greater,
            (Operator::Eq, Operator::GtEq) => order != Less,
            (Operator::Eq, Operator::Lt) => order == Less,
            (Operator::Eq, Operator::LtEq) => order != Greater,
            (Operator::Gt, Operator::Gt | Operator::GtEq | Operator::NotEq) => order != Less,
            (Operator::GtEq, Operator::Gt | Operator::NotEq) => order == Greater,
            (Operator::GtEq, Operator::GtEq) => order != Less,
            (Operator::Lt, Operator::Lt | Operator::LtEq | Operator::NotEq) => order != Greater,
            (Operator::LtEq, Operator::Lt | Operator::NotEq) => order == Less,
            (Operator::LtEq, Operator::LtEq) => order != Greater,
            (Operator::NotEq, Operator::NotEq) => order == Equal,
            _ => false,
        }
    }
}

/// What `filter` says about `subject`, as alternatives (an `IN` list has several, one of which holds);
/// `None` when it says nothing of that form.
fn facts_about(filter: &Expr, subject: &Expr) -> Option<Vec<Fact>> {
    match filter {
        Expr::InList(list) if !list.negated && *list.expr == *subject => list
            .list
            .iter()
            .map(|item| match item {
                Expr::Literal(value, _) if !value.is_null() => {
                    Some(Fact::Compare(Operator::Eq, value.clone()))
                }
                _ => None,
            })
            .collect(),
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if **expr == *subject => match (low.as_ref(), high.as_ref()) {
            (Expr::Literal(low, _), Expr::Literal(high, _))
                if !low.is_null() && !high.is_null() =>
            {
                Some(vec![Fact::Between(low.clone(), high.clone())])
            }
            _ => None,
        },
        _ => {
            let (found, op, value) = comparison(filter)?;
            (found == *subject).then(|| vec![Fact::Compare(op, value)])
        }
    }
}

/// Compiles index expressions for one database, and keeps what it compiled.
pub(crate) struct IndexCompiler {
    state: OnceLock<SessionState>,
    compiled: Mutex<HashMap<u64, (u64, Arc<CompiledIndex>)>>,
}

impl Default for IndexCompiler {
    fn default() -> Self {
        IndexCompiler {
            state: OnceLock::new(),
            compiled: Mutex::new(HashMap::new()),
        }
    }
}

impl IndexCompiler {
    /// A DataFusion state configured as a session's (PostgreSQL dialect, decimals for fractional
    /// literals, UTC) with the functions an index expression may call.
    fn state(&self) -> &SessionState {
        self.state.get_or_init(|| {
            let mut config = SessionConfig::new();
            config.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
            config.options_mut().sql_parser.parse_float_as_decimal = true;
            config.options_mut().execution.time_zone = Some("+00:00".into());
            let mut builder = SessionStateBuilder::new()
                .with_config(config)
                .with_default_features();
            crate::sql::jsonb_planner::install_planners(&mut builder);
            let builder =
                builder.with_analyzer_rule(Arc::new(crate::sql::jsonb_planner::JsonbCasts));
            let context = SessionContext::new_with_state(builder.build());
            crate::sql::functions::register_immutable(&context);
            context.state()
        })
    }

    /// The compiled form of `index` over `table`; `None` for a plain index (nothing to compile).
    pub(crate) fn compile(
        &self,
        table: &TableDef,
        index: &IndexDef,
    ) -> Result<Option<Arc<CompiledIndex>>> {
        if index.expressions.is_empty() && index.predicate.is_none() {
            return Ok(None);
        }
        let fingerprint = fingerprint(table, index);
        if let Some((known, compiled)) = self.compiled.lock().get(&index.id)
            && *known == fingerprint
        {
            return Ok(Some(compiled.clone()));
        }
        let compiled = Arc::new(self.compile_uncached(table, index)?);
        self.compiled
            .lock()
            .insert(index.id, (fingerprint, compiled.clone()));
        Ok(Some(compiled))
    }

    fn compile_uncached(&self, table: &TableDef, index: &IndexDef) -> Result<CompiledIndex> {
        let state = self.state();
        let fields: Vec<_> = table
            .live_columns()
            .map(|(_, column)| field(&column.name, column.data_type, true))
            .collect();
        let table_schema = DFSchema::try_from(Schema::new(fields))?;
        // The expressions go through the rewrites a query's expressions get, as one SELECT.
        let mut texts: Vec<String> = index.expressions.iter().map(|e| format!("({e})")).collect();
        if let Some(predicate) = &index.predicate {
            texts.push(format!("({predicate})"));
        }
        let mut query = parse_query(&format!(
            "SELECT {} FROM {}",
            texts.join(", "),
            quote(&table.name)
        ))?;
        rewrite_query(&mut query, &Catalog::default(), "", Default::default())?;
        let SetExpr::Select(select) = *query.body else {
            return Err(Error::internal("index expressions did not stay a SELECT"));
        };
        let mut planned: Vec<Expr> = Vec::new();
        for item in select.projection {
            let expr = match item {
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => expr,
                other => return Err(Error::internal(format!("index expression {other}"))),
            };
            planned.push(self.plan_expression(state, expr, &table_schema)?);
        }
        let predicate_expr = if index.predicate.is_some() {
            planned.pop()
        } else {
            None
        };
        for (position, part) in planned.iter().enumerate() {
            check_indexable(part, "index expression", &index.expressions[position])?;
        }
        if let (Some(expr), Some(text)) = (&predicate_expr, &index.predicate) {
            check_indexable(expr, "index predicate", text)?;
        }
        let mut referenced: Vec<usize> = Vec::new();
        for expr in planned.iter().chain(predicate_expr.iter()) {
            for column in expr.column_refs() {
                let slot = table.column_slot(&column.name).ok_or_else(|| {
                    Error::user(
                        "42703",
                        format!("column \"{}\" does not exist", column.name),
                    )
                })?;
                if !referenced.contains(&slot) {
                    referenced.push(slot);
                }
            }
        }
        referenced.sort_unstable();
        let batch_fields: Vec<_> = referenced
            .iter()
            .map(|&slot| {
                let column = &table.columns[slot];
                field(&column.name, column.data_type, true)
            })
            .collect();
        let batch_schema = Arc::new(Schema::new(batch_fields));
        let batch_dfschema = DFSchema::try_from(batch_schema.as_ref().clone())?;
        let mut part_types = Vec::with_capacity(planned.len());
        let mut physical_parts = Vec::with_capacity(planned.len());
        for (position, part) in planned.iter().enumerate() {
            let data_type = match part {
                Expr::Column(column) => table
                    .column_slot(&column.name)
                    .map(|slot| table.columns[slot].data_type),
                other => {
                    let (_, field) = other.to_field(&table_schema)?;
                    sql_type_of_arrow(field.data_type())
                }
            }
            .ok_or_else(|| {
                Error::not_supported(format!(
                    "an index on expression {} of this type",
                    index.expressions[position]
                ))
            })?;
            part_types.push(data_type);
            physical_parts.push(state.create_physical_expr(part.clone(), &batch_dfschema)?);
        }
        let physical_predicate = match &predicate_expr {
            Some(expr) => Some(state.create_physical_expr(expr.clone(), &batch_dfschema)?),
            None => None,
        };
        let predicate = predicate_expr
            .map(|expr| split_conjunction(&expr).into_iter().cloned().collect())
            .unwrap_or_default();
        Ok(CompiledIndex {
            parts: planned,
            part_types,
            physical_parts,
            predicate,
            physical_predicate,
            referenced,
            batch_schema,
        })
    }

    /// One rewritten SQL expression planned, type-coerced and simplified as a query filter would be.
    fn plan_expression(
        &self,
        state: &SessionState,
        expr: ast::Expr,
        schema: &DFSchema,
    ) -> Result<Expr> {
        let logical =
            state.create_logical_expr_from_sql_expr(ExprWithAlias { expr, alias: None }, schema)?;
        let context = SimplifyContext::builder()
            .with_schema(Arc::new(schema.clone()))
            .with_config_options(Arc::new(state.config_options().as_ref().clone()))
            .build();
        let simplifier = ExprSimplifier::new(context);
        let coerced = simplifier.coerce(logical, schema)?;
        let simplified = simplifier.simplify(coerced)?;
        Ok(unqualified(&simplified))
    }
}

/// Refuses what an index may not compute: functions that are not immutable, subqueries, aggregates
/// and window functions (PostgreSQL's rules and SQLSTATEs).
fn check_indexable(expr: &Expr, what: &str, text: &str) -> Result<()> {
    let mut failure: Option<Error> = None;
    let _ = expr.apply(|node| {
        let problem = match node {
            Expr::ScalarFunction(function)
                if function.func.signature().volatility != Volatility::Immutable =>
            {
                Some(Error::user(
                    "42P17",
                    format!("functions in {what} must be marked IMMUTABLE"),
                ))
            }
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => Some(
                Error::not_supported(format!("cannot use subquery in {what}")),
            ),
            Expr::AggregateFunction(_) => Some(Error::user(
                "42803",
                format!("aggregate functions are not allowed in {what}s"),
            )),
            Expr::WindowFunction(_) => Some(Error::user(
                "42P20",
                format!("window functions are not allowed in {what}s"),
            )),
            Expr::Placeholder(_) => Some(Error::user(
                "42P02",
                format!("there is no parameter in {what} {text}"),
            )),
            _ => None,
        };
        match problem {
            Some(error) => {
                failure = Some(error);
                Ok(TreeNodeRecursion::Stop)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    });
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// What the compiled form of `index` depends on: its definition and the table's columns.
fn fingerprint(table: &TableDef, index: &IndexDef) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    index.expressions.hash(&mut hasher);
    index.predicate.hash(&mut hasher);
    table.name.hash(&mut hasher);
    for (slot, column) in table.live_columns() {
        slot.hash(&mut hasher);
        column.name.hash(&mut hasher);
        column.data_type.sql_name().hash(&mut hasher);
    }
    hasher.finish()
}
