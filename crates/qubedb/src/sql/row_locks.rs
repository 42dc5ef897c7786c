//! `SELECT ... FOR UPDATE` / `FOR SHARE` [`OF` tables] [`NOWAIT` | `SKIP LOCKED`]: row locks.
//!
//! A row lock is the store's write lock on the row's key, taken without writing
//! (`Transaction::lock_key`) and held until the transaction ends, so a concurrent UPDATE, DELETE or
//! locking SELECT of the row waits for it, as in PostgreSQL. The query runs with the key columns of each
//! locked table appended to its output (the primary key, or the hidden row id through the table's keyed
//! name); QubeDB locks each returned row's key, then returns the rows without those columns. A row
//! another transaction holds makes the statement wait and run again (as an UPDATE does:
//! `Session::restart_after_conflict`); a row changed by a transaction that committed after the
//! statement's snapshot makes it run again on a fresh snapshot under READ COMMITTED (PostgreSQL re-checks
//! the row's new version) and fails with 40001 under REPEATABLE READ. `NOWAIT` fails at once with 55P03;
//! `SKIP LOCKED` leaves such rows out, and applies the query's LIMIT and OFFSET after leaving them out.
//!
//! There is one lock strength: `FOR SHARE` takes the same exclusive lock as `FOR UPDATE` (stronger than
//! PostgreSQL's, so two sharing readers wait for each other). Only base tables named in FROM are locked.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::Schema;
use datafusion::sql::sqlparser::ast::{
    self, Expr, Ident, LimitClause, NonBlock, ObjectName, ObjectNamePart, Query, SelectItem,
    SetExpr, TableFactor,
};
use qubedb_model::catalog::{Object, TableDef};
use qubedb_model::keycode::encode_value;
use qubedb_model::keys::Key;
use qubedb_model::{DataType, Value};

use crate::error::{Error, Result};
use crate::result::QueryResult;
use crate::session::{Session, memory_stream};
use crate::sql::convert::value_at;
use crate::sql::provider::{KEYED_PREFIX, ROW_ID_COLUMN};
use crate::sql::rewrite::{lookup, normalize};

/// Prefix of the output columns carrying locked rows' keys (removed before the client sees them).
const LOCK_COLUMN_PREFIX: &str = "__qubedb_lock_";

/// What to do when another transaction holds a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocked {
    Wait,
    Fail,
    Skip,
}

/// A table whose rows the query locks, and where its key columns come in the output.
struct LockedTable {
    table: TableDef,
    /// The output positions of its key columns: the primary key's, or the hidden row id.
    key_positions: Vec<usize>,
}

