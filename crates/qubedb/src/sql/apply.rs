//! Subqueries DataFusion cannot turn into joins, run once per outer row (PostgreSQL's "SubPlan").
//!
//! DataFusion decorrelates the subqueries it can (uncorrelated scalar subqueries, equality-correlated
//! scalar subqueries, EXISTS / IN as conjuncts of a WHERE clause) into joins. What is left after its
//! optimizer — `(SELECT count(*) FROM t1 x WHERE x.c > t1.c)`, `1 IN (SELECT ...)` in a select list,
//! `EXISTS (...)` under an OR — its physical planner refuses. PostgreSQL runs such a subquery as a
//! SubPlan: once per outer row, with the outer row's values as parameters. This module does the same:
//!
//! - [`ApplySubqueries`], an optimizer rule that runs after DataFusion's own, replaces each remaining
//!   subquery expression in a Projection, Filter or Sort with a column `__qubedb_apply_N` computed by an
//!   [`ApplyNode`] inserted below that node (and restores the node's output columns above it);
//! - [`ApplyPlanner`] plans the node as an [`ApplyExec`], which for every input row substitutes the
//!   outer columns the subquery refers to as literals, plans the subquery (so key ranges apply to the
//!   substituted values) and runs it: a scalar subquery yields its single value (NULL for no row,
//!   21000 for more than one), EXISTS whether a row came back, `x IN (...)` the three-valued answer.
//!
//! Results are memoised per distinct tuple of outer values within one execution, so a subquery
//! correlated on a low-cardinality column runs once per value rather than once per row.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, new_empty_array};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DFSchemaRef, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::check_subquery_expr;
use datafusion::logical_expr::expr::{Exists, InSubquery};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, Filter, LogicalPlan, LogicalPlanBuilder, Projection, Sort, Subquery,
    UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::{AnalyzerRule, ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;

use crate::error::{Error, to_datafusion};
use crate::session::Shared;
use crate::sql::lateral::LateralNode;
use crate::sql::provider::{PinnedView, current_view};

/// Prefix of the columns an [`ApplyNode`] adds, numbered from 0 in each node. The node directly
/// above an Apply projects them away, so numbers never meet across nodes.
const APPLY_COLUMN_PREFIX: &str = "__qubedb_apply_";

/// Beyond this many distinct outer-value tuples, the memo of one subquery is cleared.
const MEMO_ENTRIES_MAX: usize = 10_000;

/// True for a subquery expression DataFusion's physical planner cannot run itself.
fn is_unplannable_subquery(expr: &Expr) -> bool {
    match expr {
        Expr::ScalarSubquery(subquery) => !subquery.outer_ref_columns.is_empty(),
        Expr::Exists(_) | Expr::InSubquery(_) => true,
        _ => false,
    }
}

/// The subquery expressions of a plan node.
fn subquery_expressions(node: &LogicalPlan) -> Vec<Expr> {
    let mut found = Vec::new();
    let _ = node.apply_expressions(|expr| {
        expr.apply(|inner| {
            if let Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) = inner {
                found.push(inner.clone());
                return Ok(TreeNodeRecursion::Jump);
            }
            Ok(TreeNodeRecursion::Continue)
        })
    });
    found
}

fn contains_any(expr: &Expr, chosen: &[Expr]) -> bool {
    expr.exists(|node| Ok(chosen.contains(node)))
        .expect("the visitor never fails")
}

/// Replaces every chosen subquery in `expr` by a fresh apply column, recording it in `found`.
fn extract_subqueries(
    expr: Expr,
    chosen: &[Expr],
    found: &mut Vec<(String, Expr)>,
) -> Result<Expr> {
    let transformed = expr.transform_down(|node| {
        if !chosen.contains(&node) {
            return Ok(Transformed::no(node));
        }
        let name = format!("{APPLY_COLUMN_PREFIX}{}", found.len());
        found.push((name.clone(), node));
        Ok(Transformed::new(
            Expr::Column(Column::new_unqualified(name)),
            true,
            TreeNodeRecursion::Jump,
        ))
    })?;
    Ok(transformed.data)
}

