//! DataFusion's view of QubeDB: a catalog provider over the transaction's catalog, a table provider per
//! table, and [`KvScanExec`], the scan operator that reads rows from the key-value store.
//!
//! Tables are read through the session's current transaction: `scan()` takes a [`ReadView`] of the
//! transaction (its snapshot plus its buffered writes) when the statement is planned, so a statement sees its
//! transaction's earlier writes and never its own.
//!
//! Primary-key predicates become key ranges: `id = 5` is one key, `id IN (1, 5)` two, `id BETWEEN 3 AND 9`
//! or `id > 3` a range, equality on a leading part of a composite key a prefix. The predicates are reported
//! to DataFusion as `Inexact`, so it still applies them to the rows the ranges return; a range is therefore
//! only ever a superset of the answer. The exception is equality on an expression index's key part,
//! reported `Exact`: the scan guarantees it by that index's ranges or evaluates it itself
//! (`sql/scan_filter.rs`). EXPLAIN shows the ranges in `KvScanExec`.

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int64Builder, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, SchemaProvider, Session as DataFusionSession, TableProvider,
};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::statistics::StatisticsArgs;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use qubedb_kv::{KeyRange, ReadView};
use qubedb_model::catalog::{
    ColumnStatistics as StoredColumnStatistics, IndexDef, Object, TableDef, TableStatistics,
    decode_statistics,
};
use qubedb_model::keycode::{decode_value, encode_value};
use qubedb_model::keys::Key;
use qubedb_model::row::RowReader;
use qubedb_model::{DataType, Value};

use super::convert::{ColumnBuilder, field};
use crate::error::{Error, to_datafusion};
use crate::session::Shared;
use crate::sql::index_keys::CompiledIndex;
use crate::sql::scan_filter::{ExactFilters, equality_part, exact_key_type};
use crate::sql::system::{SystemSchema, SystemSchemaKind, system_table};

/// Rows per Arrow batch produced by scans.
pub const SCAN_BATCH_ROWS: usize = 8192;
/// Name of the hidden row-id column exposed to DML on tables without a primary key.
pub const ROW_ID_COLUMN: &str = "__qubedb_rowid";
/// Prefix of the table name that asks for a table with its hidden row id visible (DML only).
pub const KEYED_PREFIX: &str = "__qubedb_keyed_";
/// What fetching a row through an index entry costs, in rows read in key order (a point read of the
/// store against the next pair of a range).
pub const ROW_FETCH_COST: f64 = 4.0;
/// Most key ranges one scan may carry (an `IN` list longer than this scans the whole range instead).
pub const SCAN_RANGES_MAX: usize = 10_000;
/// Rows (as ANALYZE last counted them) from which a full scan of a table reads it as
/// [`SCAN_PARTITIONS`] key ranges in parallel.
pub const PARALLEL_SCAN_ROWS_MIN: u64 = 50_000;
/// Point lookups (GIN candidates, long `IN` lists) from which a scan splits them between partitions.
pub const PARALLEL_POINTS_MIN: usize = 2_048;
/// Partitions of a parallel scan: the session's target partitions, one per core.
const SCAN_PARTITIONS: usize = 2;

/// The DataFusion catalog: one per session, reading the session's transaction catalog.
pub struct QubeCatalog {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for QubeCatalog {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("QubeCatalog")
    }
}

impl CatalogProvider for QubeCatalog {
    fn schema_names(&self) -> Vec<String> {
        let state = self.shared.state.lock();
        let mut names: Vec<String> = state
            .catalog
            .objects()
            .filter_map(|object| match object {
                Object::Schema(schema) => Some(schema.name.clone()),
                _ => None,
            })
            .collect();
        names.extend(["pg_catalog".to_string(), "information_schema".to_string()]);
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let system = match name {
            "pg_catalog" => Some(SystemSchemaKind::PgCatalog),
            "information_schema" => Some(SystemSchemaKind::InformationSchema),
            _ => None,
        };
        if let Some(kind) = system {
            return Some(Arc::new(SystemSchema {
                shared: self.shared.clone(),
                kind,
            }));
        }
        let state = self.shared.state.lock();
        let id = state.catalog.schema_id(name)?;
        Some(Arc::new(QubeSchema {
            shared: self.shared.clone(),
            id,
        }))
    }
}

/// One schema of the catalog.
pub struct QubeSchema {
    shared: Arc<Shared>,
    id: u64,
}

impl fmt::Debug for QubeSchema {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "QubeSchema({})", self.id)
    }
}

#[async_trait]
impl SchemaProvider for QubeSchema {
    fn table_names(&self) -> Vec<String> {
        let state = self.shared.state.lock();
        state
            .catalog
            .objects()
            .filter_map(|object| match object {
                Object::Table(table) if table.schema == self.id => Some(table.name.clone()),
                _ => None,
            })
            .collect()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        let state = self.shared.state.lock();
        if self.id == qubedb_model::catalog::PUBLIC_SCHEMA_ID
            && let Some(local) = state.locals.get(name)
        {
            return Ok(Some(local.clone()));
        }
        let (name, keyed) = match name.strip_prefix(KEYED_PREFIX) {
            Some(rest) => (rest, true),
            None => (name, false),
        };
        match state.catalog.relation(self.id, name) {
            Some(Object::Table(table)) => Ok(Some(Arc::new(KvTable::new(
                Arc::new(table.clone()),
                state.catalog.indexes_of(table.id).cloned().collect(),
                self.shared.clone(),
                keyed,
            )))),
            // `pg_catalog` is searched for unqualified names too (PostgreSQL puts it on every
            // search path); here after `public`, so a user table of the same name wins.
            None if self.id == qubedb_model::catalog::PUBLIC_SCHEMA_ID
                && name.starts_with("pg_") =>
            {
                drop(state);
                system_table(&self.shared, SystemSchemaKind::PgCatalog, name)
                    .map_err(crate::error::to_datafusion)
            }
            _ => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        let state = self.shared.state.lock();
        matches!(
            state.catalog.relation(self.id, name),
            Some(Object::Table(_))
        )
    }
}

/// A table as DataFusion sees it.
pub struct KvTable {
    table: Arc<TableDef>,
    /// The table's B-tree secondary indexes, candidates for [`KvTable::scan`]'s access path.
    indexes: Vec<IndexDef>,
    /// Its GIN indexes (`sql/gin.rs`).
    gin_indexes: Vec<IndexDef>,
    /// Its HNSW indexes, read by a scan in distance order (`sql/vector_scan.rs`).
    hnsw_indexes: Arc<Vec<IndexDef>>,
    schema: SchemaRef,
    shared: Arc<Shared>,
    /// Slot of each schema column (`None` for the hidden row id).
    slots: Vec<Option<usize>>,
}

impl fmt::Debug for KvTable {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "KvTable({})", self.table.name)
    }
}

impl KvTable {
    pub(crate) fn new(
        table: Arc<TableDef>,
        indexes: Vec<IndexDef>,
        shared: Arc<Shared>,
        keyed: bool,
    ) -> KvTable {
        let mut fields: Vec<Field> = Vec::new();
        let mut slots = Vec::new();
        for (slot, column) in table.live_columns() {
            // Declared nullable even for NOT NULL columns: an outer join or a scalar subquery over the
            // column can still produce NULL, and DataFusion checks batches against the declared schema.
            fields.push(field(&column.name, column.data_type, true));
            slots.push(Some(slot));
        }
        if keyed && table.has_row_id() {
            fields.push(Field::new(ROW_ID_COLUMN, ArrowType::Int64, false));
            slots.push(None);
        }
        let (indexes, others): (Vec<IndexDef>, Vec<IndexDef>) = indexes
            .into_iter()
            .partition(|index| index.method.is_btree());
        let (gin_indexes, hnsw_indexes) = others
            .into_iter()
            .partition(|index| index.method.gin_mode().is_some());
        KvTable {
            table,
            indexes,
            gin_indexes,
            hnsw_indexes: Arc::new(hnsw_indexes),
            schema: Arc::new(Schema::new(fields)),
            shared,
            slots,
        }
    }

    /// The position of column `expr` in a key made of the columns `key_slots`.
    fn position_in(&self, key_slots: &[usize], expr: &Expr) -> Option<usize> {
        let Expr::Column(column) = expr else {
            return None;
        };
        let slot = self.table.column_slot(&column.name)?;
        key_slots.iter().position(|&key_slot| key_slot == slot)
    }

    /// Each B-tree index's compiled form (`None` for a plain index), in `self.indexes`' order: compiled
    /// once per planning call, for the exact filters and the access paths alike.
    fn compiled_indexes(&self) -> Result<Vec<Option<Arc<CompiledIndex>>>, Error> {
        self.indexes
            .iter()
            .map(|index| {
                self.shared
                    .database
                    .index_compiler
                    .compile(&self.table, index)
            })
            .collect()
    }

    /// True when the scan applies `filter` itself, exactly (`sql/scan_filter.rs`): an equality between
    /// an expression index's key part and a constant or a parameter, for a key type whose equality is
    /// the key's, or a containment a `jsonb_path_ops` index answers without a recheck.
    /// (`compiled`: [`KvTable::compiled_indexes`].)
    fn exact_filter(&self, compiled: &[Option<Arc<CompiledIndex>>], filter: &Expr) -> bool {
        // A containment a `jsonb_path_ops` index answers exactly (`sql/gin.rs`).
        let gin_exact = self
            .gin_lookups(std::slice::from_ref(filter))
            .any(|(_, lookups)| lookups.iter().any(|lookup| lookup.exact));
        gin_exact
            || self
                .indexes
                .iter()
                .zip(compiled)
                .filter(|(index, _)| !index.expressions.is_empty())
                .any(|(_, compiled)| {
                    compiled.as_ref().is_some_and(|compiled| {
                        equality_part(filter, &|expr| compiled.part_position(expr))
                            .is_some_and(|position| exact_key_type(compiled.part_types[position]))
                    })
                })
    }

