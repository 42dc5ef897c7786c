//! LATERAL subqueries DataFusion cannot decorrelate, run once per row of the join's left side.
//!
//! `FROM t CROSS JOIN LATERAL (SELECT ... ORDER BY val <-> t.val LIMIT 1) s` refers to `t` from
//! inside the subquery. DataFusion turns some such joins into ordinary ones (its
//! `decorrelate_lateral_join`); the rest — a LIMIT, an ORDER BY or an aggregate over the outer
//! reference, the nearest-neighbour join above — its physical planner refuses. PostgreSQL runs them
//! as a nested loop whose inner side is re-run with the outer row's values as parameters; this
//! module does the same:
//!
//! - [`LateralJoins`], an optimizer rule that runs right after DataFusion's decorrelation, replaces an INNER (or CROSS) or LEFT join whose right side still refers to the left side's
//!   columns by a [`LateralNode`] over the left side;
//! - [`LateralExec`] substitutes, for each left row, the left columns the right side reads as
//!   literals (the same substitution as the per-row subqueries of `sql/apply.rs`), plans and runs the
//!   right side (so an index on the substituted value applies, an HNSW index included), pairs the
//!   left row with each right row that meets the join condition, and for a LEFT join pads a left row
//!   that met none with NULLs.
//!
//! The right side's rows are memoised per distinct tuple of left values within one execution, as the
//! per-row subqueries are. A right side that also refers to a query level above the join is left to
//! DataFusion (which refuses it, as before): its plan would be hidden from that level's substitution.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array, new_empty_array, new_null_array,
};
use datafusion::arrow::compute::{concat, concat_batches, filter_record_batch, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::cast::as_boolean_array;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef, JoinType, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;

use crate::sql::apply::{Memo, collect_outer_columns, substitute};

/// The logical node: the join's left side, and its right side with the outer references in place.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct LateralNode {
    left: LogicalPlan,
    right: LogicalPlan,
    join_type: JoinType,
    /// The join's equalities and filter as one predicate over the join's output.
    condition: Option<Expr>,
    schema: DFSchemaRef,
}

impl PartialOrd for LateralNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.left.partial_cmp(&other.left) {
            Some(std::cmp::Ordering::Equal) => self.right.partial_cmp(&other.right),
            ordering => ordering,
        }
    }
}

/// True when `plan` refers to a column of `left` from inside a subquery.
fn refers_to(plan: &LogicalPlan, left: &LogicalPlan) -> Result<(bool, bool)> {
    let mut inside = false;
    let mut beyond = false;
    collect_outer_columns(plan, &mut |column| {
        if left.schema().maybe_index_of_column(column).is_some() {
            inside = true;
        } else {
            beyond = true;
        }
    })?;
    Ok((inside, beyond))
}

/// `plan` without its `Subquery` wrappers, which only mark where outer references may appear.
fn unwrap_subqueries(plan: LogicalPlan) -> Result<LogicalPlan> {
    let unwrapped = plan.transform_up(|node| match node {
        LogicalPlan::Subquery(subquery) => {
            Ok(Transformed::yes(Arc::unwrap_or_clone(subquery.subquery)))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(unwrapped.data)
}

/// The optimizer rule, placed right after DataFusion's `decorrelate_lateral_join` (what that rule
/// turned into an ordinary join stays one) and before `optimize_projections`, which would prune the
/// left columns that only the right side's outer references read.
#[derive(Debug, Default)]
pub(crate) struct LateralJoins;

impl OptimizerRule for LateralJoins {
    fn name(&self) -> &str {
        "qubedb_lateral_joins"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        rewrite_lateral_join(plan)
    }
}

/// Turns a join whose right side refers to its left side into a [`LateralNode`]; any other plan
/// node is returned as it is.
fn rewrite_lateral_join(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Join(join) = plan else {
        return Ok(Transformed::no(plan));
    };
    let (inside, beyond) = refers_to(&join.right, &join.left)?;
    // RIGHT and FULL joins with a LATERAL reference are refused by DataFusion's SQL planner.
    let supported = matches!(join.join_type, JoinType::Inner | JoinType::Left);
    if !inside || beyond || !supported {
        return Ok(Transformed::no(LogicalPlan::Join(join)));
    }
    let mut conjuncts: Vec<Expr> = join
        .on
        .into_iter()
        .map(|(left, right)| left.eq(right))
        .collect();
    conjuncts.extend(join.filter);
    let node = LateralNode {
        left: Arc::unwrap_or_clone(join.left),
        right: unwrap_subqueries(Arc::unwrap_or_clone(join.right))?,
        join_type: join.join_type,
        condition: conjunction(conjuncts),
        schema: join.schema,
    };
    Ok(Transformed::new(
        LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        }),
        true,
        TreeNodeRecursion::Jump,
    ))
}

impl UserDefinedLogicalNodeCore for LateralNode {
    fn name(&self) -> &str {
        "Lateral"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.left]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    /// None: the condition reads the right side's columns, which are not an input's, and the right
    /// side is optimized each time it runs, with the left row's values in place.
    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "Lateral: join_type={}", self.join_type)?;
        if let Some(condition) = &self.condition {
            write!(formatter, ", condition={condition}")?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let left = inputs.into_iter().next().ok_or_else(|| {
            DataFusionError::Internal("Lateral takes exactly one input".to_string())
        })?;
        Ok(LateralNode {
            left,
            ..self.clone()
        })
    }
}