/// Rewrites `expr` and keeps its output name, so the node's schema does not change.
fn extract_keeping_name(
    expr: Expr,
    chosen: &[Expr],
    found: &mut Vec<(String, Expr)>,
) -> Result<Expr> {
    if !contains_any(&expr, chosen) {
        return Ok(expr);
    }
    let (qualifier, name) = expr.qualified_name();
    let rewritten = extract_subqueries(expr.unalias(), chosen, found)?;
    Ok(rewritten.alias_qualified(qualifier, name))
}

/// A projection of `plan`'s output onto the columns of `schema` (drops the apply columns again).
fn restore_columns(plan: LogicalPlan, schema: &DFSchema) -> Result<LogicalPlan> {
    let columns = schema.columns().into_iter().map(Expr::Column).collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(plan),
    )?))
}

/// Moves the `chosen` subquery expressions of a Projection, Filter or Sort into an [`ApplyNode`]
/// below it; other nodes are left as they are.
fn apply_chosen(plan: LogicalPlan, chosen: &[Expr]) -> Result<Transformed<LogicalPlan>> {
    if chosen.is_empty() {
        return Ok(Transformed::no(plan));
    }
    match plan {
        LogicalPlan::Projection(projection) => {
            let mut found = Vec::new();
            let expressions = projection
                .expr
                .into_iter()
                .map(|expr| extract_keeping_name(expr, chosen, &mut found))
                .collect::<Result<Vec<_>>>()?;
            let apply = ApplyNode::try_new(Arc::unwrap_or_clone(projection.input), found)?;
            Ok(Transformed::yes(LogicalPlan::Projection(
                Projection::try_new(expressions, Arc::new(apply.into_plan()))?,
            )))
        }
        LogicalPlan::Filter(filter) => {
            let schema = filter.input.schema().clone();
            let mut found = Vec::new();
            let predicate = extract_subqueries(filter.predicate, chosen, &mut found)?;
            let apply = ApplyNode::try_new(Arc::unwrap_or_clone(filter.input), found)?;
            let filtered =
                LogicalPlan::Filter(Filter::try_new(predicate, Arc::new(apply.into_plan()))?);
            Ok(Transformed::yes(restore_columns(filtered, &schema)?))
        }
        LogicalPlan::Sort(sort) => {
            let schema = sort.input.schema().clone();
            let mut found = Vec::new();
            let expressions = sort
                .expr
                .into_iter()
                .map(|mut sort_expr| {
                    sort_expr.expr = extract_subqueries(sort_expr.expr, chosen, &mut found)?;
                    Ok(sort_expr)
                })
                .collect::<Result<Vec<_>>>()?;
            let apply = ApplyNode::try_new(Arc::unwrap_or_clone(sort.input), found)?;
            let sorted = LogicalPlan::Sort(Sort {
                expr: expressions,
                input: Arc::new(apply.into_plan()),
                fetch: sort.fetch,
            });
            Ok(Transformed::yes(restore_columns(sorted, &schema)?))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// The optimizer rule: after DataFusion's decorrelation, whatever subquery is left runs per row.
#[derive(Debug, Default)]
pub(crate) struct ApplySubqueries;

impl OptimizerRule for ApplySubqueries {
    fn name(&self) -> &str {
        "qubedb_apply_subqueries"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let chosen: Vec<Expr> = subquery_expressions(&plan)
            .into_iter()
            .filter(is_unplannable_subquery)
            .collect();
        apply_chosen(plan, &chosen)
    }
}

/// The analyzer rule: subqueries DataFusion's analyzer would reject outright — a correlated scalar
/// subquery that is not an aggregate (PostgreSQL fails only if it returns two rows), a correlated
/// subquery in ORDER BY — become per-row subqueries before that check, so they run at all.
#[derive(Debug, Default)]
pub(crate) struct ApplyRejectedSubqueries;

impl AnalyzerRule for ApplyRejectedSubqueries {
    fn name(&self) -> &str {
        "qubedb_apply_rejected_subqueries"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let rewritten = plan.transform_up_with_subqueries(|node| {
            let chosen: Vec<Expr> = subquery_expressions(&node)
                .into_iter()
                .filter(|expr| {
                    let inner = match expr {
                        Expr::ScalarSubquery(subquery) => &subquery.subquery,
                        Expr::Exists(exists) => &exists.subquery.subquery,
                        Expr::InSubquery(in_subquery) => &in_subquery.subquery.subquery,
                        _ => return false,
                    };
                    check_subquery_expr(&node, inner, expr).is_err()
                })
                .collect();
            apply_chosen(node, &chosen)
        })?;
        Ok(rewritten.data)
    }
}

/// The logical node: its input's columns plus one column per subquery expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ApplyNode {
    input: LogicalPlan,
    names: Vec<String>,
    subqueries: Vec<Expr>,
    schema: DFSchemaRef,
}

impl PartialOrd for ApplyNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.input.partial_cmp(&other.input) {
            Some(std::cmp::Ordering::Equal) => self.subqueries.partial_cmp(&other.subqueries),
            ordering => ordering,
        }
    }
}