    /// The GIN indexes `filters` can use, each with the lookups they ask of it.
    fn gin_lookups<'s>(
        &'s self,
        filters: &'s [Expr],
    ) -> impl Iterator<Item = (&'s IndexDef, Vec<crate::sql::gin::GinLookup>)> + 's {
        self.gin_indexes.iter().filter_map(move |index| {
            let column = &self.table.columns[*index.columns.first()?].name;
            let lookups: Vec<_> = filters
                .iter()
                .filter_map(|filter| crate::sql::gin::lookup(filter, index, column))
                .collect();
            (!lookups.is_empty()).then_some((index, lookups))
        })
    }

    /// The ways to read the rows `filters` may select: the primary key's ranges and each index's,
    /// cheapest first. A partial index is a way only when the filters imply its predicate.
    ///
    /// Each path records which of the `exact` filters its ranges guarantee (`AccessPath::covers`).
    fn access_paths(
        &self,
        filters: &[Expr],
        exact: &[Expr],
        compiled_indexes: &[Option<Arc<CompiledIndex>>],
        statistics: Option<&TableStatistics>,
    ) -> Result<Vec<AccessPath>, Error> {
        let types_of = |key_slots: &[usize]| -> Vec<DataType> {
            key_slots
                .iter()
                .map(|&slot| self.table.columns[slot].data_type)
                .collect()
        };
        let constraints = |position_of: &dyn Fn(&Expr) -> Option<usize>| -> Vec<KeyConstraint> {
            filters
                .iter()
                .filter_map(|filter| key_constraint(filter, position_of))
                .collect()
        };
        let names_of = |key_slots: &[usize]| -> Vec<String> {
            key_slots
                .iter()
                .map(|&slot| self.table.columns[slot].name.clone())
                .collect()
        };
        let mut best = AccessPath {
            index: None,
            ranges: vec![Key::row_range(self.table.id)],
            shape: RangeShape::Full,
            condition: String::new(),
            label: None,
            covers: Vec::new(),
            known_rows: false,
        };
        if !self.table.primary_key.is_empty() {
            let key_slots = &self.table.primary_key;
            let types = types_of(key_slots);
            let constraints = constraints(&|expr| self.position_in(key_slots, expr));
            let (ranges, shape) =
                key_ranges(Key::row_prefix(self.table.id), &types, &constraints, true);
            best = AccessPath {
                index: None,
                ranges,
                shape,
                condition: condition(&constraints, &types, &names_of(key_slots), shape),
                label: None,
                covers: Vec::new(),
                known_rows: false,
            };
        }
        let mut paths = vec![best];
        for (index, compiled) in self.indexes.iter().zip(compiled_indexes) {
            if let Some(compiled) = compiled
                && !compiled.predicate_implied_by(filters)
            {
                continue;
            }
            let (types, constraints, names) = match &compiled {
                Some(compiled) if !index.expressions.is_empty() => (
                    compiled.part_types.clone(),
                    constraints(&|expr| compiled.part_position(expr)),
                    index.expressions.clone(),
                ),
                _ => (
                    types_of(&index.columns),
                    constraints(&|expr| self.position_in(&index.columns, expr)),
                    names_of(&index.columns),
                ),
            };
            let (ranges, shape) =
                key_ranges(Key::index_prefix(index.id), &types, &constraints, false);
            let covers = match &compiled {
                Some(compiled) if !index.expressions.is_empty() => exact
                    .iter()
                    .map(|filter| {
                        key_constraint(filter, &|expr| compiled.part_position(expr))
                            .is_some_and(|constraint| guaranteed(&constraint, &types, shape))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            paths.push(AccessPath {
                index: Some(index.clone()),
                ranges,
                shape,
                condition: condition(&constraints, &types, &names, shape),
                label: None,
                covers,
                known_rows: false,
            });
        }
        // Stable: at equal rank the primary key (first) stays first.
        paths.sort_by_key(|path| std::cmp::Reverse(path.rank()));
        if let Some(statistics) = statistics {
            // With statistics, the fewest rows read wins, a row fetched through an index costing
            // ROW_FETCH_COST entries (sequential reads of the rows themselves are cheaper).
            let cost = |path: &AccessPath| {
                let rows = rows_read(&self.table, path, statistics);
                match path.index {
                    Some(_) => rows * (1.0 + ROW_FETCH_COST),
                    None => rows,
                }
            };
            paths.sort_by(|left, right| cost(left).total_cmp(&cost(right)));
        }
        Ok(paths)
    }
}

/// How a scan reaches its rows: key ranges over the rows, or over an index's entries.
struct AccessPath {
    index: Option<IndexDef>,
    ranges: Vec<KeyRange>,
    shape: RangeShape,
    /// The predicates the ranges come from, as EXPLAIN shows them (`id >= 5 AND id <= 8`).
    condition: String,
    /// What found the keys, when not the ranges' own index (a GIN index's candidate rows).
    label: Option<String>,
    /// For each exact filter of the scan (`sql/scan_filter.rs`), true when the ranges return only rows
    /// it keeps (missing: false).
    covers: Vec<bool>,
    /// Every range is one key of a row that exists in the scan's view (GIN candidates, found in index
    /// entries of the same snapshot): counting the ranges counts the rows.
    known_rows: bool,
}

impl AccessPath {
    /// The columns (slots) whose order the rows come in, ascending with NULLs last, as the keys are
    /// ordered (`keycode`): the index's columns then the primary key's, or the primary key's. Empty
    /// when the ranges are not in key order, and cut at the first column whose SQL order is not its
    /// key order (floating point: -0 and 0 share a key; intervals: compared by span in keys).
    fn order_slots(&self, table: &TableDef) -> Vec<usize> {
        let in_order = self
            .ranges
            .windows(2)
            .all(|pair| match (&pair[0].1, &pair[1].0) {
                (Bound::Unbounded, _) => false,
                (end, start) => bound_key(end) <= bound_key(start),
            });
        let by_expressions = self
            .index
            .as_ref()
            .is_some_and(|index| !index.expressions.is_empty());
        if !in_order || by_expressions {
            return Vec::new();
        }
        let mut slots: Vec<usize> = Vec::new();
        let key_columns = match &self.index {
            Some(index) => index.columns.iter().chain(table.primary_key.iter()),
            None => table.primary_key.iter().chain([].iter()),
        };
        for &slot in key_columns {
            if slots.contains(&slot) {
                continue;
            }
            if !matches!(
                table.columns[slot].data_type,
                DataType::Boolean
                    | DataType::SmallInt
                    | DataType::Integer
                    | DataType::BigInt
                    | DataType::Text
                    | DataType::Varchar(_)
                    | DataType::Bytea
                    | DataType::Date
                    | DataType::Time
                    | DataType::Timestamp
                    | DataType::TimestampTz
            ) {
                break;
            }
            slots.push(slot);
        }
        slots
    }

    /// How many leading key columns the ranges fix to a single value each (all of them when there
    /// is one range): within the rows read, those columns are constant.
    fn constant_columns(&self) -> usize {
        match self.shape {
            RangeShape::Points { keys: 1, columns } => columns,
            RangeShape::Ranges {
                ranges: 1,
                fixed_columns,
            } => fixed_columns,
            _ => 0,
        }
    }

    /// Higher is cheaper: a unique point lookup, then more key columns fixed by equality, then a range,
    /// then a full scan; the rows themselves before an index (no second lookup per row).
    fn rank(&self) -> (u8, usize, bool) {
        let unique = self.index.as_ref().is_none_or(|index| index.unique);
        let (category, fixed) = match self.shape {
            RangeShape::Empty => (5, 0),
            RangeShape::Points { columns, .. } if unique => (4, columns),
            RangeShape::Points { columns, .. } => (3, columns),
            RangeShape::Ranges { fixed_columns, .. } if fixed_columns > 0 => (3, fixed_columns),
            RangeShape::Ranges { .. } => (2, 0),
            RangeShape::Full => (0, 0),
        };
        (category, fixed, self.index.is_none())
    }

    /// What EXPLAIN shows.
    fn describe(&self) -> String {
        let plural = |count: usize, word: &str| {
            format!("{count} {word}{}", if count == 1 { "" } else { "s" })
        };
        let shape = match self.shape {
            RangeShape::Full => "full scan".to_string(),
            RangeShape::Empty => "no rows (contradictory key predicates)".to_string(),
            RangeShape::Points { keys, .. } => format!("point lookup ({})", plural(keys, "key")),
            RangeShape::Ranges {
                ranges,
                fixed_columns,
            } => format!(
                "range scan ({}{})",
                plural(ranges, "range"),
                if fixed_columns > 0 {
                    format!(", {} fixed", plural(fixed_columns, "key column"))
                } else {
                    String::new()
                }
            ),
        };
        match (&self.label, &self.index) {
            (Some(label), _) => format!("{label}: {shape}"),
            (None, None) => shape,
            (None, Some(index)) => format!("index {}: {shape}", index.name),
        }
    }
}

#[async_trait]
impl TableProvider for KvTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // With an expression or partial index, every filter may matter (to match a key expression or
        // imply a predicate), so every filter reaches `scan`; DataFusion still applies them all.
        let any_compiled = self.indexes.iter().any(|index| !index.is_plain());
        let compiled = self.compiled_indexes().map_err(to_datafusion)?;
        Ok(filters
            .iter()
            .map(|filter| {
                if self.exact_filter(&compiled, filter) {
                    return TableProviderFilterPushDown::Exact;
                }
                let usable = |key_slots: &[usize]| {
                    key_constraint(filter, &|expr| self.position_in(key_slots, expr)).is_some()
                };
                if any_compiled
                    || usable(&self.table.primary_key)
                    || self.indexes.iter().any(|index| usable(&index.columns))
                    || self.gin_lookups(&[(*filter).clone()]).next().is_some()
                {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn DataFusionSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let view = current_view(&self.shared, state)?;
        let projection: Vec<usize> = match projection {
            Some(projection) => projection.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&projection)?);
        let statistics = match view
            .get(&Key::Statistics(self.table.id).encode())
            .map_err(|error| to_datafusion(error.into()))?
        {
            Some(bytes) => {
                let cache = &self.shared.database.statistics_cache;
                let cached = cache
                    .lock()
                    .get(&self.table.id)
                    .filter(|(known, _)| *known == bytes)
                    .map(|(_, statistics)| statistics.clone());
                match cached {
                    Some(statistics) => Some(statistics),
                    None => {
                        let statistics = Arc::new(
                            decode_statistics(&bytes)
                                .map_err(|error| to_datafusion(error.into()))?,
                        );
                        cache
                            .lock()
                            .insert(self.table.id, (bytes, statistics.clone()));
                        Some(statistics)
                    }
                }
            }
            None => None,
        };
        let compiled = self.compiled_indexes().map_err(to_datafusion)?;
        let exact: Vec<Expr> = filters
            .iter()
            .filter(|filter| self.exact_filter(&compiled, filter))
            .cloned()
            .collect();
        let mut paths = self
            .access_paths(filters, &exact, &compiled, statistics.as_deref())
            .map_err(to_datafusion)?;
        let column_of = |index: &IndexDef| -> &str {
            index
                .columns
                .first()
                .map_or("", |&slot| self.table.columns[slot].name.as_str())
        };
        let mut gin_paths = Vec::new();
        let row_prefix = Key::row_prefix(self.table.id);
        for (index, lookups) in self.gin_lookups(filters) {
            let rows =
                crate::sql::gin::candidates(&view, index, &lookups).map_err(to_datafusion)?;
            let path = AccessPath {
                index: None,
                shape: if rows.is_empty() {
                    RangeShape::Empty
                } else {
                    RangeShape::Points {
                        keys: rows.len(),
                        columns: self.table.primary_key.len(),
                    }
                },
                ranges: rows
                    .iter()
                    .map(|primary_key| {
                        // `Key::Row(table, primary_key)`, encoded without a copy of the key.
                        let mut key = Vec::with_capacity(row_prefix.len() + primary_key.len());
                        key.extend_from_slice(&row_prefix);
                        key.extend_from_slice(primary_key);
                        (Bound::Included(key.clone()), Bound::Included(key))
                    })
                    .collect(),
                condition: String::new(),
                label: Some(format!("gin index {}", index.name)),
                // The exact filters whose lookup this index answers without a recheck.
                covers: exact
                    .iter()
                    .map(|filter| {
                        crate::sql::gin::lookup(filter, index, column_of(index))
                            .is_some_and(|lookup| lookup.exact)
                    })
                    .collect(),
                known_rows: true,
            };
            gin_paths.push(path);
        }
        // Of several GIN indexes, the one answering the most filters exactly, then the fewest
        // candidates; all before the paths that read ranges without a fixed key column.
        gin_paths.sort_by_key(|path| {
            let exact_filters = path.covers.iter().filter(|&&covered| covered).count();
            (std::cmp::Reverse(exact_filters), path.ranges.len())
        });
        let at = paths
            .iter()
            .position(|other| other.rank().0 <= 2)
            .unwrap_or(paths.len());
        paths.splice(at..at, gin_paths);
        let slots: Vec<Option<usize>> = projection.iter().map(|&index| self.slots[index]).collect();
        let exact = if exact.is_empty() {
            None
        } else {
            Some(Arc::new(ExactFilters::new(
                state,
                &self.table,
                &slots,
                &schema,
                exact,
            )?))
        };
        Ok(Arc::new(KvScanExec::new(
            ScanSource {
                table: self.table.clone(),
                view,
                slots,
                schema,
                table_statistics: statistics,
                exact,
                hnsw_indexes: self.hnsw_indexes.clone(),
                // Read only for tables an HNSW index could serve (scans of the others stay as cheap).
                vector_settings: if self.hnsw_indexes.is_empty() {
                    VectorSettings::default()
                } else {
                    VectorSettings::of(&self.shared)
                },
                vector: None,
                database: self.shared.database.clone(),
            },
            ScanWay {
                paths: Arc::new(paths),
                chosen: 0,
                reverse: false,
            },
            limit,
        )))
    }
}

/// A predicate on one primary-key column that narrows the key range.
#[derive(Debug, Clone)]
enum KeyConstraint {
    Equal(usize, ScalarValue),
    In(usize, Vec<ScalarValue>),
    Lower(usize, ScalarValue, bool),
    Upper(usize, ScalarValue, bool),
    Between(usize, ScalarValue, ScalarValue),
}

fn key_constraint(
    filter: &Expr,
    position_of: &dyn Fn(&Expr) -> Option<usize>,
) -> Option<KeyConstraint> {
    let column_position = |expr: &Expr| position_of(expr);
    let literal = |expr: &Expr| match expr {
        Expr::Literal(value, _) if !value.is_null() => Some(value.clone()),
        _ => None,
    };
    match filter {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            // `k = 1 OR k = 4 OR k IN (5, 6)` is the IN list (1, 4, 5, 6).
            let values = |constraint: Option<KeyConstraint>| match constraint {
                Some(KeyConstraint::Equal(position, value)) => Some((position, vec![value])),
                Some(KeyConstraint::In(position, values)) => Some((position, values)),
                _ => None,
            };
            let (left_position, mut left_values) = values(key_constraint(left, position_of))?;
            let (right_position, right_values) = values(key_constraint(right, position_of))?;
            if left_position != right_position
                || left_values.len() + right_values.len() > SCAN_RANGES_MAX
            {
                return None;
            }
            left_values.extend(right_values);
            Some(KeyConstraint::In(left_position, left_values))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (position, value, op) = match (column_position(left), literal(right)) {
                (Some(position), Some(value)) => (position, value, *op),
                _ => match (literal(left), column_position(right)) {
                    (Some(value), Some(position)) => (position, value, op.swap()?),
                    _ => return None,
                },
            };
            match op {
                Operator::Eq => Some(KeyConstraint::Equal(position, value)),
                Operator::Gt => Some(KeyConstraint::Lower(position, value, false)),
                Operator::GtEq => Some(KeyConstraint::Lower(position, value, true)),
                Operator::Lt => Some(KeyConstraint::Upper(position, value, false)),
                Operator::LtEq => Some(KeyConstraint::Upper(position, value, true)),
                _ => None,
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => Some(KeyConstraint::Between(
            column_position(expr)?,
            literal(low)?,
            literal(high)?,
        )),
        Expr::InList(list) if !list.negated && list.list.len() <= SCAN_RANGES_MAX => {
            let position = column_position(&list.expr)?;
            let values: Option<Vec<ScalarValue>> = list.list.iter().map(literal).collect();
            Some(KeyConstraint::In(position, values?))
        }
        _ => None,
    }
}

/// The stored value a literal stands for in a column of `data_type`, when it can be compared bytewise.
fn key_value(value: &ScalarValue, data_type: DataType) -> Option<Value> {
    let integer = match value {
        ScalarValue::Int8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int64(Some(v)) => Some(*v),
        ScalarValue::UInt8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok(),
        _ => None,
    };
    match data_type {
        DataType::SmallInt | DataType::Integer | DataType::BigInt => integer.map(Value::Integer),
        DataType::Boolean => match value {
            ScalarValue::Boolean(Some(v)) => Some(Value::Boolean(*v)),
            _ => None,
        },
        DataType::Text | DataType::Varchar(_) => match value {
            ScalarValue::Utf8(Some(v))
            | ScalarValue::LargeUtf8(Some(v))
            | ScalarValue::Utf8View(Some(v)) => Some(Value::Text(v.clone())),
            _ => None,
        },
        DataType::Double => match value {
            ScalarValue::Float64(Some(v)) => Some(Value::Double(*v)),
            _ => None,
        },
        DataType::Real => match value {
            ScalarValue::Float32(Some(v)) => Some(Value::Real(*v)),
            _ => None,
        },
        DataType::Numeric { scale, .. } => match value {
            ScalarValue::Decimal128(Some(units), _, literal_scale) if *literal_scale == scale => {
                Some(Value::Numeric {
                    units: *units,
                    scale,
                })
            }
            _ => None,
        },
        DataType::Date => match value {
            ScalarValue::Date32(Some(days)) => Some(Value::Integer(i64::from(*days))),
            _ => None,
        },
        DataType::Timestamp => match value {
            ScalarValue::TimestampMicrosecond(Some(v), None) => Some(Value::Integer(*v)),
            _ => None,
        },
        DataType::TimestampTz => match value {
            ScalarValue::TimestampMicrosecond(Some(v), Some(_)) => Some(Value::Integer(*v)),
            _ => None,
        },
        _ => None,
    }
}

fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(value, &mut out);
    out
}

fn prefix_end(bytes: &[u8]) -> Bound<Vec<u8>> {
    qubedb_kv::prefix_range(bytes).1
}

/// What a set of key ranges amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeShape {
    /// Every key.
    Full,
    /// No key can match.
    Empty,
    /// Every key column fixed by equality: `keys` distinct keys, of `columns` columns.
    Points { keys: usize, columns: usize },
    /// Ranges, after `fixed_columns` leading columns fixed by equality.
    Ranges { ranges: usize, fixed_columns: usize },
}

/// The constraints that shaped key ranges of `shape` (equalities on the fixed leading parts, bounds on
/// the part after them), as SQL over the key parts' `names`: what EXPLAIN shows as the scan's `key=`.
fn condition(
    constraints: &[KeyConstraint],
    types: &[DataType],
    names: &[String],
    shape: RangeShape,
) -> String {
    let (fixed, bounded) = match shape {
        RangeShape::Points { columns, .. } => (columns, None),
        RangeShape::Ranges { fixed_columns, .. } => (fixed_columns, Some(fixed_columns)),
        RangeShape::Full | RangeShape::Empty => return String::new(),
    };
    let literal = |value: &ScalarValue| match value {
        ScalarValue::Utf8(Some(text))
        | ScalarValue::LargeUtf8(Some(text))
        | ScalarValue::Utf8View(Some(text)) => format!("'{}'", text.replace('\'', "''")),
        other => other.to_string(),
    };
    let usable = |position: usize, value: &ScalarValue| {
        types
            .get(position)
            .is_some_and(|&data_type| key_value(value, data_type).is_some())
    };
    let mut parts = Vec::new();
    for constraint in constraints {
        let text = match constraint {
            KeyConstraint::Equal(at, value) if *at < fixed && usable(*at, value) => {
                format!("{} = {}", names[*at], literal(value))
            }
            KeyConstraint::In(at, values)
                if *at < fixed && values.iter().all(|value| usable(*at, value)) =>
            {
                let list: Vec<String> = values.iter().map(literal).collect();
                format!("{} IN ({})", names[*at], list.join(", "))
            }
            KeyConstraint::Lower(at, value, inclusive)
                if Some(*at) == bounded && usable(*at, value) =>
            {
                let op = if *inclusive { ">=" } else { ">" };
                format!("{} {op} {}", names[*at], literal(value))
            }
            KeyConstraint::Upper(at, value, inclusive)
                if Some(*at) == bounded && usable(*at, value) =>
            {
                let op = if *inclusive { "<=" } else { "<" };
                format!("{} {op} {}", names[*at], literal(value))
            }
            KeyConstraint::Between(at, low, high)
                if Some(*at) == bounded && usable(*at, low) && usable(*at, high) =>
            {
                format!(
                    "{} BETWEEN {} AND {}",
                    names[*at],
                    literal(low),
                    literal(high)
                )
            }
            _ => continue,
        };
        parts.push(text);
    }
    parts.join(" AND ")
}

/// Turns constraints on the columns of a key (of `types`, under `prefix`) into sorted key ranges.
/// `exact_points`: a key with every column fixed is one stored key (rows); otherwise it is a prefix
/// (index entries, which end with the row's primary key).
fn key_ranges(
    prefix: Vec<u8>,
    types: &[DataType],
    constraints: &[KeyConstraint],
    exact_points: bool,
) -> (Vec<KeyRange>, RangeShape) {
    let full = || (vec![qubedb_kv::prefix_range(&prefix)], RangeShape::Full);
    if types.is_empty() || constraints.is_empty() {
        return full();
    }
    // Equality prefix: for each key column in order, the set of values it must equal.
    let mut prefixes: Vec<Vec<u8>> = vec![prefix.clone()];
    let mut equal_columns = 0;
    for (position, &data_type) in types.iter().enumerate() {
        let mut values: Option<Vec<Value>> = None;
        for constraint in constraints {
            let candidates = match constraint {
                KeyConstraint::Equal(at, value) if *at == position => {
                    key_value(value, data_type).map(|v| vec![v])
                }
                KeyConstraint::In(at, list) if *at == position => list
                    .iter()
                    .map(|value| key_value(value, data_type))
                    .collect(),
                _ => None,
            };
            if let Some(candidates) = candidates {
                values = Some(match values {
                    None => candidates,
                    Some(existing) => existing
                        .into_iter()
                        .filter(|v| candidates.contains(v))
                        .collect(),
                });
            }
        }
        let Some(values) = values else { break };
        if prefixes.len() * values.len().max(1) > SCAN_RANGES_MAX {
            break;
        }
        prefixes = prefixes
            .iter()
            .flat_map(|base| {
                values.iter().map(move |value| {
                    let mut key = base.clone();
                    encode_value(value, &mut key);
                    key
                })
            })
            .collect();
        prefixes.sort();
        prefixes.dedup();
        equal_columns += 1;
        if prefixes.is_empty() {
            return (Vec::new(), RangeShape::Empty);
        }
    }
    let mut ranges: Vec<KeyRange> = Vec::new();
    if equal_columns == types.len() {
        for key in &prefixes {
            ranges.push(if exact_points {
                (Bound::Included(key.clone()), Bound::Included(key.clone()))
            } else {
                qubedb_kv::prefix_range(key)
            });
        }
        let shape = RangeShape::Points {
            keys: prefixes.len(),
            columns: equal_columns,
        };
        return (ranges, shape);
    }
    // Bounds on the next key column after the equality prefix.
    let position = equal_columns;
    let data_type = types[position];
    let mut lower: Option<(Value, bool)> = None;
    let mut upper: Option<(Value, bool)> = None;
    let tighter =
        |current: Option<(Value, bool)>, candidate: (Value, bool), is_lower: bool| match current {
            None => Some(candidate),
            Some(existing) => {
                let order = encoded(&candidate.0).cmp(&encoded(&existing.0));
                let better = if is_lower {
                    order.is_gt()
                } else {
                    order.is_lt()
                };
                let same_stricter = order.is_eq() && !candidate.1;
                Some(if better || same_stricter {
                    candidate
                } else {
                    existing
                })
            }
        };
    for constraint in constraints {
        match constraint {
            KeyConstraint::Lower(at, value, inclusive) if *at == position => {
                if let Some(value) = key_value(value, data_type) {
                    lower = tighter(lower, (value, *inclusive), true);
                }
            }
            KeyConstraint::Upper(at, value, inclusive) if *at == position => {
                if let Some(value) = key_value(value, data_type) {
                    upper = tighter(upper, (value, *inclusive), false);
                }
            }
            KeyConstraint::Between(at, low, high) if *at == position => {
                if let (Some(low), Some(high)) =
                    (key_value(low, data_type), key_value(high, data_type))
                {
                    lower = tighter(lower, (low, true), true);
                    upper = tighter(upper, (high, true), false);
                }
            }
            _ => {}
        }
    }
    if equal_columns == 0 && lower.is_none() && upper.is_none() {
        return full();
    }
    for base in &prefixes {
        let start = match &lower {
            None => Bound::Included(base.clone()),
            Some((value, inclusive)) => {
                let mut key = base.clone();
                encode_value(value, &mut key);
                if *inclusive {
                    Bound::Included(key)
                } else {
                    match prefix_end(&key) {
                        Bound::Excluded(end) => Bound::Included(end),
                        other => other,
                    }
                }
            }
        };
        let end = match &upper {
            None => prefix_end(base),
            Some((value, inclusive)) => {
                let mut key = base.clone();
                encode_value(value, &mut key);
                if *inclusive {
                    prefix_end(&key)
                } else {
                    Bound::Excluded(key)
                }
            }
        };
        ranges.push((start, end));
    }
    ranges.sort_by_key(|range| bound_key(&range.0));
    let shape = RangeShape::Ranges {
        ranges: ranges.len(),
        fixed_columns: equal_columns,
    };
    (ranges, shape)
}

/// True when ranges of `shape` made from constraints including `constraint` return only keys that
/// satisfy it: an equality or IN list on a key part the ranges fix, every value of which [`key_ranges`]
/// could encode (it ignores a constraint with a value it cannot), on a part whose key equality is SQL's.
fn guaranteed(constraint: &KeyConstraint, types: &[DataType], shape: RangeShape) -> bool {
    let fixed = match shape {
        RangeShape::Empty => return true,
        RangeShape::Full => 0,
        RangeShape::Points { columns, .. } => columns,
        RangeShape::Ranges { fixed_columns, .. } => fixed_columns,
    };
    let (position, values) = match constraint {
        KeyConstraint::Equal(position, value) => (*position, std::slice::from_ref(value)),
        KeyConstraint::In(position, values) => (*position, values.as_slice()),
        _ => return false,
    };
    position < fixed
        && exact_key_type(types[position])
        && values
            .iter()
            .all(|value| key_value(value, types[position]).is_some())
}

fn bound_key(bound: &Bound<Vec<u8>>) -> Vec<u8> {
    match bound {
        Bound::Included(key) | Bound::Excluded(key) => key.clone(),
        Bound::Unbounded => Vec::new(),
    }
}

/// Reads rows of one table over key ranges and decodes the projected columns into Arrow batches.
///
/// The rows come in key order (of the primary key, or of the index read), and the scan declares that
/// order to DataFusion, which then drops sorts it satisfies; [`KvScanExec::ordered_for`] picks another
/// access path, or the same one read backwards, to satisfy an `ORDER BY` (`sql/scan_order.rs`).
pub struct KvScanExec {
    table: Arc<TableDef>,
    view: ReadView,
    /// For each output column, the slot it reads (`None`: the hidden row id, decoded from the key).
    slots: Vec<Option<usize>>,
    schema: SchemaRef,
    way: ScanWay,
    limit: Option<usize>,
    /// What ANALYZE last found in the table, if it ran.
    table_statistics: Option<Arc<TableStatistics>>,
    /// The estimate given to DataFusion's cost-based choices (join order and sides).
    statistics: Arc<Statistics>,
    properties: Arc<PlanProperties>,
    /// Filters DataFusion left to the scan (`sql/scan_filter.rs`): those the access path does not
    /// guarantee are evaluated over the rows read.
    exact: Option<Arc<ExactFilters>>,
    /// The ranges each output partition reads, in order (see [`partition_ranges`]).
    /// Each partition's ranges, shared with the streams reading them (thousands of GIN candidates are
    /// not copied per execution).
    partitions: Vec<Arc<[KeyRange]>>,
    hnsw_indexes: Arc<Vec<IndexDef>>,
    vector_settings: VectorSettings,
    /// Set when the scan reads an HNSW index in distance order instead of its access path.
    vector: Option<Arc<VectorPath>>,
    database: Arc<crate::database::DatabaseInner>,
}

/// The HNSW settings a scan was planned under (`SET hnsw.*`, `enable_seqscan`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct VectorSettings {
    /// The candidate list of a search (`hnsw.ef_search`).
    pub ef_search: usize,
    /// Keep searching until enough rows pass the filters (`hnsw.iterative_scan` not `off`).
    pub iterative: bool,
    /// Most nodes an iterative search returns (`hnsw.max_scan_tuples`).
    pub max_scan_tuples: usize,
    /// `enable_seqscan = off`: an `ORDER BY` distance without `LIMIT` reads the index too.
    pub index_preferred: bool,
}

impl Default for VectorSettings {
    fn default() -> VectorSettings {
        VectorSettings {
            ef_search: qubedb_model::hnsw::EF_SEARCH_DEFAULT,
            iterative: true,
            max_scan_tuples: 20_000,
            index_preferred: false,
        }
    }
}

impl VectorSettings {
    pub(crate) fn of(shared: &Shared) -> VectorSettings {
        let settings = shared.settings.lock();
        let number = |name: &str, default: usize| {
            settings
                .get(name)
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(default)
        };
        VectorSettings {
            ef_search: number("hnsw.ef_search", qubedb_model::hnsw::EF_SEARCH_DEFAULT),
            iterative: settings
                .get("hnsw.iterative_scan")
                .is_none_or(|value| value != "off"),
            max_scan_tuples: number("hnsw.max_scan_tuples", 20_000),
            index_preferred: settings
                .get("enable_seqscan")
                .is_some_and(|value| matches!(value.as_str(), "off" | "false" | "0" | "no")),
        }
    }
}

/// An HNSW index read in distance order from a query vector (see `sql/vector_scan.rs`).
pub(crate) struct VectorPath {
    index: IndexDef,
    query: Vec<f32>,
    /// Stop once this many rows passed the filters (the sort's `LIMIT`); `None`: read what the
    /// search finds.
    wanted: Option<usize>,
    /// A filter above the scan, applied here too so the search knows when enough rows passed.
    predicate: Option<Arc<dyn PhysicalExpr>>,
    /// The column and operator, for EXPLAIN.
    shown: String,
}

/// Which access path a scan reads, and in which direction.
#[derive(Clone)]
struct ScanWay {
    /// Every access path the scan's filters allow, cheapest first.
    paths: Arc<Vec<AccessPath>>,
    chosen: usize,
    /// Read the ranges backwards (descending key order, NULLs first).
    reverse: bool,
}

impl ScanWay {
    fn access(&self) -> &AccessPath {
        &self.paths[self.chosen]
    }

    fn describe(&self, index_only: bool) -> String {
        let mut text = self.access().describe();
        if index_only {
            text.push_str(", index only");
        }
        if self.reverse {
            text.push_str(", backward");
        }
        text
    }
}

impl fmt::Debug for KvScanExec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "KvScanExec({}, {})",
            self.table.name,
            self.way.describe(self.index_only())
        )
    }
}