impl Session {
    /// Runs a query with `FOR UPDATE` / `FOR SHARE` (see the module docs).
    pub(crate) async fn select_locking(&mut self, mut query: Query) -> Result<QueryResult> {
        let clauses = std::mem::take(&mut query.locks);
        let blocked = if clauses
            .iter()
            .any(|clause| clause.nonblock == Some(NonBlock::Nowait))
        {
            Blocked::Fail
        } else if clauses
            .iter()
            .any(|clause| clause.nonblock == Some(NonBlock::SkipLocked))
        {
            Blocked::Skip
        } else {
            Blocked::Wait
        };
        let named: Option<Vec<String>> = if clauses.iter().all(|clause| clause.of.is_some()) {
            Some(
                clauses
                    .iter()
                    .filter_map(|clause| clause.of.as_ref())
                    .map(last_part)
                    .collect(),
            )
        } else {
            None
        };
        // SKIP LOCKED counts LIMIT and OFFSET among the rows it keeps.
        let window = if blocked == Blocked::Skip {
            query
                .limit_clause
                .take()
                .map(|clause| window_of(&clause))
                .transpose()?
        } else {
            None
        };
        let catalog = self.shared.state.lock().catalog.clone();
        let SetExpr::Select(select) = query.body.as_mut() else {
            return Err(Error::user(
                "0A000",
                "FOR UPDATE is not allowed with UNION/INTERSECT/EXCEPT",
            ));
        };
        if select.distinct.is_some() {
            return Err(Error::user(
                "0A000",
                "FOR UPDATE is not allowed with DISTINCT clause",
            ));
        }
        if !matches!(&select.group_by, ast::GroupByExpr::Expressions(list, _) if list.is_empty())
            || select.having.is_some()
        {
            return Err(Error::user(
                "0A000",
                "FOR UPDATE is not allowed with GROUP BY clause",
            ));
        }
        // Each base table of FROM (or of the OF list): its qualifier, definition, and key columns.
        let mut locked: Vec<(String, TableDef)> = Vec::new();
        for from in &mut select.from {
            for factor in std::iter::once(&mut from.relation)
                .chain(from.joins.iter_mut().map(|join| &mut join.relation))
            {
                let TableFactor::Table { name, alias, .. } = factor else {
                    continue;
                };
                let Some(Object::Table(table)) = lookup(&catalog, &self.shared.temp_schema, name)?
                else {
                    continue;
                };
                let qualifier = match alias {
                    Some(alias) => normalize(&alias.name),
                    None => last_part(name),
                };
                if named
                    .as_ref()
                    .is_some_and(|names| !names.contains(&qualifier))
                {
                    continue;
                }
                if table.has_row_id() {
                    // The hidden row id is visible through the table's keyed name.
                    if alias.is_none() {
                        *alias = Some(ast::TableAlias {
                            explicit: true,
                            name: Ident::with_quote('"', &qualifier),
                            columns: Vec::new(),
                            at: None,
                        });
                    }
                    if let Some(ObjectNamePart::Identifier(last)) = name.0.last_mut() {
                        *last = Ident::with_quote('"', format!("{KEYED_PREFIX}{}", table.name));
                    }
                }
                locked.push((qualifier, table.clone()));
            }
        }
        if let Some(names) = &named
            && let Some(missing) = names
                .iter()
                .find(|name| !locked.iter().any(|(qualifier, _)| qualifier == *name))
        {
            return Err(Error::user(
                "42P01",
                format!("relation \"{missing}\" in FOR UPDATE clause not found in FROM clause"),
            ));
        }
        let mut appended = 0;
        for (qualifier, table) in &locked {
            let columns: Vec<String> = if table.has_row_id() {
                vec![ROW_ID_COLUMN.to_string()]
            } else {
                table
                    .primary_key
                    .iter()
                    .map(|&slot| table.columns[slot].name.clone())
                    .collect()
            };
            for column in columns {
                select.projection.push(SelectItem::ExprWithAlias {
                    expr: Expr::CompoundIdentifier(vec![
                        Ident::with_quote('"', qualifier),
                        Ident::with_quote('"', column),
                    ]),
                    alias: Ident::with_quote('"', format!("{LOCK_COLUMN_PREFIX}{appended}")),
                });
                appended += 1;
            }
        }
        let (schema, batches) = self.collect_query(query).await?;
        let mut tables: Vec<LockedTable> = Vec::new();
        let mut next = 0;
        for (_, table) in locked {
            let count = if table.has_row_id() {
                1
            } else {
                table.primary_key.len()
            };
            let key_positions = (next..next + count)
                .map(|number| {
                    schema
                        .index_of(&format!("{LOCK_COLUMN_PREFIX}{number}"))
                        .map_err(|_| Error::internal("a lock column is missing from the output"))
                })
                .collect::<Result<Vec<usize>>>()?;
            next += count;
            tables.push(LockedTable {
                table,
                key_positions,
            });
        }
        // Lock every row's keys; keep the rows locked (all of them but skipped ones).
        let mut kept_batches = Vec::with_capacity(batches.len());
        let (mut to_skip, mut to_keep) = window.unwrap_or((0, usize::MAX));
        for batch in &batches {
            let mut kept: Vec<u32> = Vec::with_capacity(batch.num_rows());
            for row in 0..batch.num_rows() {
                if to_keep == 0 {
                    break;
                }
                if self.lock_row(batch, row, &tables, blocked)? {
                    if to_skip > 0 {
                        to_skip -= 1;
                    } else {
                        kept.push(row as u32);
                        to_keep -= 1;
                    }
                }
            }
            kept_batches.push(select_rows(batch, &kept)?);
        }
        // The client sees the query's own columns.
        let visible: Vec<usize> = (0..schema.fields().len())
            .filter(|&index| {
                let name = schema.field(index).name();
                !name.starts_with(LOCK_COLUMN_PREFIX) && name != ROW_ID_COLUMN
            })
            .collect();
        let visible_schema = Arc::new(schema.project(&visible)?);
        let projected = kept_batches
            .iter()
            .map(|batch| Ok(batch.project(&visible)?))
            .collect::<Result<Vec<RecordBatch>>>()?;
        Ok(QueryResult::stream(
            memory_stream(visible_schema, projected),
            self.shared.clone(),
        ))
    }