impl ApplyNode {
    fn try_new(input: LogicalPlan, found: Vec<(String, Expr)>) -> Result<ApplyNode> {
        let (names, subqueries): (Vec<String>, Vec<Expr>) = found.into_iter().unzip();
        let fields = names
            .iter()
            .zip(&subqueries)
            .map(|(name, expr)| Ok(Field::new(name, result_type(expr)?, true)))
            .collect::<Result<Vec<_>>>()?;
        let added = DFSchema::from_unqualified_fields(fields.into(), HashMap::new())?;
        let schema = Arc::new(input.schema().join(&added)?);
        Ok(ApplyNode {
            input,
            names,
            subqueries,
            schema,
        })
    }

    fn into_plan(self) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(self),
        })
    }

    /// This node with the outer columns in `values` replaced by literals in its subqueries (a
    /// subquery nested in a per-row subquery may refer to the outer query too).
    fn substituted(&self, values: &HashMap<Column, ScalarValue>) -> Result<ApplyNode> {
        let found = self
            .subqueries
            .iter()
            .map(|expr| {
                let mut expr = expr.clone();
                let subquery = match &mut expr {
                    Expr::ScalarSubquery(subquery) => subquery,
                    Expr::Exists(exists) => &mut exists.subquery,
                    Expr::InSubquery(in_subquery) => {
                        let value = std::mem::replace(
                            in_subquery.expr.as_mut(),
                            Expr::Literal(ScalarValue::Null, None),
                        );
                        *in_subquery.expr = substitute_expr(value, values)?.data;
                        &mut in_subquery.subquery
                    }
                    _ => return Ok(expr),
                };
                subquery.subquery = Arc::new(substitute(&subquery.subquery, values)?);
                *subquery = narrow(subquery.clone(), values);
                Ok(expr)
            })
            .collect::<Result<Vec<_>>>()?;
        ApplyNode::try_new(
            self.input.clone(),
            self.names.iter().cloned().zip(found).collect(),
        )
    }
}

/// The type of the value a subquery expression yields.
fn result_type(expr: &Expr) -> Result<ArrowType> {
    match expr {
        Expr::ScalarSubquery(subquery) => {
            let schema = subquery.subquery.schema();
            if schema.fields().len() != 1 {
                return Err(to_datafusion(Error::user(
                    "42601",
                    "subquery must return only one column",
                )));
            }
            Ok(schema.field(0).data_type().clone())
        }
        _ => Ok(ArrowType::Boolean),
    }
}

impl UserDefinedLogicalNodeCore for ApplyNode {
    fn name(&self) -> &str {
        "Apply"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    /// None: the subqueries stay opaque to DataFusion's optimizer and invariant checks, which would
    /// otherwise reject correlated subqueries outside Projection / Filter / Aggregate. Each one is
    /// optimized when it runs, with the outer values in place.
    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "Apply: ")?;
        for (index, (name, expr)) in self.names.iter().zip(&self.subqueries).enumerate() {
            if index > 0 {
                write!(formatter, ", ")?;
            }
            write!(formatter, "{name} := {}", describe(expr))?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let input = inputs.into_iter().next().ok_or_else(|| {
            DataFusionError::Internal("Apply takes exactly one input".to_string())
        })?;
        let found = self
            .names
            .iter()
            .cloned()
            .zip(self.subqueries.iter().cloned())
            .collect();
        ApplyNode::try_new(input, found)
    }
}