/// What a scan reads, whichever way it reads it: fixed when the scan is planned.
#[derive(Clone)]
struct ScanSource {
    table: Arc<TableDef>,
    view: ReadView,
    slots: Vec<Option<usize>>,
    schema: SchemaRef,
    table_statistics: Option<Arc<TableStatistics>>,
    exact: Option<Arc<ExactFilters>>,
    hnsw_indexes: Arc<Vec<IndexDef>>,
    vector_settings: VectorSettings,
    vector: Option<Arc<VectorPath>>,
    /// The database, for the HNSW graphs it holds in memory.
    database: Arc<crate::database::DatabaseInner>,
}

impl KvScanExec {
    fn new(source: ScanSource, way: ScanWay, limit: Option<usize>) -> KvScanExec {
        let ScanSource {
            table,
            view,
            slots,
            schema,
            table_statistics,
            exact,
            hnsw_indexes,
            vector_settings,
            vector,
            database,
        } = source;
        let statistics = Arc::new(estimate(
            &table,
            &slots,
            &schema,
            way.access(),
            limit,
            table_statistics.as_deref(),
        ));
        let orderings = match vector {
            // Rows come in the order the search finds them, nearest first only within a batch.
            Some(_) => Vec::new(),
            None => output_orderings(&table, &slots, &schema, way.access(), way.reverse),
        };
        let equivalence = EquivalenceProperties::new_with_orderings(schema.clone(), orderings);
        let partitions: Vec<Arc<[KeyRange]>> = match vector {
            Some(_) => vec![Arc::from(Vec::new())],
            None => partition_ranges(
                &table,
                way.access(),
                way.reverse,
                limit,
                table_statistics.as_deref(),
            )
            .into_iter()
            .map(Arc::from)
            .collect(),
        };
        let properties = Arc::new(PlanProperties::new(
            equivalence,
            Partitioning::UnknownPartitioning(partitions.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        KvScanExec {
            table,
            view,
            slots,
            schema,
            way,
            limit,
            table_statistics,
            statistics,
            properties,
            exact,
            partitions,
            hnsw_indexes,
            vector_settings,
            vector,
            database,
        }
    }

    /// This scan's source, to read it another way.
    fn source(&self) -> ScanSource {
        ScanSource {
            table: self.table.clone(),
            view: self.view.clone(),
            slots: self.slots.clone(),
            schema: self.schema.clone(),
            table_statistics: self.table_statistics.clone(),
            exact: self.exact.clone(),
            hnsw_indexes: self.hnsw_indexes.clone(),
            vector_settings: self.vector_settings,
            vector: self.vector.clone(),
            database: self.database.clone(),
        }
    }

    /// This scan reading an HNSW index of output column `column` in order of `metric`'s distance
    /// from `query`, until `wanted` rows pass its filters (and `predicate`, a filter above it);
    /// `None` when no such index exists, or without `wanted` unless `enable_seqscan` is off.
    pub(crate) fn with_vector_order(
        &self,
        column: usize,
        metric: qubedb_model::vector::Metric,
        query: &[f32],
        wanted: Option<usize>,
        predicate: Option<Arc<dyn PhysicalExpr>>,
    ) -> Option<KvScanExec> {
        if self.vector.is_some() || self.limit.is_some() {
            return None;
        }
        if wanted.is_none() && !self.vector_settings.index_preferred {
            return None;
        }
        let slot = self.slots.get(column).copied().flatten()?;
        // A query vector of other dimensions than the column's: the exact scan raises the error
        // every row's distance would (pgvector's index raises it too).
        let dimensions = u32::try_from(query.len()).ok();
        if !matches!(
            self.table.columns[slot].data_type,
            DataType::Vector(declared) | DataType::HalfVector(declared) if declared == dimensions
        ) {
            return None;
        }
        let index = self
            .hnsw_indexes
            .iter()
            .find(|index| index.orders_by_distance(slot, metric))?;
        let mut source = self.source();
        source.vector = Some(Arc::new(VectorPath {
            index: index.clone(),
            query: query.to_vec(),
            wanted,
            predicate,
            shown: format!(
                "{} {} {}",
                self.table.columns[slot].name,
                metric.operator(),
                crate::sql::vector::format(query)
            ),
        }));
        Some(KvScanExec::new(source, self.way.clone(), None))
    }

    /// The exact filters (positions in [`ExactFilters::filters`]) the chosen access path does not
    /// guarantee: the scan evaluates them.
    fn unguaranteed(&self) -> Vec<usize> {
        let Some(exact) = &self.exact else {
            return Vec::new();
        };
        if self.vector.is_some() {
            return (0..exact.filters.len()).collect();
        }
        let covers = &self.way.access().covers;
        (0..exact.filters.len())
            .filter(|&filter| !covers.get(filter).copied().unwrap_or(false))
            .collect()
    }

    /// The slots the scan reads: its output's, plus the columns of the filters it evaluates.
    fn read_slots(&self) -> &[Option<usize>] {
        match &self.exact {
            Some(exact) if !self.unguaranteed().is_empty() => &exact.read_slots,
            _ => &self.slots,
        }
    }

    /// True when the scan reads an index that holds every column it outputs (the index's columns and
    /// the primary key's): it decodes the index entries and never reads the rows (an index-only scan).
    /// With no column to output (`count(*)`), any index will do.
    fn index_only(&self) -> bool {
        let access = self.way.access();
        let slots = self.read_slots();
        if access.known_rows && slots.is_empty() {
            // GIN candidates the index found exactly: counted, not read.
            return true;
        }
        let Some(index) = &access.index else {
            return false;
        };
        slots.is_empty()
            || (!self.table.primary_key.is_empty()
                && slots.iter().all(|slot| {
                    slot.is_some_and(|slot| {
                        (index.expressions.is_empty() && index.columns.contains(&slot))
                            || index.include.contains(&slot)
                            || self.table.primary_key.contains(&slot)
                    })
                }))
    }

    /// This scan reading another way, so that its rows come ordered by `requested` (output column
    /// positions with their sort options); `None` if no access path gives that order at an
    /// acceptable cost, or if the rows already come in that order. `limited`: the query reads only
    /// the first rows (`ORDER BY ... LIMIT`), so an index read in order beats sorting every row even
    /// though it costs a primary-key lookup per row.
    pub(crate) fn ordered_for(
        &self,
        requested: &[(usize, SortOptions)],
        limited: bool,
    ) -> Option<KvScanExec> {
        let satisfies = |access: &AccessPath, reverse: bool| {
            output_orderings(&self.table, &self.slots, &self.schema, access, reverse)
                .iter()
                .any(|ordering| {
                    requested.len() <= ordering.len()
                        && requested
                            .iter()
                            .zip(ordering)
                            .all(|((position, options), sort)| {
                                sort.options == *options
                                    && sort
                                        .expr
                                        .downcast_ref::<Column>()
                                        .is_some_and(|column| column.index() == *position)
                            })
                })
        };
        let current = self.way.access();
        if satisfies(current, self.way.reverse) {
            return None;
        }
        for (chosen, access) in self.way.paths.iter().enumerate() {
            let acceptable = access.rank().0 >= current.rank().0
                && (limited || access.index.is_none() || chosen == self.way.chosen);
            if !acceptable {
                continue;
            }
            for reverse in [false, true] {
                if satisfies(access, reverse) {
                    return Some(KvScanExec::new(
                        self.source(),
                        ScanWay {
                            paths: self.way.paths.clone(),
                            chosen,
                            reverse,
                        },
                        self.limit,
                    ));
                }
            }
        }
        None
    }
}

/// The ranges of `access` each partition of its scan reads, in read order. One partition, except
/// without a LIMIT and read forwards: a full scan of a table ANALYZE counted at least
/// [`PARALLEL_SCAN_ROWS_MIN`] rows is cut at the median of its first key column's histogram, and many
/// point lookups are shared out in two runs of consecutive keys. Each partition's rows keep the
/// key order the scan declares.
fn partition_ranges(
    table: &TableDef,
    access: &AccessPath,
    reverse: bool,
    limit: Option<usize>,
    statistics: Option<&TableStatistics>,
) -> Vec<Vec<KeyRange>> {
    if !reverse && limit.is_none() && access.ranges.len() >= PARALLEL_POINTS_MIN {
        let half = access.ranges.len().div_ceil(SCAN_PARTITIONS);
        return access
            .ranges
            .chunks(half)
            .map(<[KeyRange]>::to_vec)
            .collect();
    }
    let mut ranges = access.ranges.clone();
    if reverse {
        ranges.reverse();
        return vec![ranges];
    }
    if limit.is_some() {
        return vec![ranges];
    }
    let split = (|| {
        if access.index.is_some() || access.shape != RangeShape::Full || ranges.len() != 1 {
            return None;
        }
        let statistics = statistics.filter(|found| found.rows >= PARALLEL_SCAN_ROWS_MIN)?;
        let first = *table.primary_key.first()?;
        let column = statistics
            .columns
            .iter()
            .find(|column| column.slot == first)?;
        let middle = column.histogram.get(column.histogram.len() / 2)?;
        let mut split = Key::row_prefix(table.id);
        split.extend_from_slice(middle);
        let (start, end) = &ranges[0];
        let after_start = match start {
            Bound::Included(start) | Bound::Excluded(start) => split > *start,
            Bound::Unbounded => true,
        };
        let before_end = match end {
            Bound::Included(end) | Bound::Excluded(end) => split < *end,
            Bound::Unbounded => true,
        };
        (after_start && before_end).then_some(split)
    })();
    match split {
        Some(split) => {
            let (start, end) = ranges.swap_remove(0);
            vec![
                vec![(start, Bound::Excluded(split.clone()))],
                vec![(Bound::Included(split), end)],
            ]
        }
        None => vec![ranges],
    }
}

/// The rows a scan reads and its columns' NULL and distinct counts and value ranges, from the table's
/// ANALYZE statistics ([`rows_read`]), capped by the LIMIT. Unknown before the first ANALYZE.
fn estimate(
    table: &TableDef,
    slots: &[Option<usize>],
    schema: &SchemaRef,
    access: &AccessPath,
    limit: Option<usize>,
    statistics: Option<&TableStatistics>,
) -> Statistics {
    let Some(statistics) = statistics else {
        return Statistics::new_unknown(schema);
    };
    let column = |slot: usize| statistics.columns.iter().find(|column| column.slot == slot);
    let table_rows = statistics.rows as f64;
    let rows = rows_read(table, access, statistics)
        .min(table_rows)
        .min(limit.map_or(f64::MAX, |limit| limit as f64));
    let rows = rows.round() as usize;
    let mut width = 0;
    let column_statistics = slots
        .iter()
        .map(|slot| {
            let Some(found) = slot.and_then(column) else {
                width += 8;
                return ColumnStatistics::new_unknown();
            };
            width += usize::try_from(found.average_width.max(1)).unwrap_or(8);
            let mut estimate = ColumnStatistics::new_unknown();
            estimate.null_count = Precision::Inexact((found.null_fraction * rows as f64) as usize);
            estimate.distinct_count =
                Precision::Inexact((distinct_values(found, table_rows) as usize).min(rows.max(1)));
            // The smallest and largest values seen, for DataFusion's filter selectivity.
            let data_type = table.columns[found.slot].data_type;
            let keys = found
                .histogram
                .iter()
                .chain(found.most_common.iter().map(|common| &common.key));
            if let (Some(low), Some(high)) = (keys.clone().min(), keys.max())
                && let (Some(low), Some(high)) =
                    (scalar_of(low, data_type), scalar_of(high, data_type))
            {
                estimate.min_value = Precision::Inexact(low);
                estimate.max_value = Precision::Inexact(high);
            }
            estimate
        })
        .collect();
    Statistics {
        num_rows: Precision::Inexact(rows),
        total_byte_size: Precision::Inexact(rows * width),
        column_statistics,
    }
}

/// A column's distinct non-NULL values in a table of `table_rows` rows.
fn distinct_values(column: &StoredColumnStatistics, table_rows: f64) -> f64 {
    if column.distinct < 0.0 {
        -column.distinct * table_rows
    } else {
        column.distinct
    }
    .max(1.0)
}

/// A stored value (keycode) as DataFusion's scalar of the column's Arrow type, for the types whose key
/// order is their SQL order.
fn scalar_of(key: &[u8], data_type: DataType) -> Option<ScalarValue> {
    if !matches!(
        data_type,
        DataType::SmallInt
            | DataType::Integer
            | DataType::BigInt
            | DataType::Text
            | DataType::Varchar(_)
            | DataType::Date
            | DataType::Timestamp
            | DataType::TimestampTz
    ) {
        return None;
    }
    let mut at = 0;
    let value = decode_value(key, &mut at, data_type).ok()?;
    let mut builder = ColumnBuilder::new(data_type, 1);
    builder.append_value(&value).ok()?;
    ScalarValue::try_from_array(&builder.finish().ok()?, 0).ok()
}

/// The fraction of the rows whose column equals the value with keycode `key`: its frequency when it is
/// a most common value, else an equal share of the rows the common values leave.
fn equal_fraction(column: &StoredColumnStatistics, key: &[u8], table_rows: f64) -> f64 {
    if let Some(common) = column.most_common.iter().find(|common| common.key == key) {
        return common.frequency;
    }
    let common_total: f64 = column
        .most_common
        .iter()
        .map(|common| common.frequency)
        .sum();
    let others = (distinct_values(column, table_rows) - column.most_common.len() as f64).max(1.0);
    ((1.0 - column.null_fraction - common_total) / others).max(0.0)
}

/// The fraction of the rows whose column lies between keycodes `low` and `high` (`None`: unbounded):
/// the common values inside plus the histogram's share of the other rows (a bound inside a bucket
/// counts half of it). `None` without a histogram or common values.
fn range_fraction(
    column: &StoredColumnStatistics,
    low: Option<&[u8]>,
    high: Option<&[u8]>,
) -> Option<f64> {
    if column.histogram.is_empty() && column.most_common.is_empty() {
        return None;
    }
    let inside =
        |key: &[u8]| low.is_none_or(|low| key >= low) && high.is_none_or(|high| key <= high);
    let common_inside: f64 = column
        .most_common
        .iter()
        .filter(|common| inside(&common.key))
        .map(|common| common.frequency)
        .sum();
    let common_total: f64 = column
        .most_common
        .iter()
        .map(|common| common.frequency)
        .sum();
    let bounds = &column.histogram;
    let histogram_share = if bounds.len() < 2 {
        0.0
    } else {
        let buckets = (bounds.len() - 1) as f64;
        let position = |key: Option<&[u8]>, default: f64| -> f64 {
            let Some(key) = key else { return default };
            let below = bounds.partition_point(|bound| bound.as_slice() < key);
            match below {
                0 => 0.0,
                count if count >= bounds.len() => 1.0,
                count => (count as f64 - 0.5) / buckets,
            }
        };
        (position(high, 1.0) - position(low, 0.0)).max(0.0)
    };
    let others = (1.0 - column.null_fraction - common_total).max(0.0);
    Some(common_inside + histogram_share * others)
}

/// The rows (or index entries) an access path reads, from ANALYZE statistics: the keys of a unique
/// point lookup; for equality or ranges on the key's first column, its most common values and
/// histogram, with each further fixed column dividing by its distinct count; a third of the table
/// where nothing is known (PostgreSQL's guess for a range).
fn rows_read(table: &TableDef, access: &AccessPath, statistics: &TableStatistics) -> f64 {
    let table_rows = statistics.rows as f64;
    let column = |slot: usize| statistics.columns.iter().find(|column| column.slot == slot);
    let key_slots: &[usize] = match &access.index {
        Some(index) if !index.expressions.is_empty() => &[],
        Some(index) => &index.columns,
        None => &table.primary_key,
    };
    let unique = access.index.as_ref().is_none_or(|index| index.unique);
    let prefix_bytes = match &access.index {
        Some(index) => Key::index_prefix(index.id).len(),
        None => Key::row_prefix(table.id).len(),
    };
    let leading = key_slots
        .first()
        .and_then(|&slot| Some((slot, column(slot)?)));
    // The first key column's keycode in a bound, when the bound holds one.
    let first_key = |bound: &Bound<Vec<u8>>| -> Option<Vec<u8>> {
        let (Bound::Included(key) | Bound::Excluded(key)) = bound else {
            return None;
        };
        let (slot, _) = leading?;
        let body = key.get(prefix_bytes..)?;
        let mut at = 0;
        decode_value(body, &mut at, table.columns[slot].data_type).ok()?;
        Some(body[..at].to_vec())
    };
    let further_fixed = |fixed: usize| -> f64 {
        key_slots
            .iter()
            .skip(1)
            .take(fixed.saturating_sub(1))
            .map(|&slot| column(slot).map_or(10.0, |found| distinct_values(found, table_rows)))
            .product()
    };
    match access.shape {
        RangeShape::Full => table_rows,
        RangeShape::Empty => 0.0,
        RangeShape::Points { keys, columns } if unique && columns == key_slots.len() => keys as f64,
        RangeShape::Points { columns: fixed, .. }
        | RangeShape::Ranges {
            fixed_columns: fixed,
            ..
        } if fixed > 0 => {
            let per_range = |range: &KeyRange| -> f64 {
                match (leading, first_key(&range.0)) {
                    (Some((_, found)), Some(key)) => {
                        equal_fraction(found, &key, table_rows) * table_rows
                    }
                    _ => {
                        let distinct =
                            leading.map_or(10.0, |(_, found)| distinct_values(found, table_rows));
                        table_rows / distinct
                    }
                }
            };
            access.ranges.iter().map(per_range).sum::<f64>() / further_fixed(fixed)
        }
        RangeShape::Points { keys, .. } => keys as f64,
        RangeShape::Ranges { .. } => {
            let fraction = leading.and_then(|(_, found)| {
                access
                    .ranges
                    .iter()
                    .map(|range| {
                        range_fraction(
                            found,
                            first_key(&range.0).as_deref(),
                            first_key(&range.1).as_deref(),
                        )
                    })
                    .sum::<Option<f64>>()
            });
            fraction.map_or(table_rows / 3.0, |fraction| fraction.min(1.0) * table_rows)
        }
    }
}

/// The orders the rows of `access` come in, over the output columns: the key columns in key order,
/// up to the first one not in the output; and, when the filters fix the leading key columns to one
/// value each, the order of the columns after them.
fn output_orderings(
    table: &TableDef,
    slots: &[Option<usize>],
    schema: &SchemaRef,
    access: &AccessPath,
    reverse: bool,
) -> Vec<Vec<PhysicalSortExpr>> {
    let options = SortOptions {
        descending: reverse,
        nulls_first: reverse,
    };
    let key_order = access.order_slots(table);
    let constant = access.constant_columns().min(key_order.len());
    let mut orderings = Vec::new();
    for skipped in [0, constant] {
        let mut ordering = Vec::new();
        for &slot in &key_order[skipped..] {
            let Some(position) = slots.iter().position(|output| *output == Some(slot)) else {
                break;
            };
            ordering.push(PhysicalSortExpr::new(
                Arc::new(Column::new(schema.field(position).name(), position)),
                options,
            ));
        }
        if !ordering.is_empty() && (skipped == 0 || constant > 0) {
            orderings.push(ordering);
        }
    }
    orderings
}

impl DisplayAs for KvScanExec {
    fn fmt_as(&self, _format: DisplayFormatType, formatter: &mut fmt::Formatter) -> fmt::Result {
        let columns: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|field| field.name().as_str())
            .collect();
        let way = match &self.vector {
            Some(vector) => format!(
                "hnsw index {} ({}), ef_search={}{}",
                vector.index.name,
                vector.shown,
                self.vector_settings.ef_search,
                if self.vector_settings.iterative {
                    ", iterative"
                } else {
                    ""
                }
            ),
            None => self.way.describe(self.index_only()),
        };
        write!(
            formatter,
            "KvScanExec: table={}, {}, projection=[{}]",
            self.table.name,
            way,
            columns.join(", ")
        )?;
        if let Some(wanted) = self.vector.as_ref().and_then(|vector| vector.wanted) {
            write!(formatter, ", until {wanted} rows")?;
        }
        if let Some(limit) = self.limit {
            write!(formatter, ", limit={limit}")?;
        }
        if self.partitions.len() > 1 {
            write!(formatter, ", {} partitions", self.partitions.len())?;
        }
        let condition = &self.way.access().condition;
        if !condition.is_empty() && self.vector.is_none() {
            write!(formatter, ", key=({condition})")?;
        }
        if let Some(exact) = &self.exact {
            let evaluated: Vec<String> = self
                .unguaranteed()
                .into_iter()
                .map(|filter| exact.describe(filter))
                .collect();
            if !evaluated.is_empty() {
                write!(formatter, ", filter=({})", evaluated.join(" AND "))?;
            }
        }
        Ok(())
    }
}

impl ExecutionPlan for KvScanExec {
    fn name(&self) -> &str {
        "KvScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _visitor: &mut dyn FnMut(
            &Arc<dyn PhysicalExpr>,
        ) -> datafusion::error::Result<TreeNodeRecursion>,
    ) -> datafusion::error::Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn fetch(&self) -> Option<usize> {
        self.limit
    }

    fn statistics_from_inputs(
        &self,
        _input_statistics: &[Arc<Statistics>],
        _arguments: &StatisticsArgs,
    ) -> datafusion::error::Result<Arc<Statistics>> {
        Ok(self.statistics.clone())
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn ExecutionPlan>> {
        Some(Arc::new(KvScanExec::new(
            self.source(),
            self.way.clone(),
            limit,
        )))
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> datafusion::error::Result<SendableRecordBatchStream> {
        if let Some(vector) = &self.vector {
            let config = vector.index.method.hnsw().ok_or_else(|| {
                to_datafusion(Error::internal(
                    "a vector scan of an index that is not HNSW",
                ))
            })?;
            let ef = self
                .vector_settings
                .ef_search
                .max(vector.wanted.unwrap_or(0));
            let graph = self
                .database
                .hnsw_graph(&self.table, &vector.index)
                .map_err(to_datafusion)?;
            let batches = VectorBatches {
                source: self.source(),
                search: qubedb_model::hnsw::Search::new(
                    qubedb_model::hnsw::SearchSource::Cached(self.view.clone(), graph),
                    vector.index.id,
                    config.metric,
                    &vector.query,
                    ef,
                ),
                unguaranteed: self.unguaranteed(),
                predicate: vector.predicate.clone(),
                current: None,
                pending: std::collections::VecDeque::new(),
                wanted: vector.wanted,
                produced: 0,
                returned_nodes: 0,
                searched: false,
                iterative: self.vector_settings.iterative,
                max_scan_tuples: self.vector_settings.max_scan_tuples,
            };
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::iter(batches),
            )));
        }
        let access = self.way.access();
        let ranges = self.partitions.get(partition).cloned().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal(format!(
                "scan of {} has no partition {partition}",
                self.table.name
            ))
        })?;
        let unguaranteed = self.unguaranteed();
        let (slots, schema) = match &self.exact {
            Some(exact) if !unguaranteed.is_empty() => {
                (exact.read_slots.clone(), exact.read_schema.clone())
            }
            _ => (self.slots.clone(), self.schema.clone()),
        };
        let batches = RowBatches {
            table: self.table.clone(),
            view: self.view.clone(),
            slots,
            schema,
            ranges: RangeCursor { ranges, next: 0 },
            pending: None,
            reverse: self.way.reverse,
            through_index: access.index.clone(),
            index_only: match &access.index {
                Some(index) if self.index_only() => Some(IndexOnly {
                    prefix_bytes: Key::index_prefix(index.id).len(),
                    index_columns: index.columns.clone(),
                    include: index.include.clone(),
                }),
                _ => None,
            },
            count_only: access.index.is_none() && self.index_only(),
            rows: None,
            // With filters to evaluate, the limit counts the rows that pass them.
            remaining: match unguaranteed.is_empty() {
                true => self.limit.unwrap_or(usize::MAX),
                false => usize::MAX,
            },
            done: false,
            non_null_slot: None,
        };
        match &self.exact {
            Some(exact) if !unguaranteed.is_empty() => {
                let filtered = FilteredBatches {
                    batches,
                    exact: exact.clone(),
                    filters: unguaranteed,
                    output_columns: self.slots.len(),
                    remaining: self.limit.unwrap_or(usize::MAX),
                };
                Ok(Box::pin(RecordBatchStreamAdapter::new(
                    self.schema.clone(),
                    futures::stream::iter(filtered),
                )))
            }
            _ => Ok(Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::iter(batches),
            ))),
        }
    }
}

