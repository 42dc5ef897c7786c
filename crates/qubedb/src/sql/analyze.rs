//! `ANALYZE` and `VACUUM`.
//!
//! ANALYZE reads every row of a table (one aggregate query through DataFusion) and stores, per column,
//! the fraction of NULLs, the number of distinct values (PostgreSQL's `n_distinct` convention: negative
//! when it grows with the table) and the average width of the values' text form, plus the row count,
//! under `Key::Statistics(table)` in the session's transaction: statistics commit or roll back with it,
//! as `pg_statistic` does. `pg_stats` and `pg_class.reltuples` show them, and every scan gives DataFusion
//! an estimate made from them (`KvScanExec`'s statistics in `sql/provider.rs`), which its join
//! selection uses to pick hash-join build sides. No histograms yet, and no automatic ANALYZE.
//!
//! VACUUM has nothing to reclaim: the store is copy-on-write, and a committed DELETE or UPDATE frees its
//! pages at commit, with no dead row versions left in the table. It checks its tables exist and, with
//! ANALYZE, analyzes them.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::sql::sqlparser::ast::{Analyze, Statement, VacuumStatement};
use qubedb_model::catalog::{
    ColumnStatistics, Object, TableDef, TableStatistics, read_statistics, write_statistics,
};

use crate::error::{Error, Result};
use crate::result::{QueryResult, StatementOutcome};
use crate::session::Session;
use crate::sql::dml::quote;
use crate::sql::rewrite::lookup;

/// Above this share of the rows, a column's distinct count is stored as a negative fraction.
const DISTINCT_FRACTION_THRESHOLD: f64 = 0.1;

impl Session {
    /// `VACUUM [FULL] [table]`.
    pub(crate) fn vacuum(&mut self, vacuum: &VacuumStatement) -> Result<QueryResult> {
        if vacuum.reindex
            && let Some(threshold) = &vacuum.threshold
            && let Some(kind) = crate::sql::parse::ReindexKind::from_code(&threshold.to_string())
            && let Some(name) = &vacuum.table_name
        {
            return self.reindex(kind, name);
        }
        if vacuum.sort_only || vacuum.delete_only || vacuum.reindex || vacuum.recluster {
            return Err(Error::not_supported(format!("{vacuum}")));
        }
        if let Some(name) = &vacuum.table_name {
            self.analyzable_table(name)?;
        }
        Ok(QueryResult::command(StatementOutcome::command("VACUUM", 0)))
    }