fn describe(expr: &Expr) -> &'static str {
    match expr {
        Expr::ScalarSubquery(_) => "scalar subquery",
        Expr::Exists(Exists { negated: false, .. }) => "EXISTS subquery",
        Expr::Exists(Exists { negated: true, .. }) => "NOT EXISTS subquery",
        Expr::InSubquery(InSubquery { negated: false, .. }) => "IN subquery",
        _ => "NOT IN subquery",
    }
}

/// The query planner: DataFusion's, plus [`ApplyPlanner`] for [`ApplyNode`].
pub(crate) struct QubeQueryPlanner {
    shared: Arc<Shared>,
}

impl fmt::Debug for QubeQueryPlanner {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("QubeQueryPlanner")
    }
}

#[async_trait]
impl QueryPlanner for QubeQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let apply = ApplyPlanner {
            shared: self.shared.clone(),
        };
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(apply)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}

/// Plans an [`ApplyNode`] as an [`ApplyExec`] and a [`LateralNode`] as a `LateralExec`.
struct ApplyPlanner {
    shared: Arc<Shared>,
}

#[async_trait]
impl ExtensionPlanner for ApplyPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn datafusion::catalog::Session,
        planning_context: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let lateral = node.as_any().downcast_ref::<LateralNode>();
        let apply = node.as_any().downcast_ref::<ApplyNode>();
        if lateral.is_none() && apply.is_none() {
            return Ok(None);
        }
        let mut state = session
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| {
                DataFusionError::Internal("Apply needs DataFusion's SessionState".to_string())
            })?
            .clone();
        // The subqueries are planned while the statement runs, when an autocommit statement's
        // transaction is gone: they read the view the statement started with.
        let view = current_view(&self.shared, session)?;
        state.config_mut().set_extension(Arc::new(PinnedView(view)));
        let (Some(logical_input), Some(input)) = (logical_inputs.first(), physical_inputs.first())
        else {
            return Err(DataFusionError::Internal(
                "Apply takes exactly one input".to_string(),
            ));
        };
        if let Some(lateral) = lateral {
            let schema = lateral.output_schema();
            let exec = lateral.plan(input.clone(), state, |condition| {
                planner.create_physical_expr(condition, schema, session, planning_context)
            })?;
            return Ok(Some(Arc::new(exec)));
        }
        let Some(node) = apply else {
            return Ok(None);
        };
        let input_schema = logical_input.schema();
        let subqueries = node
            .subqueries
            .iter()
            .map(|expr| {
                PreparedSubquery::try_new(expr, input_schema, |value| {
                    planner.create_physical_expr(value, input_schema, session, planning_context)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Arc::new(ApplyExec::new(
            input.clone(),
            Arc::new(node.schema.as_arrow().clone()),
            Arc::new(ApplyState { state, subqueries }),
        ))))
    }
}

/// What a subquery expression makes of the subquery's rows.
#[derive(Debug)]
enum SubqueryKind {
    Scalar,
    Exists {
        negated: bool,
    },
    In {
        value: Arc<dyn PhysicalExpr>,
        negated: bool,
    },
}

/// A subquery ready to run per row: its plan and which input columns it reads from the outer row.
#[derive(Debug)]
struct PreparedSubquery {
    kind: SubqueryKind,
    plan: LogicalPlan,
    /// The outer columns the plan refers to, with their index in the input.
    outer: Vec<(Column, usize)>,
    data_type: ArrowType,
}