/// The rows of `ranges` (points of row keys) with the exact filters `unguaranteed` applied, cut to
/// the scan's output columns.
fn rows_of_points(
    source: &ScanSource,
    ranges: Arc<[KeyRange]>,
    unguaranteed: &[usize],
) -> Box<dyn Iterator<Item = datafusion::error::Result<RecordBatch>> + Send> {
    let filtered = source.exact.as_ref().filter(|_| !unguaranteed.is_empty());
    let (slots, schema) = match filtered {
        Some(exact) => (exact.read_slots.clone(), exact.read_schema.clone()),
        None => (source.slots.clone(), source.schema.clone()),
    };
    let batches = RowBatches {
        table: source.table.clone(),
        view: source.view.clone(),
        slots,
        schema,
        ranges: RangeCursor { ranges, next: 0 },
        pending: None,
        reverse: false,
        through_index: None,
        index_only: None,
        count_only: false,
        rows: None,
        remaining: usize::MAX,
        done: false,
        non_null_slot: source
            .vector
            .as_ref()
            .and_then(|vector| vector.index.columns.first().copied()),
    };
    match filtered {
        Some(exact) => Box::new(FilteredBatches {
            batches,
            exact: exact.clone(),
            filters: unguaranteed.to_vec(),
            output_columns: source.slots.len(),
            remaining: usize::MAX,
        }),
        None => Box::new(batches),
    }
}

