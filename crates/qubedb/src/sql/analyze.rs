//! `ANALYZE` and `VACUUM`.
//!
//! ANALYZE reads every row of a table (one aggregate query through DataFusion) and stores, per column,
//! the fraction of NULLs, the number of distinct values (PostgreSQL's `n_distinct` convention: negative
//! when it grows with the table) and the average width of the values' text form, plus the row count,
//! under `Key::Statistics(table)` in the session's transaction: statistics commit or roll back with it,
//! as `pg_statistic` does. `pg_stats` and `pg_class.reltuples` show them, and every scan gives DataFusion
//! an estimate made from them (`KvScanExec`'s statistics in `sql/provider.rs`), which its join
//! selection uses to pick hash-join build sides, and the scan its access path (most common values and
//! histograms from a sample of the rows).
//!
//! Automatic ANALYZE ([`AutoAnalyze`], PostgreSQL's autovacuum analyze): every statement's writer reports
//! how many rows it changed per table; once a table has changed more than 50 rows plus 10% of the rows
//! its last ANALYZE counted (`autovacuum_analyze_threshold` / `_scale_factor`), the next commit schedules
//! an ANALYZE of it in the background, in a session of its own on the database's runtime, so no client's
//! statement waits for it. It starts [`AUTO_ANALYZE_DELAY_MS`] later (PostgreSQL's autovacuum wakes once
//! a minute): a burst of changes is analyzed once, and what a session just wrote does not change plans
//! under it. `Database::wait_for_maintenance` runs the scheduled ones at once and waits for them.
//!
//! VACUUM has nothing to reclaim: the store is copy-on-write, and a committed DELETE or UPDATE frees its
//! pages at commit, with no dead row versions left in the table. It checks its tables exist and, with
//! ANALYZE, analyzes them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::sql::sqlparser::ast::{Analyze, Statement, VacuumStatement};
use parking_lot::Mutex;
use qubedb_kv::Transaction;
use qubedb_model::catalog::{
    Catalog, ColumnStatistics, CommonValue, Object, TableDef, TableStatistics, read_statistics,
    write_statistics,
};
use qubedb_model::keycode::encode_value;
use qubedb_model::keys::Key;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::database::DatabaseInner;
use crate::error::{Error, Result};
use crate::result::{QueryResult, StatementOutcome};
use crate::session::Session;
use crate::sql::dml::quote;
use crate::sql::rewrite::lookup;
use crate::sql::write::decode_row;