    /// `ANALYZE [table [FOR COLUMNS ...]]`; `COMPUTE STATISTICS` marks a `VACUUM ANALYZE`.
    pub(crate) async fn analyze(&mut self, analyze: &Analyze) -> Result<QueryResult> {
        let tag = if analyze.compute_statistics {
            "VACUUM"
        } else {
            "ANALYZE"
        };
        let tables: Vec<TableDef> = match &analyze.table_name {
            Some(name) => vec![self.analyzable_table(name)?],
            None => {
                let catalog = self.shared.state.lock().catalog.clone();
                catalog
                    .objects()
                    .filter_map(|object| match object {
                        Object::Table(table) => Some(table.clone()),
                        _ => None,
                    })
                    .collect()
            }
        };
        for table in tables {
            let slots = if analyze.columns.is_empty() {
                table.live_columns().map(|(slot, _)| slot).collect()
            } else {
                analyze
                    .columns
                    .iter()
                    .map(|column| {
                        let name = crate::sql::rewrite::normalize(column);
                        table.column_slot(&name).ok_or_else(|| {
                            Error::user(
                                "42703",
                                format!(
                                    "column \"{name}\" of relation \"{}\" does not exist",
                                    table.name
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<usize>>>()?
            };
            self.analyze_table(&table, &slots).await?;
        }
        Ok(QueryResult::command(StatementOutcome::command(tag, 0)))
    }

    /// The table `name` names (42P01 if none; 42809 for a view or sequence).
    fn analyzable_table(
        &self,
        name: &datafusion::sql::sqlparser::ast::ObjectName,
    ) -> Result<TableDef> {
        let catalog = self.shared.state.lock().catalog.clone();
        match lookup(&catalog, name)? {
            Some(Object::Table(table)) => Ok(table.clone()),
            Some(other) => Err(Error::user(
                "42809",
                format!("\"{}\" is not a table (it is a {})", name, other.kind()),
            )),
            None => Err(Error::user(
                "42P01",
                format!(
                    "relation \"{}\" does not exist",
                    crate::sql::rewrite::display_name(name)
                ),
            )),
        }
    }

    /// Computes and stores the statistics of `slots` of `table`, keeping other columns' earlier ones.
    async fn analyze_table(&mut self, table: &TableDef, slots: &[usize]) -> Result<()> {
        let catalog = self.shared.state.lock().catalog.clone();
        let relation = format!(
            "{}.{}",
            quote(catalog.schema_name(table.schema)),
            quote(&table.name)
        );
        let mut aggregates = vec!["count(*)".to_string()];
        for &slot in slots {
            let column = quote(&table.columns[slot].name);
            aggregates.push(format!("count({column})"));
            aggregates.push(format!("count(DISTINCT {column})"));
            aggregates.push(format!("avg(octet_length(CAST({column} AS TEXT)))"));
        }
        let sql = format!("SELECT {} FROM {relation}", aggregates.join(", "));
        let query = match crate::sql::parse::parse(&sql)?.pop() {
            Some(Statement::Query(query)) => *query,
            _ => {
                return Err(Error::internal(
                    "ANALYZE built a statement that is no query",
                ));
            }
        };
        let (_, batches) = self.collect_query(query).await?;
        let batch = batches
            .iter()
            .find(|batch| batch.num_rows() > 0)
            .ok_or_else(|| Error::internal("ANALYZE's aggregate returned no row"))?;
        let integer = |column: usize| -> Result<i64> {
            let array = batch.column(column);
            let array = datafusion::arrow::compute::cast(
                array,
                &datafusion::arrow::datatypes::DataType::Int64,
            )?;
            Ok(array.as_primitive::<Int64Type>().value(0))
        };
        let rows = integer(0)?.max(0) as u64;
        let mut columns = Vec::with_capacity(slots.len());
        for (position, &slot) in slots.iter().enumerate() {
            let base = 1 + position * 3;
            let non_null = integer(base)?.max(0) as f64;
            let distinct = integer(base + 1)?.max(0) as f64;
            let width = datafusion::arrow::compute::cast(
                batch.column(base + 2),
                &datafusion::arrow::datatypes::DataType::Float64,
            )?;
            let width = width.as_primitive::<Float64Type>();
            let average_width = if width.is_null(0) {
                0
            } else {
                width.value(0).round() as i64
            };
            let total = rows as f64;
            columns.push(ColumnStatistics {
                slot,
                null_fraction: if rows == 0 {
                    0.0
                } else {
                    (total - non_null) / total
                },
                distinct: if rows > 0 && distinct > DISTINCT_FRACTION_THRESHOLD * total {
                    -(distinct / total)
                } else {
                    distinct
                },
                average_width,
            });
        }
        let mut state = self.shared.state.lock();
        let transaction = state.transaction()?;
        let mut statistics = read_statistics(transaction, table.id)?.unwrap_or(TableStatistics {
            rows,
            analyzed_at: String::new(),
            columns: Vec::new(),
        });
        statistics.rows = rows;
        statistics.analyzed_at = chrono::Utc::now().to_rfc3339();
        statistics
            .columns
            .retain(|kept| !slots.contains(&kept.slot));
        statistics.columns.extend(columns);
        statistics.columns.sort_by_key(|column| column.slot);
        write_statistics(transaction, table.id, &statistics)?;
        Ok(())
    }
}