impl PreparedSubquery {
    fn try_new(
        expr: &Expr,
        input_schema: &DFSchema,
        plan_value: impl FnOnce(&Expr) -> Result<Arc<dyn PhysicalExpr>>,
    ) -> Result<PreparedSubquery> {
        let data_type = result_type(expr)?;
        let (kind, subquery) = match expr {
            Expr::ScalarSubquery(subquery) => (SubqueryKind::Scalar, subquery),
            Expr::Exists(exists) => (
                SubqueryKind::Exists {
                    negated: exists.negated,
                },
                &exists.subquery,
            ),
            Expr::InSubquery(in_subquery) => (
                SubqueryKind::In {
                    value: plan_value(&in_subquery.expr)?,
                    negated: in_subquery.negated,
                },
                &in_subquery.subquery,
            ),
            other => {
                return Err(DataFusionError::Internal(format!(
                    "Apply given a non-subquery expression {other}"
                )));
            }
        };
        let plan = match kind {
            SubqueryKind::Exists { .. } => {
                LogicalPlanBuilder::from(subquery.subquery.as_ref().clone())
                    .limit(0, Some(1))?
                    .build()?
            }
            _ => subquery.subquery.as_ref().clone(),
        };
        for reference in &subquery.outer_ref_columns {
            if let Expr::OuterReferenceColumn(_, column) = reference
                && input_schema.maybe_index_of_column(column).is_none()
            {
                return Err(to_datafusion(Error::not_supported(format!(
                    "a subquery here referring to outer column {column} (it is not among the columns of the query level it belongs to)"
                ))));
            }
        }
        let mut outer = Vec::new();
        let mut seen = HashSet::new();
        collect_outer_columns(&plan, &mut |column| {
            if let Some(index) = input_schema.maybe_index_of_column(column)
                && seen.insert(column.clone())
            {
                outer.push((column.clone(), index));
            }
        })?;
        Ok(PreparedSubquery {
            kind,
            plan,
            outer,
            data_type,
        })
    }
}

/// Calls `found` for every outer column referenced anywhere in `plan`, nested subqueries included
/// (those an [`ApplyNode`] holds too, which DataFusion's tree walks do not see).
pub(crate) fn collect_outer_columns(
    plan: &LogicalPlan,
    found: &mut impl FnMut(&Column),
) -> Result<()> {
    plan.apply_with_subqueries(|node| {
        if let Some(apply) = as_apply(node) {
            for expr in &apply.subqueries {
                if let Expr::InSubquery(in_subquery) = expr {
                    outer_columns_of(&in_subquery.expr, found);
                }
                if let Some(subquery) = subquery_of(expr) {
                    collect_outer_columns(&subquery.subquery, found)?;
                }
            }
        }
        node.apply_expressions(|expr| {
            outer_columns_of(expr, found);
            Ok(TreeNodeRecursion::Continue)
        })
    })?;
    Ok(())
}

/// Calls `found` for the outer columns of `expr` itself (not of the subqueries in it).
fn outer_columns_of(expr: &Expr, found: &mut impl FnMut(&Column)) {
    let _ = expr.apply(|inner| {
        if let Expr::OuterReferenceColumn(_, column) = inner {
            found(column);
        }
        Ok(TreeNodeRecursion::Continue)
    });
}

/// The [`ApplyNode`] a plan node is, if it is one.
fn as_apply(node: &LogicalPlan) -> Option<&ApplyNode> {
    match node {
        LogicalPlan::Extension(extension) => extension.node.as_any().downcast_ref::<ApplyNode>(),
        _ => None,
    }
}

/// The subquery of a subquery expression.
fn subquery_of(expr: &Expr) -> Option<&Subquery> {
    match expr {
        Expr::ScalarSubquery(subquery) => Some(subquery),
        Expr::Exists(exists) => Some(&exists.subquery),
        Expr::InSubquery(in_subquery) => Some(&in_subquery.subquery),
        _ => None,
    }
}

/// Replaces the outer columns in `values` by literals throughout `plan`.
pub(crate) fn substitute(
    plan: &LogicalPlan,
    values: &HashMap<Column, ScalarValue>,
) -> Result<LogicalPlan> {
    let substituted = plan.clone().transform_up_with_subqueries(|node| {
        let node = match node {
            LogicalPlan::Subquery(subquery) => LogicalPlan::Subquery(narrow(subquery, values)),
            other => match as_apply(&other) {
                Some(apply) => apply.substituted(values)?.into_plan(),
                None => other,
            },
        };
        node.map_expressions(|expr| substitute_expr(expr, values))
    })?;
    Ok(substituted.data)
}

