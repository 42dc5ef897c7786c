//! Filters a scan applies itself, exactly, so that DataFusion drops them from its plan.
//!
//! Most filters are reported to DataFusion as `Inexact`: the scan narrows its key ranges with them and
//! DataFusion still evaluates them over every row the scan returns. That recheck needs the columns the
//! filter reads, so `SELECT count(*) FROM docs WHERE doc->'user'->>'city' = 'x'` through an index on
//! that path would still fetch and decode every matching document only to compare a value the index
//! entry already held.
//!
//! An equality (or `IN` list) between an expression index's key part and a constant or a parameter is
//! therefore reported `Exact`: reading that index's range returns exactly the rows the filter keeps,
//! so when the scan reads that index the filter costs nothing, and with nothing else to output the scan
//! counts index entries without reading a row (an index-only scan). The planner may still read the
//! table another way (statistics, an `ORDER BY` served by another index, a parameter of a type the key
//! cannot hold); then the scan evaluates the filters its access path does not guarantee over the rows it
//! reads ([`ExactFilters::filtered`]), reading their columns besides the output's.
//!
//! Only key parts whose SQL equality is equality of their key encoding qualify (integers, booleans,
//! text, dates, timestamps): for floating point (`-0` and `0`) or numerics of different scales the
//! key and the SQL comparison could disagree, and those filters stay `Inexact`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{and, filter_record_batch};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::Session as DataFusionSession;
use datafusion::common::DFSchema;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use qubedb_model::DataType;
use qubedb_model::catalog::TableDef;

use super::convert::field;
use super::index_keys::unqualified;

/// True when equality on a key part of this type is equality of the stored key bytes.
pub(crate) fn exact_key_type(data_type: DataType) -> bool {
    matches!(
        data_type,
        DataType::Boolean
            | DataType::SmallInt
            | DataType::Integer
            | DataType::BigInt
            | DataType::Text
            | DataType::Date
            | DataType::Timestamp
            | DataType::TimestampTz
    )
}

/// The key part `filter` fixes when it is `part = constant`, `constant = part` or `part IN (constants)`
/// (a constant being a literal other than NULL, or a parameter), with `position_of` finding the part.
pub(crate) fn equality_part(
    filter: &Expr,
    position_of: &dyn Fn(&Expr) -> Option<usize>,
) -> Option<usize> {
    let constant = |expr: &Expr| match expr {
        Expr::Literal(value, _) => !value.is_null(),
        Expr::Placeholder(_) => true,
        _ => false,
    };
    match filter {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            if constant(right) {
                position_of(left)
            } else if constant(left) {
                position_of(right)
            } else {
                None
            }
        }
        Expr::InList(list) if !list.negated && !list.list.is_empty() => list
            .list
            .iter()
            .all(constant)
            .then(|| position_of(&list.expr))?,
        _ => None,
    }
}

/// The filters a scan was handed as exact, ready to be evaluated over the rows it reads when its
/// access path does not guarantee them.
pub(crate) struct ExactFilters {
    /// The filters, as given (their positions are the ones `AccessPath::covers` refers to; EXPLAIN
    /// shows the evaluated ones by their planned form, [`ExactFilters::describe`]).
    pub(crate) filters: Vec<Expr>,
    /// Each filter planned over [`ExactFilters::read_schema`].
    physical: Vec<Arc<dyn PhysicalExpr>>,
    /// What a scan evaluating filters reads: its output slots first, then the other columns the
    /// filters read.
    pub(crate) read_slots: Vec<Option<usize>>,
    pub(crate) read_schema: SchemaRef,
}

impl ExactFilters {
    /// Plans `filters` over the output `slots` plus the table columns they read.
    pub(crate) fn new(
        state: &dyn DataFusionSession,
        table: &TableDef,
        slots: &[Option<usize>],
        output_schema: &SchemaRef,
        filters: Vec<Expr>,
    ) -> datafusion::error::Result<ExactFilters> {
        let mut read_slots = slots.to_vec();
        let mut fields: Vec<_> = output_schema.fields().iter().cloned().collect();
        let unqualified_filters: Vec<Expr> = filters.iter().map(unqualified).collect();
        for filter in &unqualified_filters {
            for column in filter.column_refs() {
                let Some(slot) = table.column_slot(&column.name) else {
                    return Err(datafusion::error::DataFusionError::Plan(format!(
                        "filter column {} is not a column of {}",
                        column.name, table.name
                    )));
                };
                if !read_slots.contains(&Some(slot)) {
                    read_slots.push(Some(slot));
                    let column = &table.columns[slot];
                    fields.push(Arc::new(field(&column.name, column.data_type, true)));
                }
            }
        }
        let read_schema = Arc::new(Schema::new(fields));
        let dfschema = DFSchema::try_from(read_schema.as_ref().clone())?;
        let physical = unqualified_filters
            .into_iter()
            .map(|filter| state.create_physical_expr(filter, &dfschema))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        Ok(ExactFilters {
            filters,
            physical,
            read_slots,
            read_schema,
        })
    }

    /// Filter `filter` as EXPLAIN shows it (as DataFusion's `FilterExec` shows its predicate).
    pub(crate) fn describe(&self, filter: usize) -> String {
        self.physical[filter].to_string()
    }

    /// The rows of `batch` (read with [`ExactFilters::read_slots`]) that pass the filters `which`,
    /// cut to the first `output_columns` columns.
    pub(crate) fn filtered(
        &self,
        which: &[usize],
        batch: &RecordBatch,
        output_columns: usize,
    ) -> datafusion::error::Result<RecordBatch> {
        let mut keep: Option<BooleanArray> = None;
        for &filter in which {
            let values = self.physical[filter]
                .evaluate(batch)?
                .into_array(batch.num_rows())?;
            let Some(values) = values.as_any().downcast_ref::<BooleanArray>() else {
                return Err(datafusion::error::DataFusionError::Internal(format!(
                    "filter {} is not boolean",
                    self.filters[filter]
                )));
            };
            keep = Some(match keep {
                None => values.clone(),
                Some(previous) => and(&previous, values)?,
            });
        }
        let batch = match keep {
            Some(keep) => filter_record_batch(batch, &keep)?,
            None => batch.clone(),
        };
        let output: Vec<usize> = (0..output_columns).collect();
        Ok(batch.project(&output)?)
    }
}