/// Above this share of the rows, a column's distinct count is stored as a negative fraction.
const DISTINCT_FRACTION_THRESHOLD: f64 = 0.1;
/// Entries of a most-common-values list and buckets of a histogram (PostgreSQL's
/// `default_statistics_target`).
pub const STATISTICS_TARGET: usize = 100;
/// Rows sampled for most-common values and histograms (PostgreSQL samples 300 × the target).
pub const SAMPLE_ROWS: usize = 300 * STATISTICS_TARGET;
/// Seed of the sample: the same rows give the same statistics.
const SAMPLE_SEED: u64 = 0x5157_4244;

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
        match lookup(&catalog, &self.shared.temp_schema, name)? {
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
        let (sampled_rows, mut samples) = {
            let mut state = self.shared.state.lock();
            sample(state.transaction()?, table, slots)?
        };
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
            // A jsonb or json column keeps no value distribution: its values are whole documents,
            // no scan compares ranges of them, and they would make the statistics wide.
            let (most_common, histogram) = if matches!(
                table.columns[slot].data_type,
                qubedb_model::DataType::Jsonb | qubedb_model::DataType::Json
            ) {
                (Vec::new(), Vec::new())
            } else {
                distribution(&mut samples[position], sampled_rows, distinct)
            };
            columns.push(ColumnStatistics {
                most_common,
                histogram,
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
        drop(state);
        self.shared.database.auto_analyze.analyzed(table.id, rows);
        Ok(())
    }
}

/// Rows changed in a table beyond which it is analyzed again (PostgreSQL's
/// `autovacuum_analyze_threshold`)...
pub const AUTO_ANALYZE_THRESHOLD_ROWS: u64 = 50;
/// ... plus this fraction of the rows its last ANALYZE counted (`autovacuum_analyze_scale_factor`).
pub const AUTO_ANALYZE_SCALE_FACTOR: f64 = 0.1;

/// How long after a table becomes due its automatic ANALYZE starts (PostgreSQL's
/// `autovacuum_naptime`).
pub const AUTO_ANALYZE_DELAY_MS: u64 = 60_000;

/// What automatic ANALYZE knows of one table.
#[derive(Debug, Default)]
struct TableChanges {
    /// Rows changed since the last ANALYZE (or since the database was opened).
    changed: u64,
    /// Rows the last ANALYZE counted (0 until one ran in this process).
    analyzed_rows: u64,
    /// An automatic ANALYZE of the table is running.
    running: bool,
}

/// Automatic ANALYZE of the tables whose rows changed enough (see the module docs).
pub(crate) struct AutoAnalyze {
    tables: Mutex<HashMap<u64, TableChanges>>,
    /// Some table is due (checked on every commit without taking the lock).
    due: AtomicBool,
    running: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Bumped to start the scheduled ANALYZEs without waiting out their delay.
    hurry: tokio::sync::watch::Sender<u64>,
}

impl Default for AutoAnalyze {
    fn default() -> Self {
        AutoAnalyze {
            tables: Mutex::default(),
            due: AtomicBool::new(false),
            running: Mutex::default(),
            hurry: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl AutoAnalyze {
    /// A statement changed `rows` rows of `table`.
    pub(crate) fn note(&self, table: u64, rows: u64) {
        let mut tables = self.tables.lock();
        let changes = tables.entry(table).or_default();
        changes.changed += rows;
        if !changes.running && changes.changed > threshold(changes.analyzed_rows) {
            self.due.store(true, Ordering::Release);
        }
    }

    /// An ANALYZE of `table` counted `rows` rows.
    pub(crate) fn analyzed(&self, table: u64, rows: u64) {
        let mut tables = self.tables.lock();
        let changes = tables.entry(table).or_default();
        changes.changed = 0;
        changes.analyzed_rows = rows;
    }

    /// Starts an ANALYZE of every due table of `catalog`, each in a session of its own on the
    /// database's runtime. Called after each commit; costs one atomic load when nothing is due.
    pub(crate) fn start_due(&self, database: &Arc<DatabaseInner>, catalog: &Catalog) {
        if !self.due.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut starting = Vec::new();
        {
            let mut tables = self.tables.lock();
            for (&id, changes) in tables.iter_mut() {
                if changes.running || changes.changed <= threshold(changes.analyzed_rows) {
                    continue;
                }
                let Some(table) = catalog.table(id) else {
                    continue;
                };
                changes.running = true;
                starting.push((
                    id,
                    format!(
                        "ANALYZE {}.{}",
                        quote(catalog.schema_name(table.schema)),
                        quote(&table.name)
                    ),
                ));
            }
        }
        let mut running = self.running.lock();
        running.retain(|task| !task.is_finished());
        for (id, sql) in starting {
            // Weak while waiting: a database its users closed is not kept open for its ANALYZE.
            let weak = Arc::downgrade(database);
            let mut hurry = self.hurry.subscribe();
            running.push(database.runtime.spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_millis(AUTO_ANALYZE_DELAY_MS)) => {}
                    _ = hurry.changed() => {}
                }
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let mut session = Session::new(inner.clone());
                // A failure (the table dropped meanwhile, a conflict) leaves the table due: the next
                // change past the threshold tries again.
                let _ = session.run_async(&sql, &[]).await;
                drop(session);
                if let Some(changes) = inner.auto_analyze.tables.lock().get_mut(&id) {
                    changes.running = false;
                }
            }));
        }
    }

    /// The scheduled and running automatic ANALYZEs, told to start now and taken for waiting on.
    pub(crate) fn hurry(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let tasks = std::mem::take(&mut *self.running.lock());
        self.hurry.send_modify(|generation| *generation += 1);
        tasks
    }
}

/// Changed rows past which a table whose last ANALYZE counted `analyzed_rows` rows is due.
fn threshold(analyzed_rows: u64) -> u64 {
    AUTO_ANALYZE_THRESHOLD_ROWS + (analyzed_rows as f64 * AUTO_ANALYZE_SCALE_FACTOR) as u64
}