/// Replaces the outer columns in `values` by literals in `expr` itself, and drops them from the
/// outer references of the subqueries in it (whose plans `substitute` walks on its own).
fn substitute_expr(expr: Expr, values: &HashMap<Column, ScalarValue>) -> Result<Transformed<Expr>> {
    expr.transform(|inner| match inner {
        Expr::OuterReferenceColumn(field, column) => match values.get(&column) {
            Some(value) => Ok(Transformed::yes(Expr::Literal(value.clone(), None))),
            None => Ok(Transformed::no(Expr::OuterReferenceColumn(field, column))),
        },
        Expr::ScalarSubquery(subquery) => Ok(Transformed::yes(Expr::ScalarSubquery(narrow(
            subquery, values,
        )))),
        Expr::Exists(mut exists) => {
            exists.subquery = narrow(exists.subquery, values);
            Ok(Transformed::yes(Expr::Exists(exists)))
        }
        Expr::InSubquery(mut in_subquery) => {
            in_subquery.subquery = narrow(in_subquery.subquery, values);
            Ok(Transformed::yes(Expr::InSubquery(in_subquery)))
        }
        other => Ok(Transformed::no(other)),
    })
}

/// Drops the substituted columns from a nested subquery's list of outer references, so DataFusion
/// sees it as uncorrelated once nothing outer is left.
fn narrow(mut subquery: Subquery, values: &HashMap<Column, ScalarValue>) -> Subquery {
    subquery.outer_ref_columns.retain(|expr| match expr {
        Expr::OuterReferenceColumn(_, column) => !values.contains_key(column),
        _ => true,
    });
    subquery
}

/// What every partition of an [`ApplyExec`] shares.
#[derive(Debug)]
struct ApplyState {
    state: SessionState,
    subqueries: Vec<PreparedSubquery>,
}

impl ApplyState {
    /// Runs subquery `index` for one outer row.
    async fn run(&self, index: usize, row: &HashMap<Column, ScalarValue>) -> Result<Answer> {
        let subquery = &self.subqueries[index];
        let plan = substitute(&subquery.plan, row)?;
        let physical = self.state.create_physical_plan(&plan).await?;
        let batches = datafusion::physical_plan::collect(physical, self.state.task_ctx()).await?;
        match &subquery.kind {
            SubqueryKind::Scalar => {
                let mut rows = batches.iter().filter(|batch| batch.num_rows() > 0);
                match (rows.next(), rows.next()) {
                    (None, _) => Ok(Answer::Value(ScalarValue::try_from(&subquery.data_type)?)),
                    (Some(batch), None) if batch.num_rows() == 1 => Ok(Answer::Value(
                        ScalarValue::try_from_array(batch.column(0), 0)?,
                    )),
                    _ => Err(to_datafusion(Error::user(
                        "21000",
                        "more than one row returned by a subquery used as an expression",
                    ))),
                }
            }
            SubqueryKind::Exists { negated } => {
                let found = batches.iter().any(|batch| batch.num_rows() > 0);
                Ok(Answer::Value(ScalarValue::Boolean(Some(found != *negated))))
            }
            SubqueryKind::In { .. } => {
                let mut members = Vec::new();
                for batch in &batches {
                    for row in 0..batch.num_rows() {
                        members.push(ScalarValue::try_from_array(batch.column(0), row)?);
                    }
                }
                Ok(Answer::Members(Arc::new(members)))
            }
        }
    }
}

/// What one run of a subquery gave: the expression's value, or the rows of an IN subquery.
#[derive(Clone)]
enum Answer {
    Value(ScalarValue),
    Members(Arc<Vec<ScalarValue>>),
}

/// `value IN members` with SQL's three-valued logic.
fn in_list(value: &ScalarValue, members: &[ScalarValue], negated: bool) -> Result<ScalarValue> {
    if members.is_empty() {
        return Ok(ScalarValue::Boolean(Some(negated)));
    }
    if value.is_null() {
        return Ok(ScalarValue::Boolean(None));
    }
    let mut saw_null = false;
    for member in members {
        if member.is_null() {
            saw_null = true;
        } else if equal_values(value, member)? {
            return Ok(ScalarValue::Boolean(Some(!negated)));
        }
    }
    Ok(ScalarValue::Boolean(if saw_null {
        None
    } else {
        Some(negated)
    }))
}