/// The rows an HNSW search finds, batch after batch of candidates, until enough pass the filters
/// (see `sql/vector_scan.rs`). A candidate whose row the snapshot does not hold (a deleted row's
/// node) reads as nothing. Rows are read in the index's order, no more at a time than are still
/// wanted, so the scan stops at the first `wanted` rows that pass (the fast path's `nearest_rows`
/// reads the same rows).
struct VectorBatches {
    source: ScanSource,
    search: qubedb_model::hnsw::Search,
    unguaranteed: Vec<usize>,
    predicate: Option<Arc<dyn PhysicalExpr>>,
    current: Option<Box<dyn Iterator<Item = datafusion::error::Result<RecordBatch>> + Send>>,
    /// Candidates of the last search batch whose rows are not read yet, nearest first.
    pending: std::collections::VecDeque<Vec<u8>>,
    wanted: Option<usize>,
    produced: usize,
    returned_nodes: usize,
    searched: bool,
    iterative: bool,
    max_scan_tuples: usize,
}

impl VectorBatches {
    fn apply_predicate(&self, batch: RecordBatch) -> datafusion::error::Result<RecordBatch> {
        let Some(predicate) = &self.predicate else {
            return Ok(batch);
        };
        let mask = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask = datafusion::arrow::array::AsArray::as_boolean_opt(mask.as_ref())
            .ok_or_else(|| to_datafusion(Error::internal("a filter that is not boolean")))?
            .clone();
        Ok(datafusion::arrow::compute::filter_record_batch(
            &batch, &mask,
        )?)
    }
}

