//! `ORDER BY` served by key order: a physical optimizer rule that lets a sort's input scan read the
//! rows already in the order asked for.
//!
//! A [`KvScanExec`] declares the order its rows come in (its key order: the primary key's, or an
//! index's columns then the primary key's), and DataFusion's own `EnforceSorting` drops every sort
//! that order already satisfies. What DataFusion cannot do is choose *another* access path for the
//! sake of an order, because a table provider's `scan` is not told the order wanted. This rule does
//! that: for each `SortExec` whose input is a chain of order-preserving operators (projections that
//! pass columns through, filters) ending at a `KvScanExec`, it asks the scan for
//! an access path (or the same one read backwards) whose order satisfies the sort, and swaps it in;
//! the sort itself is then removed by `EnforceSorting`, and its `LIMIT` pushed into the scan, which
//! stops reading after that many rows.
//!
//! It runs first among the physical optimizer rules, before repartitioning splits the chain.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;

use super::provider::KvScanExec;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct ScanOrder;

impl PhysicalOptimizerRule for ScanOrder {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|plan| {
            let Some(sort) = plan.downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(plan));
            };
            let mut requested = Vec::new();
            for sort_expression in sort.expr().iter() {
                let Some(column) = sort_expression.expr.downcast_ref::<Column>() else {
                    return Ok(Transformed::no(plan));
                };
                requested.push((column.index(), sort_expression.options));
            }
            match reorder(sort.input(), &requested, sort.fetch().is_some())? {
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
        "qubedb_scan_order"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` with its scan reading in the order `requested` (positions in `plan`'s output), if the
/// chain down to the scan preserves order and the scan can read that way.
fn reorder(
    plan: &Arc<dyn ExecutionPlan>,
    requested: &[(usize, SortOptions)],
    limited: bool,
) -> datafusion::error::Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(scan) = plan.downcast_ref::<KvScanExec>() {
        return Ok(scan
            .ordered_for(requested, limited)
            .map(|scan| Arc::new(scan) as Arc<dyn ExecutionPlan>));
    }
    let child_requested: Vec<(usize, SortOptions)> =
        if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
            let mut mapped = Vec::with_capacity(requested.len());
            for &(position, options) in requested {
                let expression = &projection.expr()[position].expr;
                let Some(column) = expression.downcast_ref::<Column>() else {
                    return Ok(None);
                };
                mapped.push((column.index(), options));
            }
            mapped
        } else if let Some(filter) = plan.downcast_ref::<FilterExec>() {
            match filter.projection() {
                None => requested.to_vec(),
                Some(projection) => requested
                    .iter()
                    .map(|&(position, options)| (projection[position], options))
                    .collect(),
            }
        } else {
            return Ok(None);
        };
    let [child] = plan.children()[..] else {
        return Ok(None);
    };
    match reorder(child, &child_requested, limited)? {
        Some(child) => Ok(Some(replace_children_if_necessary(
            plan.clone(),
            vec![child],
        )?)),
        None => Ok(None),
    }
}