/// Equality of two non-null values, casting the right one to the left one's type when they differ.
fn equal_values(left: &ScalarValue, right: &ScalarValue) -> Result<bool> {
    if left.data_type() == right.data_type() {
        return Ok(left == right);
    }
    let right = right.cast_to(&left.data_type())?;
    Ok(*left == right)
}

/// The physical operator; see the module documentation.
#[derive(Debug)]
pub(crate) struct ApplyExec {
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    shared: Arc<ApplyState>,
    properties: Arc<PlanProperties>,
}

impl ApplyExec {
    fn new(input: Arc<dyn ExecutionPlan>, schema: SchemaRef, shared: Arc<ApplyState>) -> ApplyExec {
        // The input's columns keep their positions, so its orderings hold for the output too.
        let orderings = input.output_ordering().into_iter().cloned();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new_with_orderings(schema.clone(), orderings),
            input.output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        ApplyExec {
            input,
            schema,
            shared,
            properties,
        }
    }
}

impl DisplayAs for ApplyExec {
    fn fmt_as(&self, _format: DisplayFormatType, formatter: &mut fmt::Formatter) -> fmt::Result {
        let kinds: Vec<&str> = self
            .shared
            .subqueries
            .iter()
            .map(|subquery| match subquery.kind {
                SubqueryKind::Scalar => "scalar",
                SubqueryKind::Exists { .. } => "exists",
                SubqueryKind::In { .. } => "in",
            })
            .collect();
        write!(
            formatter,
            "ApplyExec: per-row subqueries=[{}]",
            kinds.join(", ")
        )
    }
}