impl Iterator for VectorBatches {
    type Item = datafusion::error::Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(current) = &mut self.current {
                match current.next() {
                    Some(Ok(batch)) => {
                        let batch = match self.apply_predicate(batch) {
                            Ok(batch) => batch,
                            Err(error) => return Some(Err(error)),
                        };
                        if batch.num_rows() == 0 {
                            continue;
                        }
                        self.produced += batch.num_rows();
                        return Some(Ok(batch));
                    }
                    Some(Err(error)) => return Some(Err(error)),
                    None => self.current = None,
                }
            }
            if self.wanted.is_some_and(|wanted| self.produced >= wanted) {
                return None;
            }
            if self.pending.is_empty() {
                if self.searched && (!self.iterative || self.returned_nodes >= self.max_scan_tuples)
                {
                    return None;
                }
                let count = match self.search.next_batch() {
                    Ok(count) => count,
                    Err(error) => return Some(Err(to_datafusion(error.into()))),
                };
                self.searched = true;
                if count == 0 {
                    return None;
                }
                self.returned_nodes += count;
                self.pending = (0..count)
                    .filter_map(|position| self.search.key(position))
                    .collect();
            }
            let chunk = match self.wanted {
                Some(wanted) => wanted.saturating_sub(self.produced).max(1),
                None => self.pending.len(),
            };
            let keys: Vec<Vec<u8>> = self
                .pending
                .drain(..chunk.min(self.pending.len()))
                .collect();
            let prefix = Key::row_prefix(self.source.table.id);
            let ranges: Vec<KeyRange> = keys
                .iter()
                .map(|primary_key| {
                    let mut key = Vec::with_capacity(prefix.len() + primary_key.len());
                    key.extend_from_slice(&prefix);
                    key.extend_from_slice(primary_key);
                    (Bound::Included(key.clone()), Bound::Included(key))
                })
                .collect();
            self.current = Some(rows_of_points(
                &self.source,
                Arc::from(ranges),
                &self.unguaranteed,
            ));
        }
    }
}

