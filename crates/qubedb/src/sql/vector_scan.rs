//! `ORDER BY col <-> 'query' LIMIT k` served by an HNSW index: a physical optimizer rule.
//!
//! For each `SortExec` whose first key is ascending and is a distance function (`l2_distance`,
//! `vector_negative_inner_product`, `cosine_distance`, `l1_distance`: what `<->`, `<#>`, `<=>` and
//! `<+>` become) of a column and a constant vector, computed in a projection just below the sort or
//! in the sort itself, and whose input chain (projections passing columns through, at most one
//! filter) ends at a [`KvScanExec`] of a table with an HNSW index of that column and distance, the
//! scan is swapped for one that reads the index in distance order ([`KvScanExec::with_vector_order`]).
//!
//! The sort stays: the scan returns the rows of the candidates the search finds (in batches, each
//! nearest first), and the sort orders them by their exact distance and keeps `k`. The scan applies
//! the query's filters itself (those pushed into it, and a filter just above it) and keeps asking the
//! search for more candidates until `k` rows pass them or the graph has no more (the iterative scan,
//! `hnsw.iterative_scan`), so a selective filter still returns `k` rows. Rows whose vector is NULL
//! are not in the graph and never come back from it, as with pgvector.
//!
//! Without `LIMIT` the index is used only when `enable_seqscan` is off (as PostgreSQL would prefer
//! it then): the scan returns what the search finds.
//!
//! Like [`crate::sql::scan_order`], it runs before DataFusion's own physical rules.

use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use qubedb_model::vector::Metric;

use super::provider::KvScanExec;
use crate::sql::vector::{Vectors, metric_of_function};

/// See the module documentation.
#[derive(Debug, Default)]
pub struct VectorOrder;

impl PhysicalOptimizerRule for VectorOrder {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|plan| {
            let Some(sort) = plan.downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(plan));
            };
            let first = sort.expr().first();
            if first.options.descending {
                return Ok(Transformed::no(plan));
            }
            // The distance computed in the sort itself, or in a projection just below it.
            let swapped = match first.expr.downcast_ref::<Column>() {
                Some(column) => {
                    let Some(projection) = sort.input().downcast_ref::<ProjectionExec>() else {
                        return Ok(Transformed::no(plan));
                    };
                    let Some(distance) = projection
                        .expr()
                        .get(column.index())
                        .and_then(|projected| distance_over_columns(&projected.expr))
                    else {
                        return Ok(Transformed::no(plan));
                    };
                    match swap_scan(projection.input(), &distance, sort.fetch(), None)? {
                        Some(child) => Some(replace_children_if_necessary(
                            sort.input().clone(),
                            vec![child],
                        )?),
                        None => None,
                    }
                }
                None => match distance_over_columns(&first.expr) {
                    Some(distance) => swap_scan(sort.input(), &distance, sort.fetch(), None)?,
                    None => None,
                },
            };
            match swapped {
                Some(input) => Ok(Transformed::yes(replace_children_if_necessary(
                    plan.clone(),
                    vec![input],
                )?)),
                None => Ok(Transformed::no(plan)),
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "qubedb_vector_order"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A distance from a column (its position in the plan the expression reads) to a constant vector.
struct Distance {
    column: usize,
    metric: Metric,
    query: Vec<f32>,
}

/// `distance(column, constant)` or `distance(constant, column)`.
fn distance_over_columns(expr: &Arc<dyn PhysicalExpr>) -> Option<Distance> {
    let function = expr.downcast_ref::<ScalarFunctionExpr>()?;
    let metric = metric_of_function(function.name())?;
    let [left, right] = function.args() else {
        return None;
    };
    let (column, constant) = match (
        left.downcast_ref::<Column>(),
        right.downcast_ref::<Literal>(),
    ) {
        (Some(column), Some(constant)) => (column, constant),
        _ => (
            right.downcast_ref::<Column>()?,
            left.downcast_ref::<Literal>()?,
        ),
    };
    let ScalarValue::LargeList(list) = constant.value() else {
        return None;
    };
    let vectors = Vectors::new(list.as_ref()).ok()?;
    let query = vectors.get(0)?.to_vec();
    Some(Distance {
        column: column.index(),
        metric,
        query,
    })
}

/// `plan` with the scan at the end of its chain reading the HNSW index in distance order, if the
/// chain allows it and the scan has such an index; `predicate` is a filter met on the way down.
fn swap_scan(
    plan: &Arc<dyn ExecutionPlan>,
    distance: &Distance,
    fetch: Option<usize>,
    predicate: Option<Arc<dyn PhysicalExpr>>,
) -> datafusion::error::Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(scan) = plan.downcast_ref::<KvScanExec>() {
        return Ok(scan
            .with_vector_order(
                distance.column,
                distance.metric,
                &distance.query,
                fetch,
                predicate,
            )
            .map(|scan| Arc::new(scan) as Arc<dyn ExecutionPlan>));
    }
    let (column, predicate) = if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        let Some(passed) = projection
            .expr()
            .get(distance.column)
            .and_then(|projected| projected.expr.downcast_ref::<Column>())
        else {
            return Ok(None);
        };
        // A filter above a projection reads the projection's columns, not the scan's.
        if predicate.is_some() {
            return Ok(None);
        }
        (passed.index(), None)
    } else if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        if predicate.is_some() || filter.projection().is_some() {
            return Ok(None);
        }
        // Only a filter straight over the scan can be applied by it.
        if filter.input().downcast_ref::<KvScanExec>().is_none() {
            return Ok(None);
        }
        (distance.column, Some(filter.predicate().clone()))
    } else {
        return Ok(None);
    };
    let [child] = plan.children()[..] else {
        return Ok(None);
    };
    let inner = Distance {
        column,
        metric: distance.metric,
        query: distance.query.clone(),
    };
    match swap_scan(child, &inner, fetch, predicate)? {
        Some(child) => Ok(Some(replace_children_if_necessary(
            plan.clone(),
            vec![child],
        )?)),
        None => Ok(None),
    }
}
