//! The plan cache of prepared queries that the OLTP fast path does not take.
//!
//! A prepared `SELECT` is planned once with its parameters left as placeholders (`$1`): QubeDB's
//! rewrites, DataFusion's SQL planner (which infers each placeholder's type from where it is used),
//! analyzer and optimizer. Each execution then binds the parameters into that optimized plan as literals
//! of the inferred types and runs only physical planning, where the scans choose their key ranges and
//! indexes from the now literal predicates and the current statistics. DataFusion's logical planning and
//! optimization are most of a small query's cost (`../shared/bench/DATAFUSION-KV.md`).
//!
//! The cached plan stays valid while the session's catalog is the same `Arc` (any DDL, or another
//! session's committed DDL, replans). A parameter is bound into the cached plan only when its value
//! converts exactly to the placeholder's type (integers and floating point, booleans, text into text,
//! NULL, a vector's text into a vector): anything else — a text that must be parsed as a number or date, a typed parameter, bytes —
//! binds into the statement's syntax tree as before and plans afresh, so both ways give the same result.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType as ArrowType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{Query, Statement};
use parking_lot::Mutex;
use qubedb_model::catalog::Catalog;

use crate::error::Result;
use crate::params::{Param, bind_parameters};
use crate::result::QueryResult;
use crate::session::Session;

/// A prepared query's cached plan, for the catalog it was made against.
pub(crate) struct PlanCache {
    catalog: Arc<Catalog>,
    /// `None`: the query cannot be cached (a placeholder of unknown or unsupported type, or planning
    /// failed: the uncached path then reports the error).
    plan: Option<Arc<CachedPlan>>,
}

/// An optimized plan with placeholders, and the type of each (`$1` first).
pub(crate) struct CachedPlan {
    plan: LogicalPlan,
    parameter_types: Vec<ArrowType>,
}

/// The cache slot a prepared statement carries.
pub(crate) type PlanSlot = Arc<Mutex<Option<PlanCache>>>;

impl Session {
    /// Runs a prepared query with `params` through its cached plan when it can, else binds the
    /// parameters into the query and plans it as an unprepared one.
    pub(crate) async fn run_prepared_query(
        &mut self,
        query: Query,
        params: &[Param],
        slot: &PlanSlot,
    ) -> Result<QueryResult> {
        if !query.locks.is_empty() {
            let mut statement = Statement::Query(Box::new(query));
            bind_parameters(&mut statement, params)?;
            let Statement::Query(query) = statement else {
                unreachable!("binding parameters keeps the statement a query")
            };
            return self.select_locking(*query).await;
        }
        let catalog = self.shared.state.lock().catalog.clone();
        let known = match &*slot.lock() {
            Some(cache) if Arc::ptr_eq(&cache.catalog, &catalog) => Some(cache.plan.clone()),
            _ => None,
        };
        let cached = match known {
            Some(plan) => plan,
            None => {
                let plan = self.plan_for_cache(query.clone(), params.len()).await;
                *slot.lock() = Some(PlanCache {
                    catalog,
                    plan: plan.clone(),
                });
                plan
            }
        };
        if let Some(cached) = cached
            && let Some(values) = bound_values(params, &cached.parameter_types)
        {
            let plan = cached.plan.clone().with_param_values(values)?;
            self.cached_plan_executions += 1;
            return self.run_optimized_plan(plan).await;
        }
        let mut statement = Statement::Query(Box::new(query));
        bind_parameters(&mut statement, params)?;
        let Statement::Query(query) = statement else {
            unreachable!("binding parameters keeps the statement a query")
        };
        self.run_query(*query).await
    }

    /// The optimized plan of `query` with its `parameter_count` parameters as placeholders, if every
    /// placeholder's type is known and bindable.
    async fn plan_for_cache(
        &mut self,
        query: Query,
        parameter_count: usize,
    ) -> Option<Arc<CachedPlan>> {
        let plan = self.plan_query(query).await.ok()?;
        // Only queries: `SELECT ... INTO` plans a table's creation, which runs through the context.
        if matches!(
            plan,
            LogicalPlan::Ddl(_)
                | LogicalPlan::Dml(_)
                | LogicalPlan::Statement(_)
                | LogicalPlan::Copy(_)
                | LogicalPlan::Explain(_)
                | LogicalPlan::DescribeTable(_)
        ) {
            return None;
        }
        let state = self.context.state();
        let optimized = state.optimize(&plan).ok()?;
        let types = optimized.get_parameter_types().ok()?;
        if types.len() != parameter_count {
            return None;
        }
        let mut parameter_types = Vec::with_capacity(parameter_count);
        for number in 1..=parameter_count {
            let data_type = types.get(&format!("${number}"))?.clone()?;
            if !bindable(&data_type) {
                return None;
            }
            parameter_types.push(data_type);
        }
        Some(Arc::new(CachedPlan {
            plan: optimized,
            parameter_types,
        }))
    }