impl LateralNode {
    /// The join's output: the left side's columns, then the right side's.
    pub(crate) fn output_schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    /// The physical operator, given the planned left side, the session to plan the right side in,
    /// and the planner of the join condition.
    pub(crate) fn plan(
        &self,
        left: Arc<dyn ExecutionPlan>,
        state: SessionState,
        plan_condition: impl FnOnce(&Expr) -> Result<Arc<dyn PhysicalExpr>>,
    ) -> Result<LateralExec> {
        let mut outer = Vec::new();
        collect_outer_columns(&self.right, &mut |column| {
            if let Some(index) = self.left.schema().maybe_index_of_column(column)
                && !outer.iter().any(|(known, _)| known == column)
            {
                outer.push((column.clone(), index));
            }
        })?;
        let condition = self.condition.as_ref().map(plan_condition).transpose()?;
        let schema: SchemaRef = Arc::new(self.schema.as_arrow().clone());
        let left_width = self.left.schema().fields().len();
        Ok(LateralExec::new(
            left,
            schema,
            Arc::new(LateralState {
                state,
                right: self.right.clone(),
                outer,
                condition,
                join_type: self.join_type,
                left_width,
            }),
        ))
    }
}

/// What every partition of a [`LateralExec`] shares.
#[derive(Debug)]
struct LateralState {
    state: SessionState,
    right: LogicalPlan,
    /// The left columns the right side reads, with their index in the left side's output.
    outer: Vec<(Column, usize)>,
    condition: Option<Arc<dyn PhysicalExpr>>,
    join_type: JoinType,
    /// How many of the output's columns are the left side's.
    left_width: usize,
}