/// A uniform sample of at most [`SAMPLE_ROWS`] rows of `table` (reservoir sampling): the number of rows
/// sampled, and for each of `slots` the keycodes of the sampled non-NULL values.
fn sample(
    transaction: &Transaction,
    table: &TableDef,
    slots: &[usize],
) -> Result<(usize, Vec<Vec<Vec<u8>>>)> {
    let mut random = StdRng::seed_from_u64(SAMPLE_SEED);
    let mut reservoir: Vec<Vec<Option<Vec<u8>>>> = Vec::new();
    for (index, item) in transaction
        .scan(Key::row_range(table.id), false)?
        .enumerate()
    {
        let (_, bytes) = item?;
        let position = if reservoir.len() < SAMPLE_ROWS {
            reservoir.len()
        } else {
            // Row `index` replaces a sampled one with probability SAMPLE_ROWS / (index + 1).
            let candidate = random.random_range(0..=index);
            if candidate >= SAMPLE_ROWS {
                continue;
            }
            candidate
        };
        let values = decode_row(table, &bytes)?;
        let keys: Vec<Option<Vec<u8>>> = slots
            .iter()
            .map(|&slot| {
                (!values[slot].is_null()).then(|| {
                    let mut key = Vec::new();
                    encode_value(&values[slot], &mut key);
                    key
                })
            })
            .collect();
        if position == reservoir.len() {
            reservoir.push(keys);
        } else {
            reservoir[position] = keys;
        }
    }
    let sampled = reservoir.len();
    let mut columns: Vec<Vec<Vec<u8>>> = vec![Vec::with_capacity(sampled); slots.len()];
    for row in reservoir {
        for (column, key) in columns.iter_mut().zip(row) {
            if let Some(key) = key {
                column.push(key);
            }
        }
    }
    Ok((sampled, columns))
}

/// A column's most common values and histogram from its sampled non-NULL keycodes, as PostgreSQL's
/// `compute_scalar_stats` makes them: when the sample holds every distinct value of the table and they
/// fit the list, all of them are common values; otherwise the values seen at least twice and over 1.25
/// times the average count, up to [`STATISTICS_TARGET`]. The histogram divides the remaining values into
/// equally filled buckets. Frequencies are fractions of all sampled rows (NULLs included).
fn distribution(
    values: &mut [Vec<u8>],
    sampled_rows: usize,
    table_distinct: f64,
) -> (Vec<CommonValue>, Vec<Vec<u8>>) {
    if values.is_empty() || sampled_rows == 0 {
        return (Vec::new(), Vec::new());
    }
    values.sort_unstable();
    let mut runs: Vec<(&[u8], usize)> = Vec::new();
    for value in values.iter() {
        match runs.last_mut() {
            Some((last, count)) if *last == value.as_slice() => *count += 1,
            _ => runs.push((value, 1)),
        }
    }
    let all_fit = runs.len() <= STATISTICS_TARGET && table_distinct <= runs.len() as f64;
    let average = values.len() as f64 / runs.len() as f64;
    let mut common: Vec<(&[u8], usize)> = runs
        .iter()
        .copied()
        .filter(|&(_, count)| all_fit || (count >= 2 && count as f64 > 1.25 * average))
        .collect();
    common.sort_by(|left, right| right.1.cmp(&left.1).then(left.0.cmp(right.0)));
    common.truncate(STATISTICS_TARGET);
    let most_common: Vec<CommonValue> = common
        .iter()
        .map(|&(key, count)| CommonValue {
            key: key.to_vec(),
            frequency: count as f64 / sampled_rows as f64,
        })
        .collect();
    // The histogram covers the values not in the list, with their multiplicity.
    let rest: Vec<&[u8]> = runs
        .iter()
        .filter(|(key, _)| !common.iter().any(|(common_key, _)| common_key == key))
        .flat_map(|&(key, count)| std::iter::repeat_n(key, count))
        .collect();
    let distinct_rest = runs.len() - common.len();
    let mut histogram: Vec<Vec<u8>> = Vec::new();
    if distinct_rest >= 2 {
        let buckets = STATISTICS_TARGET.min(distinct_rest - 1);
        for bound in 0..=buckets {
            let key = rest[bound * (rest.len() - 1) / buckets];
            if histogram.last().is_none_or(|last| last.as_slice() != key) {
                histogram.push(key.to_vec());
            }
        }
    }
    (most_common, histogram)
}