/// A scan's batches with the filters its access path does not guarantee applied, cut to its output
/// columns and its limit.
struct FilteredBatches {
    batches: RowBatches,
    exact: Arc<ExactFilters>,
    filters: Vec<usize>,
    output_columns: usize,
    remaining: usize,
}

impl Iterator for FilteredBatches {
    type Item = datafusion::error::Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.remaining > 0 {
            let batch = match self.batches.next()? {
                Ok(batch) => batch,
                Err(error) => return Some(Err(error)),
            };
            let batch = match self
                .exact
                .filtered(&self.filters, &batch, self.output_columns)
            {
                Ok(batch) => batch,
                Err(error) => return Some(Err(error)),
            };
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = batch.slice(0, batch.num_rows().min(self.remaining));
            self.remaining -= batch.num_rows();
            return Some(Ok(batch));
        }
        None
    }
}

/// A read view fixed for a whole statement, carried in the session config of plans made while the
/// statement runs (the per-row subqueries of [`crate::sql::apply`]): by then an autocommit
/// statement's transaction has already committed, and its rows must still come from its snapshot.
pub(crate) struct PinnedView(pub(crate) ReadView);

/// The view a scan planned in `session` reads: the pinned one, else the transaction's current one.
pub(crate) fn current_view(
    shared: &Shared,
    session: &dyn DataFusionSession,
) -> datafusion::error::Result<ReadView> {
    if let Some(pinned) = session.config().get_extension::<PinnedView>() {
        return Ok(pinned.0.clone());
    }
    let state = shared.state.lock();
    let transaction = state
        .transaction
        .as_ref()
        .ok_or_else(|| to_datafusion(Error::internal("table scanned outside a transaction")))?;
    Ok(transaction.read_view())
}