impl LateralState {
    /// The right side's rows for one left row: how many, and one array per right column.
    async fn run(
        &self,
        values: &HashMap<Column, ScalarValue>,
        schema: &SchemaRef,
    ) -> Result<RightRows> {
        let plan = substitute(&self.right, values)?;
        let physical = self.state.create_physical_plan(&plan).await?;
        let batches = datafusion::physical_plan::collect(physical, self.state.task_ctx()).await?;
        let count = batches.iter().map(RecordBatch::num_rows).sum();
        let right_fields = &schema.fields()[self.left_width..];
        let columns = right_fields
            .iter()
            .enumerate()
            .map(|(index, field)| {
                let arrays: Vec<&dyn datafusion::arrow::array::Array> = batches
                    .iter()
                    .map(|batch| batch.column(index).as_ref())
                    .collect();
                let array = match arrays.as_slice() {
                    [] => new_empty_array(field.data_type()),
                    [one] => one.slice(0, one.len()),
                    many => concat(many)?,
                };
                if array.data_type() != field.data_type() {
                    return Err(DataFusionError::Internal(format!(
                        "LATERAL subquery column {} is {}, expected {}",
                        field.name(),
                        array.data_type(),
                        field.data_type()
                    )));
                }
                Ok(array)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new((count, columns)))
    }
}

/// The rows of a right side: how many, and its columns.
type RightRows = Arc<(usize, Vec<ArrayRef>)>;

/// The physical operator; see the module documentation.
#[derive(Debug)]
pub(crate) struct LateralExec {
    left: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    shared: Arc<LateralState>,
    properties: Arc<PlanProperties>,
}

impl LateralExec {
    fn new(
        left: Arc<dyn ExecutionPlan>,
        schema: SchemaRef,
        shared: Arc<LateralState>,
    ) -> LateralExec {
        // A left row's output rows are consecutive and the left columns come first, in place: the
        // left side's orderings hold for the output too.
        let orderings = left.output_ordering().into_iter().cloned();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new_with_orderings(schema.clone(), orderings),
            left.output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        LateralExec {
            left,
            schema,
            shared,
            properties,
        }
    }
}

impl DisplayAs for LateralExec {
    fn fmt_as(&self, _format: DisplayFormatType, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(
            formatter,
            "LateralExec: per-row subquery, join_type={}",
            self.shared.join_type
        )
    }
}

impl ExecutionPlan for LateralExec {
    fn name(&self) -> &str {
        "LateralExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        visitor: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        match &self.shared.condition {
            Some(condition) => visitor(condition),
            None => Ok(TreeNodeRecursion::Continue),
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let left = children.into_iter().next().ok_or_else(|| {
            DataFusionError::Internal("LateralExec takes exactly one child".to_string())
        })?;
        Ok(Arc::new(LateralExec::new(
            left,
            self.schema.clone(),
            self.shared.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.left.execute(partition, context)?;
        let joiner = Joiner {
            shared: self.shared.clone(),
            schema: self.schema.clone(),
            memo: Memo::new(),
        };
        let stream =
            futures::stream::unfold((input, joiner), |(mut input, mut joiner)| async move {
                let batch = input.next().await?;
                let result = match batch {
                    Ok(batch) => joiner.join(batch).await,
                    Err(error) => Err(error),
                };
                Some((result, (input, joiner)))
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}

/// One partition's state: the memo of right sides by left values.
struct Joiner {
    shared: Arc<LateralState>,
    schema: SchemaRef,
    memo: Memo<RightRows>,
}

impl Joiner {
    /// The output rows of one batch of left rows.
    async fn join(&mut self, left: RecordBatch) -> Result<RecordBatch> {
        let shared = self.shared.clone();
        let schema = self.schema.clone();
        let mut outputs = Vec::with_capacity(left.num_rows());
        for row in 0..left.num_rows() {
            let right = self
                .memo
                .get_or_run(&shared.outer, &left, row, |values| {
                    let (shared, schema) = (&shared, &schema);
                    async move { shared.run(&values, schema).await }
                })
                .await?;
            let matched = self.pair(&left, row, &right)?;
            if matched.num_rows() == 0 && shared.join_type == JoinType::Left {
                let mut padded = self.repeat_left(&left, row, 1)?;
                for field in &self.schema.fields()[shared.left_width..] {
                    padded.push(new_null_array(field.data_type(), 1));
                }
                let options = RecordBatchOptions::new().with_row_count(Some(1));
                outputs.push(RecordBatch::try_new_with_options(
                    self.schema.clone(),
                    padded,
                    &options,
                )?);
            } else {
                outputs.push(matched);
            }
        }
        Ok(concat_batches(&self.schema, &outputs)?)
    }

    /// Left row `row` once per right row, filtered by the join condition.
    fn pair(&self, left: &RecordBatch, row: usize, right: &RightRows) -> Result<RecordBatch> {
        let (count, right_columns) = right.as_ref();
        let count = *count;
        let mut columns = self.repeat_left(left, row, count)?;
        columns.extend(right_columns.iter().cloned());
        let options = RecordBatchOptions::new().with_row_count(Some(count));
        let paired = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        let Some(condition) = &self.shared.condition else {
            return Ok(paired);
        };
        let mask = condition.evaluate(&paired)?.into_array(count)?;
        Ok(filter_record_batch(&paired, as_boolean_array(&mask)?)?)
    }

    /// The left side's columns of row `row`, repeated `count` times.
    fn repeat_left(&self, left: &RecordBatch, row: usize, count: usize) -> Result<Vec<ArrayRef>> {
        let row_index = u32::try_from(row)
            .map_err(|_| DataFusionError::Internal("a batch of more than 2^32 rows".to_string()))?;
        let indices = UInt32Array::from(vec![row_index; count]);
        left.columns()
            .iter()
            .map(|column| Ok(take(column, &indices, None)?))
            .collect()
    }
}