    /// Runs an optimized logical plan: physical planning and execution only.
    async fn run_optimized_plan(&mut self, plan: LogicalPlan) -> Result<QueryResult> {
        let state = self.context.state();
        let physical = state
            .query_planner()
            .create_physical_plan(&plan, &state)
            .await?;
        let physical = crate::sql::checked::checked_arithmetic(physical)?;
        let stream = datafusion::physical_plan::execute_stream(physical, state.task_ctx())?;
        let stream = crate::session::restore_duplicate_names(stream)?;
        Ok(QueryResult::stream(stream, self.shared.clone()))
    }
}

/// Placeholder types a parameter may be bound into exactly.
fn bindable(data_type: &ArrowType) -> bool {
    matches!(
        data_type,
        ArrowType::Int16
            | ArrowType::Int32
            | ArrowType::Int64
            | ArrowType::Float64
            | ArrowType::Boolean
            | ArrowType::Utf8
    ) || crate::sql::vector::is_vector(data_type)
}

/// The parameters as literals of the placeholders' types; `None` when one does not convert exactly.
fn bound_values(params: &[Param], types: &[ArrowType]) -> Option<Vec<ScalarValue>> {
    if params.len() != types.len() {
        return None;
    }
    params
        .iter()
        .zip(types)
        .map(|(param, data_type)| match (param, data_type) {
            (Param::Null, data_type) => ScalarValue::try_from(data_type).ok(),
            (Param::Integer(value), ArrowType::Int16) => i16::try_from(*value)
                .ok()
                .map(|v| ScalarValue::Int16(Some(v))),
            (Param::Integer(value), ArrowType::Int32) => i32::try_from(*value)
                .ok()
                .map(|v| ScalarValue::Int32(Some(v))),
            (Param::Integer(value), ArrowType::Int64) => Some(ScalarValue::Int64(Some(*value))),
            (Param::Double(value), ArrowType::Float64) => Some(ScalarValue::Float64(Some(*value))),
            (Param::Boolean(value), ArrowType::Boolean) => Some(ScalarValue::Boolean(Some(*value))),
            (Param::Text(value), ArrowType::Utf8) => Some(ScalarValue::Utf8(Some(value.clone()))),
            // A vector's text (a binary vector arrives as text too): parsed as the cast does; text
            // that is no vector goes the uncached way, which reports the error.
            (Param::Vector(elements), data_type) if crate::sql::vector::is_vector(data_type) => {
                vector_scalar(data_type, elements)
            }
            (Param::Text(text), data_type) if crate::sql::vector::is_vector(data_type) => {
                vector_literal(data_type, text)
            }
            (Param::Typed { text, type_name }, data_type)
                if crate::sql::vector::kind_of(data_type)
                    .is_some_and(|kind| kind.type_name() == type_name) =>
            {
                vector_literal(data_type, text)
            }
            _ => None,
        })
        .collect()
}

/// A vector's text as a literal, parsed as the cast parses it; `None` for text that is no vector (the
/// uncached way then reports the error).
fn vector_literal(data_type: &ArrowType, text: &str) -> Option<ScalarValue> {
    let kind = crate::sql::vector::kind_of(data_type)?;
    vector_scalar(data_type, &crate::sql::vector::parse_of(kind, text).ok()?)
}

/// A vector as a literal; `None` for one the vector type does not hold (no elements, too many, NaN or
/// infinity), whose error the uncached way reports.
fn vector_scalar(data_type: &ArrowType, elements: &[f32]) -> Option<ScalarValue> {
    let kind = crate::sql::vector::kind_of(data_type)?;
    let elements = crate::sql::vector::checked_elements(kind, elements, None).ok()?;
    let mut builder = crate::sql::vector::VectorBuilder::of_kind(kind, 1, elements.len());
    builder.append(&elements);
    Some(ScalarValue::LargeList(Arc::new(builder.finish())))
}