impl ExecutionPlan for ApplyExec {
    fn name(&self) -> &str {
        "ApplyExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        visitor: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for subquery in &self.shared.subqueries {
            if let SubqueryKind::In { value, .. } = &subquery.kind
                && visitor(value)? == TreeNodeRecursion::Stop
            {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.into_iter().next().ok_or_else(|| {
            DataFusionError::Internal("ApplyExec takes exactly one child".to_string())
        })?;
        Ok(Arc::new(ApplyExec::new(
            input,
            self.schema.clone(),
            self.shared.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let evaluator = Evaluator {
            shared: self.shared.clone(),
            schema: self.schema.clone(),
            memos: self.shared.subqueries.iter().map(|_| Memo::new()).collect(),
        };
        let stream = futures::stream::unfold(
            (input, evaluator),
            |(mut input, mut evaluator)| async move {
                let batch = input.next().await?;
                let result = match batch {
                    Ok(batch) => evaluator.extend(batch).await,
                    Err(error) => Err(error),
                };
                Some((result, (input, evaluator)))
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}

/// A memo key: the outer values one subquery read.
#[derive(PartialEq, Eq)]
struct MemoKey(Vec<ScalarValue>);

impl Hash for MemoKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// What a per-row plan gave, by the outer values it read (shared by [`ApplyExec`] and
/// `sql/lateral.rs`); cleared when it holds [`MEMO_ENTRIES_MAX`] entries.
pub(crate) struct Memo<V> {
    entries: HashMap<MemoKey, V>,
}

impl<V: Clone> Memo<V> {
    pub(crate) fn new() -> Memo<V> {
        Memo {
            entries: HashMap::new(),
        }
    }

    /// The answer for row `row` of `batch`, whose columns `outer` (name, index) the plan reads: the
    /// one remembered for the same values, or `run`'s with the values by column.
    pub(crate) async fn get_or_run<F, Fut>(
        &mut self,
        outer: &[(Column, usize)],
        batch: &RecordBatch,
        row: usize,
        run: F,
    ) -> Result<V>
    where
        F: FnOnce(HashMap<Column, ScalarValue>) -> Fut,
        Fut: std::future::Future<Output = Result<V>>,
    {
        let key = MemoKey(
            outer
                .iter()
                .map(|(_, column)| ScalarValue::try_from_array(batch.column(*column), row))
                .collect::<Result<Vec<_>>>()?,
        );
        if let Some(answer) = self.entries.get(&key) {
            return Ok(answer.clone());
        }
        let values = outer
            .iter()
            .map(|(column, _)| column.clone())
            .zip(key.0.iter().cloned())
            .collect();
        let answer = run(values).await?;
        if self.entries.len() >= MEMO_ENTRIES_MAX {
            self.entries.clear();
        }
        self.entries.insert(key, answer.clone());
        Ok(answer)
    }
}

/// One partition's state: the memo of each subquery.
struct Evaluator {
    shared: Arc<ApplyState>,
    schema: SchemaRef,
    memos: Vec<Memo<Answer>>,
}

impl Evaluator {
    /// The input batch with one column per subquery appended.
    async fn extend(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut columns = batch.columns().to_vec();
        let shared = self.shared.clone();
        for (index, subquery) in shared.subqueries.iter().enumerate() {
            let value_array = match &subquery.kind {
                SubqueryKind::In { value, .. } => {
                    Some(value.evaluate(&batch)?.into_array(batch.num_rows())?)
                }
                _ => None,
            };
            let mut results = Vec::with_capacity(batch.num_rows());
            for row in 0..batch.num_rows() {
                let answer = self.memos[index]
                    .get_or_run(&subquery.outer, &batch, row, |values| {
                        let shared = &shared;
                        async move { shared.run(index, &values).await }
                    })
                    .await?;
                let result = match (answer, &subquery.kind, &value_array) {
                    (Answer::Value(value), _, _) => value,
                    (Answer::Members(members), SubqueryKind::In { negated, .. }, Some(values)) => {
                        let value = ScalarValue::try_from_array(values, row)?;
                        in_list(&value, &members, *negated)?
                    }
                    (Answer::Members(_), _, _) => {
                        return Err(DataFusionError::Internal(
                            "subquery rows given to a non-IN subquery".to_string(),
                        ));
                    }
                };
                results.push(result);
            }
            columns.push(if results.is_empty() {
                new_empty_array(&subquery.data_type)
            } else {
                ScalarValue::iter_to_array(results)?
            });
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// Installs the rules and the planner in a session's state builder.
pub(crate) fn install(
    builder: datafusion::execution::session_state::SessionStateBuilder,
    shared: Arc<Shared>,
) -> datafusion::execution::session_state::SessionStateBuilder {
    let mut builder = builder;
    // Array literals must become lists before DataFusion builds the comparison.
    crate::sql::jsonb_planner::install_planners(&mut builder);
    // Before the defaults: a scan's access path is chosen for an ORDER BY before repartitioning and
    // sort enforcement (see `sql/scan_order.rs`).
    let mut physical_rules =
        datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
    physical_rules.insert(0, Arc::new(crate::sql::scan_order::ScanOrder));
    physical_rules.insert(0, Arc::new(crate::sql::vector_scan::VectorOrder));
    // Right after DataFusion's own decorrelation of LATERAL joins, before projection pruning drops
    // the left columns only the right side's outer references read (see `sql/lateral.rs`).
    let mut logical_rules = datafusion::optimizer::Optimizer::new().rules;
    let after_lateral = logical_rules
        .iter()
        .position(|rule| rule.name() == "decorrelate_lateral_join")
        .map_or(0, |index| index + 1);
    logical_rules.insert(after_lateral, Arc::new(crate::sql::lateral::LateralJoins));
    // First: IN lists of vectors must be typed before DataFusion's type coercion.
    let mut analyzer_rules = datafusion::optimizer::Analyzer::new().rules;
    analyzer_rules.insert(0, Arc::new(crate::sql::vector_planner::VectorInLists));
    builder
        .with_analyzer_rules(analyzer_rules)
        .with_optimizer_rules(logical_rules)
        .with_physical_optimizer_rules(physical_rules)
        .with_analyzer_rule(Arc::new(ApplyRejectedSubqueries))
        .with_analyzer_rule(Arc::new(crate::sql::jsonb_planner::JsonbCasts))
        .with_analyzer_rule(Arc::new(crate::sql::sparse_vector::SparseOrder))
        .with_optimizer_rule(Arc::new(ApplySubqueries))
        .with_query_planner(Arc::new(QubeQueryPlanner { shared }))
}