/// A stored key and its value.
type KeyValue = (Vec<u8>, Vec<u8>);

/// The ranges of one partition, shared, and how many of them were taken.
struct RangeCursor {
    ranges: Arc<[KeyRange]>,
    next: usize,
}

impl RangeCursor {
    fn next(&mut self) -> Option<&KeyRange> {
        let range = self.ranges.get(self.next)?;
        self.next += 1;
        Some(range)
    }
}

struct RowBatches {
    table: Arc<TableDef>,
    view: ReadView,
    slots: Vec<Option<usize>>,
    schema: SchemaRef,
    ranges: RangeCursor,
    /// What is left of a range a full batch interrupted.
    pending: Option<KeyRange>,
    /// Each range is read backwards (and the ranges come last first).
    reverse: bool,
    /// The index whose entries the ranges are over (their values hold the rows' primary keys).
    through_index: Option<IndexDef>,
    /// The output comes from the index entries alone.
    index_only: Option<IndexOnly>,
    /// Each range is a row known to exist and no column is output: the ranges are counted, not read.
    count_only: bool,
    rows: Option<qubedb_kv::ScanIterator>,
    remaining: usize,
    done: bool,
    /// A row read with `get` whose value in this slot is NULL is left out (an HNSW node stays when
    /// its row's vector is set to NULL, but the row is not in the index).
    non_null_slot: Option<usize>,
}

/// How to read columns out of an index entry: its key is the index prefix, the index columns' keycode
/// (then, for a non-unique index, the primary key's); its value is the primary key's keycode, then the
/// `INCLUDE` columns'.
struct IndexOnly {
    prefix_bytes: usize,
    index_columns: Vec<usize>,
    include: Vec<usize>,
}

/// The values of every column an index entry holds, by slot (NULL for the others).
fn entry_values(
    table: &TableDef,
    index_only: &IndexOnly,
    key: &[u8],
    value: &[u8],
) -> Result<Vec<Value>, Error> {
    let mut values = vec![Value::Null; table.columns.len()];
    let mut at = index_only.prefix_bytes;
    for &slot in &index_only.index_columns {
        values[slot] = decode_value(key, &mut at, table.columns[slot].data_type)?;
    }
    let mut at = 0;
    for &slot in table.primary_key.iter().chain(&index_only.include) {
        values[slot] = decode_value(value, &mut at, table.columns[slot].data_type)?;
    }
    Ok(values)
}

/// The one key of a one-key range (a point lookup, a GIN candidate): read with `get`, since a range
/// iterator over the store and the write buffer costs several times more.
fn point_key(range: &KeyRange) -> Option<&[u8]> {
    match range {
        (Bound::Included(start), Bound::Included(end)) if start == end => Some(start),
        _ => None,
    }
}

/// Decodes stored row `value` into the builders of the projected slots: `position_of_slot` holds the
/// output position of each slot up to the last projected one (later values are not read).
fn decode_row(
    table: &TableDef,
    position_of_slot: &[Option<usize>],
    value: &[u8],
    builders: &mut [Option<ColumnBuilder>],
) -> Result<(), Error> {
    if position_of_slot.is_empty() {
        return Ok(());
    }
    let mut reader = RowReader::new(value)?;
    for (slot, position) in position_of_slot.iter().enumerate() {
        let raw = if slot < reader.slots {
            reader.next_value()?
        } else {
            None
        };
        let Some(position) = position else { continue };
        let builder = builders[*position]
            .as_mut()
            .expect("projected slots have builders");
        match raw {
            Some(raw) => builder.append_raw(raw)?,
            None => builder.append_value(&table.columns[slot].missing)?,
        }
    }
    Ok(())
}

impl RowBatches {
    /// True when `row` is NULL in `non_null_slot` (see the field).
    fn null_in_required_slot(
        table: &TableDef,
        non_null_slot: Option<usize>,
        row: &[u8],
    ) -> Result<bool, Error> {
        let Some(slot) = non_null_slot else {
            return Ok(false);
        };
        Ok(match qubedb_model::row::is_null_at(row, slot)? {
            Some(null) => null,
            None => matches!(table.columns[slot].missing, Value::Null),
        })
    }

    /// The next stored pair of the ranges (a row, or an index entry).
    fn next_entry(&mut self) -> Result<Option<KeyValue>, Error> {
        loop {
            if let Some(rows) = &mut self.rows
                && let Some(item) = rows.next()
            {
                return Ok(Some(item?));
            }
            match self.ranges.next() {
                None => return Ok(None),
                Some(range) => match point_key(range) {
                    Some(key) => {
                        self.rows = None;
                        if let Some(value) = self.view.get(key)? {
                            return Ok(Some((key.to_vec(), value)));
                        }
                    }
                    None => self.rows = Some(self.view.scan(range.clone(), self.reverse)?),
                },
            }
        }
    }

    /// The next row: the next stored pair, or for an index scan the row its entry points to.
    fn next_row(&mut self) -> Result<Option<KeyValue>, Error> {
        let Some((key, value)) = self.next_entry()? else {
            return Ok(None);
        };
        let Some(index) = &self.through_index else {
            return Ok(Some((key, value)));
        };
        let primary_key = crate::sql::write::entry_primary_key(&self.table, index, &value)?;
        let row_key = Key::Row(self.table.id, primary_key.to_vec()).encode();
        let Some(row) = self.view.get(&row_key)? else {
            return Err(Error::corruption(
                "XX001",
                format!(
                    "an index entry of table {} points to a missing row",
                    self.table.name
                ),
            ));
        };
        Ok(Some((row_key, row)))
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, Error> {
        let capacity = SCAN_BATCH_ROWS.min(self.remaining);
        let mut builders: Vec<Option<ColumnBuilder>> = self
            .slots
            .iter()
            .map(|slot| {
                slot.map(|slot| ColumnBuilder::new(self.table.columns[slot].data_type, capacity))
            })
            .collect();
        let mut row_ids = Int64Builder::new();
        // Output position of each slot, so one pass over the row fills every projected column.
        let mut position_of_slot: Vec<Option<usize>> = vec![None; self.table.columns.len()];
        for (position, slot) in self.slots.iter().enumerate() {
            if let Some(slot) = slot {
                position_of_slot[*slot] = Some(position);
            }
        }
        let wants_row_id = self.slots.iter().any(Option::is_none);
        // Values after the last projected slot are not decoded (none at all for `count(*)`).
        let decoded_slots = position_of_slot
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |last| last + 1);
        let mut count = 0;
        // Ranges that are each a row known to exist, none of it wanted: counted.
        while self.count_only && count < capacity {
            if self.ranges.next().is_none() {
                break;
            }
            count += 1;
        }
        while self.index_only.is_some() && count < capacity {
            let Some((key, value)) = self.next_entry()? else {
                break;
            };
            count += 1;
            if self.slots.is_empty() {
                continue;
            }
            let index_only = self.index_only.as_ref().expect("checked by the loop");
            let values = entry_values(&self.table, index_only, &key, &value)?;
            for (builder, slot) in builders.iter_mut().zip(&self.slots) {
                let (Some(builder), Some(slot)) = (builder, slot) else {
                    return Err(Error::internal("an index-only scan outputs the row id"));
                };
                builder.append_value(&values[*slot])?;
            }
        }
        let row_prefix_bytes = Key::row_prefix(self.table.id).len();
        let table = self.table.clone();
        let decode = |key: &[u8],
                      value: &[u8],
                      builders: &mut [Option<ColumnBuilder>],
                      row_ids: &mut Int64Builder|
         -> Result<(), Error> {
            decode_row(&table, &position_of_slot[..decoded_slots], value, builders)?;
            if wants_row_id {
                let mut at = row_prefix_bytes;
                match decode_value(key, &mut at, DataType::BigInt)? {
                    Value::Integer(id) => row_ids.append_value(id),
                    other => return Err(Error::internal(format!("row id {other:?}"))),
                }
            }
            Ok(())
        };
        // Rows through an index: an index entry, then the row it points to.
        while self.index_only.is_none() && self.through_index.is_some() && count < capacity {
            let Some((key, value)) = self.next_row()? else {
                break;
            };
            decode(&key, &value, &mut builders, &mut row_ids)?;
            count += 1;
        }
        // Rows read in place (`ReadView::visit`), a range at a time; a range a full batch interrupts
        // is resumed after its last key.
        while !self.count_only
            && self.index_only.is_none()
            && self.through_index.is_none()
            && count < capacity
        {
            let range = match self.pending.take() {
                Some(range) => range,
                None => match self.ranges.next() {
                    // A one-key range is read with `get`, the range borrowed.
                    Some(range) => match point_key(range) {
                        Some(key) => {
                            if let Some(value) = self.view.get(key)?
                                && !Self::null_in_required_slot(
                                    &self.table,
                                    self.non_null_slot,
                                    &value,
                                )?
                            {
                                decode(key, &value, &mut builders, &mut row_ids)?;
                                count += 1;
                            }
                            continue;
                        }
                        None => range.clone(),
                    },
                    None => break,
                },
            };
            let mut failure: Option<Error> = None;
            let mut stopped_after: Option<Vec<u8>> = None;
            self.view.visit(&range, self.reverse, &mut |key, value| {
                if let Err(error) = decode(key, value, &mut builders, &mut row_ids) {
                    failure = Some(error);
                    return false;
                }
                count += 1;
                if count == capacity {
                    stopped_after = Some(key.to_vec());
                    return false;
                }
                true
            })?;
            if let Some(error) = failure {
                return Err(error);
            }
            if let Some(last) = stopped_after {
                let (start, end) = range;
                self.pending = Some(match self.reverse {
                    false => (Bound::Excluded(last), end),
                    true => (start, Bound::Excluded(last)),
                });
            }
        }
        if count == 0 {
            return Ok(None);
        }
        self.remaining -= count;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(builders.len());
        for builder in &mut builders {
            match builder {
                Some(builder) => columns.push(builder.finish()?),
                None => columns.push(Arc::new(row_ids.finish())),
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(count));
        Ok(Some(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?))
    }
}

impl Iterator for RowBatches {
    type Item = datafusion::error::Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.remaining == 0 {
            return None;
        }
        match self.next_batch() {
            Ok(Some(batch)) => Some(Ok(batch)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(to_datafusion(error)))
            }
        }
    }
}