    /// Locks the keys of row `row` of `batch` in each locked table. False when a key is held by another
    /// transaction and the query skips such rows.
    fn lock_row(
        &mut self,
        batch: &RecordBatch,
        row: usize,
        tables: &[LockedTable],
        blocked: Blocked,
    ) -> Result<bool> {
        for locked in tables {
            let mut key = Vec::new();
            let mut missing = false;
            if locked.table.has_row_id() {
                let value = value_at(batch.column(locked.key_positions[0]), row, DataType::BigInt)?;
                missing |= value.is_null();
                encode_value(&value, &mut key);
            } else {
                for (&position, &slot) in locked.key_positions.iter().zip(&locked.table.primary_key)
                {
                    let data_type = locked.table.columns[slot].data_type;
                    let value: Value = value_at(batch.column(position), row, data_type)?;
                    missing |= value.is_null();
                    encode_value(&value, &mut key);
                }
            }
            // The NULL side of an outer join has no row to lock.
            if missing {
                continue;
            }
            let key = Key::Row(locked.table.id, key).encode();
            let mut state = self.shared.state.lock();
            let transaction = state.transaction()?;
            match transaction.lock_key(&key) {
                Ok(()) => {}
                Err(qubedb_kv::Error::Busy) if blocked != Blocked::Wait => {
                    transaction.take_lock_wait();
                    transaction.stop_waiting();
                    if blocked == Blocked::Skip {
                        return Ok(false);
                    }
                    return Err(Error::user(
                        "55P03",
                        format!(
                            "could not obtain lock on row in relation \"{}\"",
                            locked.table.name
                        ),
                    ));
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(true)
    }
}

/// The rows of `batch` at `rows`.
fn select_rows(batch: &RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
    if rows.len() == batch.num_rows() {
        return Ok(batch.clone());
    }
    let indices = UInt32Array::from(rows.to_vec());
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| take(column, &indices, None))
        .collect::<std::result::Result<_, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(batch.schema().fields().clone())),
        columns,
        &options,
    )?)
}

/// OFFSET and LIMIT of a query as numbers (LIMIT ALL: no limit).
fn window_of(clause: &LimitClause) -> Result<(usize, usize)> {
    let number = |expr: &Expr| -> Result<usize> {
        expr.to_string().parse::<usize>().map_err(|_| {
            Error::not_supported(
                "FOR UPDATE SKIP LOCKED with a LIMIT or OFFSET that is not a number",
            )
        })
    };
    match clause {
        LimitClause::LimitOffset { limit, offset, .. } => Ok((
            offset
                .as_ref()
                .map(|offset| number(&offset.value))
                .transpose()?
                .unwrap_or(0),
            match limit {
                Some(Expr::Value(value)) if value.to_string().eq_ignore_ascii_case("null") => {
                    usize::MAX
                }
                Some(limit) => number(limit)?,
                None => usize::MAX,
            },
        )),
        LimitClause::OffsetCommaLimit { offset, limit } => Ok((number(offset)?, number(limit)?)),
    }
}

/// The last part of a name, folded as PostgreSQL folds identifiers.
fn last_part(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(ident)) => normalize(ident),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}
