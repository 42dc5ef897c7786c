//! PostgreSQL raises 22003 on integer overflow (`2147483647 + 1`); DataFusion wraps around by default. This
//! pass rewrites the arithmetic of a physical plan's projections and filters to DataFusion's checked form
//! (`BinaryExpr::with_fail_on_overflow`), so an overflow is an error, never a wrong result.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::BinaryExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};

/// Rewrites `+`, `-` and `*` in every projection and filter of `plan` to fail on overflow.
pub fn checked_arithmetic(
    plan: Arc<dyn ExecutionPlan>,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
            let mut changed = false;
            let mut expressions = Vec::with_capacity(projection.expr().len());
            for item in projection.expr() {
                let rewritten = checked(item.expr.clone())?;
                changed |= rewritten.transformed;
                expressions.push(ProjectionExpr {
                    expr: rewritten.data,
                    alias: item.alias.clone(),
                });
            }
            if changed {
                let replacement = ProjectionExec::try_new(expressions, projection.input().clone())?;
                return Ok(Transformed::yes(
                    Arc::new(replacement) as Arc<dyn ExecutionPlan>
                ));
            }
        } else if let Some(filter) = node.downcast_ref::<FilterExec>() {
            let rewritten = checked(filter.predicate().clone())?;
            if rewritten.transformed {
                let replacement = FilterExecBuilder::from(filter)
                    .with_predicate(rewritten.data)
                    .build()?;
                return Ok(Transformed::yes(
                    Arc::new(replacement) as Arc<dyn ExecutionPlan>
                ));
            }
        }
        Ok(Transformed::no(node))
    })
    .map(|transformed| transformed.data)
}

fn checked(
    expr: Arc<dyn PhysicalExpr>,
) -> datafusion::error::Result<Transformed<Arc<dyn PhysicalExpr>>> {
    expr.transform_up(|node| {
        if let Some(binary) = node.downcast_ref::<BinaryExpr>()
            && matches!(
                binary.op(),
                Operator::Plus | Operator::Minus | Operator::Multiply
            )
        {
            let replacement =
                BinaryExpr::new(binary.left().clone(), *binary.op(), binary.right().clone())
                    .with_fail_on_overflow(true);
            return Ok(Transformed::yes(
                Arc::new(replacement) as Arc<dyn PhysicalExpr>
            ));
        }
        Ok(Transformed::no(node))
    })
}
