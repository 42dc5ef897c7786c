//! INSERT, UPDATE and DELETE.
//!
//! Each statement is turned into a query that DataFusion evaluates — the VALUES or SELECT of an INSERT with
//! its column defaults, `SELECT t.*, <new values> FROM t [FROM ...] WHERE ...` for an UPDATE,
//! `SELECT t.* FROM t [USING ...] WHERE ...` for a DELETE — and QubeDB then writes the resulting rows through
//! [`TableWriter`], checking types, NOT NULL, CHECK, uniqueness and foreign keys. CHECK expressions and
//! RETURNING lists are evaluated by DataFusion too, over the written rows registered as a statement-local
//! table. Every change of one statement happens in the session's transaction, after the statement's
//! savepoint: a violation rolls back the whole statement and nothing else.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType as ArrowType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, ConflictTarget, Delete, Expr as SqlExpr, FromTable, Insert, ObjectName,
    ObjectNamePart, OnConflictAction, OnInsert, Query, SelectItem, SetExpr, Statement, TableFactor,
    TableObject, TableWithJoins, Update, UpdateTableFromKind,
};
use qubedb_model::catalog::{Catalog, Identity, IndexDef, Object, TableDef};
use qubedb_model::keys::Key;
use qubedb_model::{DataType, Value};

use crate::error::{Error, Result};
use crate::result::{QueryResult, StatementOutcome};
use crate::session::Session;
use crate::sql::convert::{ColumnBuilder, cast_to, field, value_at};
use crate::sql::parse::parse;
use crate::sql::provider::KEYED_PREFIX;
use crate::sql::rewrite::normalize;
use crate::sql::write::{
    ParentChange, StoredRow, TableWriter, display_value, enforce_referencing, not_null_violation,
};

/// Name of the statement-local table of `EXCLUDED` rows in `ON CONFLICT DO UPDATE`.
const EXCLUDED: &str = "excluded";
/// Column carrying a row's position through internal queries.
const ORDINAL_COLUMN: &str = "__qubedb_ordinal";

/// A double-quoted identifier.
/// Rows COPY converts and writes at a time.
const COPY_ROWS_PER_BATCH: usize = 8192;

pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Parses internal SQL that QubeDB generated into a query.
pub(crate) fn parse_query(sql: &str) -> Result<Query> {
    match parse(sql)?.pop() {
        Some(Statement::Query(query)) => Ok(*query),
        _ => Err(Error::internal(format!(
            "generated SQL is not a query: {sql}"
        ))),
    }
}

pub(crate) fn is_default_keyword(expr: &SqlExpr) -> bool {
    matches!(expr, SqlExpr::Identifier(ident) if ident.quote_style.is_none() && ident.value.eq_ignore_ascii_case("default"))
}

/// The table a DML statement targets, resolved in the transaction's catalog.
pub(crate) fn target_table(
    catalog: &Catalog,
    temp_schema: &str,
    name: &ObjectName,
) -> Result<TableDef> {
    match crate::sql::rewrite::lookup(catalog, temp_schema, name)? {
        Some(Object::Table(table)) => Ok(table.clone()),
        Some(Object::View(view)) => Err(Error::user(
            "55000",
            format!("cannot change view \"{}\": views are read-only", view.name),
        )),
        Some(other) => Err(Error::user(
            "42809",
            format!(
                "\"{}\" is not a table (it is a {})",
                crate::sql::rewrite::display_name(name),
                other.kind()
            ),
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

/// `schema.__qubedb_keyed_table`: the target table with its hidden row id visible.
fn keyed_name(catalog: &Catalog, table: &TableDef) -> String {
    format!(
        "{}.{}",
        quote(catalog.schema_name(table.schema)),
        quote(&format!("{KEYED_PREFIX}{}", table.name))
    )
}

/// A batch holding `rows` of `table`'s live columns (plus an ordinal column when asked).
pub(crate) fn rows_batch(
    table: &TableDef,
    rows: &[Vec<Value>],
    with_ordinal: bool,
) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (slot, column) in table.live_columns() {
        fields.push(field(&column.name, column.data_type, true));
        let mut builder = ColumnBuilder::new(column.data_type, rows.len());
        for row in rows {
            builder.append_value(&row[slot])?;
        }
        columns.push(builder.finish()?);
    }
    if with_ordinal {
        fields.push(Field::new(ORDINAL_COLUMN, ArrowType::UInt64, false));
        columns.push(Arc::new(UInt64Array::from_iter_values(
            0..rows.len() as u64,
        )));
    }
    let options =
        datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &options,
    )?)
}

pub(crate) fn mem_table(batch: RecordBatch) -> Result<Arc<MemTable>> {
    Ok(Arc::new(MemTable::try_new(
        batch.schema(),
        vec![vec![batch]],
    )?))
}

pub(crate) fn returning_sql(items: &[SelectItem], source: &str) -> String {
    let list: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("SELECT {} FROM {}", list.join(", "), quote(source))
}

impl Session {
    fn catalog(&self) -> Arc<Catalog> {
        self.shared.state.lock().catalog.clone()
    }

    /// Evaluates CHECK constraints over `rows`; the first violation fails with 23514.
    async fn check_constraints(&mut self, table: &TableDef, rows: &[Vec<Value>]) -> Result<()> {
        if table.checks.is_empty() || rows.is_empty() {
            return Ok(());
        }
        let batch = rows_batch(table, rows, false)?;
        self.register_local(&table.name, mem_table(batch)?);
        let list: Vec<String> = table
            .checks
            .iter()
            .map(|check| format!("({})", check.expression))
            .collect();
        let query = parse_query(&format!(
            "SELECT {} FROM {}",
            list.join(", "),
            quote(&table.name)
        ))?;
        let (_, batches) = self.collect_query(query).await?;
        self.shared.state.lock().locals.remove(&table.name);
        let mut row = 0;
        for batch in &batches {
            for (position, check) in table.checks.iter().enumerate() {
                let column = cast_to(batch.column(position), DataType::Boolean)?;
                let results = column
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| Error::internal("CHECK result is not boolean"))?;
                for index in 0..batch.num_rows() {
                    if !results.is_null(index) && !results.value(index) {
                        let values = &rows[row + index];
                        let shown: Vec<String> = table
                            .live_columns()
                            .map(|(slot, column)| display_value(&values[slot], column.data_type))
                            .collect();
                        return Err(Error::user(
                            "23514",
                            format!(
                                "new row for relation \"{}\" violates check constraint \"{}\"",
                                table.name, check.name
                            ),
                        )
                        .with_detail(format!("Failing row contains ({}).", shown.join(", "))));
                    }
                }
            }
            row += batch.num_rows();
        }
        Ok(())
    }

    fn check_not_null(table: &TableDef, values: &[Value]) -> Result<()> {
        for (slot, column) in table.live_columns() {
            if column.not_null && values[slot].is_null() {
                let shown: Vec<String> = table
                    .live_columns()
                    .map(|(slot, column)| display_value(&values[slot], column.data_type))
                    .collect();
                return Err(not_null_violation(table, slot)
                    .with_detail(format!("Failing row contains ({}).", shown.join(", "))));
            }
        }
        Ok(())
    }

    /// Runs RETURNING over the written rows, or returns the command tag alone.
    async fn finish_dml(
        &mut self,
        table: &TableDef,
        alias: &str,
        returning: Option<Vec<SelectItem>>,
        rows: Vec<Vec<Value>>,
        tag: String,
    ) -> Result<QueryResult> {
        let count = rows.len() as u64;
        let Some(items) = returning else {
            return Ok(QueryResult::command(StatementOutcome::command(tag, count)));
        };
        let batch = rows_batch(table, &rows, false)?;
        self.register_local(alias, mem_table(batch)?);
        let query = parse_query(&returning_sql(&items, alias))?;
        let (schema, batches) = self.collect_query(query).await?;
        Ok(QueryResult::rows_with_tag(schema, batches, tag, count))
    }

    /// Converts computed batches into stored values for `slots` of `table`.
    fn batch_values(
        table: &TableDef,
        batches: &[RecordBatch],
        slots: &[usize],
        offset: usize,
    ) -> Result<Vec<Vec<Value>>> {
        let mut rows = Vec::new();
        for batch in batches {
            let columns: Vec<ArrayRef> = slots
                .iter()
                .enumerate()
                .map(|(position, &slot)| {
                    cast_column(
                        batch.column(offset + position),
                        table.columns[slot].data_type,
                    )
                })
                .collect::<Result<_>>()?;
            for row in 0..batch.num_rows() {
                let mut values = Vec::with_capacity(slots.len());
                for (position, &slot) in slots.iter().enumerate() {
                    values.push(value_at(
                        &columns[position],
                        row,
                        table.columns[slot].data_type,
                    )?);
                }
                rows.push(values);
            }
        }
        Ok(rows)
    }

    pub(crate) async fn insert(&mut self, insert: Insert) -> Result<QueryResult> {
        let catalog = self.catalog();
        let TableObject::TableName(name) = &insert.table else {
            return Err(Error::not_supported("INSERT INTO a table function"));
        };
        if insert.or.is_some() || insert.ignore || insert.replace_into || insert.overwrite {
            return Err(Error::not_supported(
                "INSERT OR / IGNORE / REPLACE / OVERWRITE",
            ));
        }
        let table = target_table(&catalog, &self.shared.temp_schema, name)?;
        self.validate_table(&table)?;
        let alias = insert_alias(&table, &insert);
        let mut targets = insert_targets(&table, &insert.columns)?;
        // Without a column list, VALUES fill the first columns and the rest take their defaults.
        if insert.columns.is_empty()
            && let Some(source) = &insert.source
            && let SetExpr::Values(values) = source.body.as_ref()
            && let Some(width) = values.rows.first().map(|row| row.len())
        {
            if values.rows.iter().any(|row| row.len() != width) {
                return Err(Error::user(
                    "42601",
                    "VALUES lists must all be the same length",
                ));
            }
            targets.truncate(width);
        }
        let default_sql = |slot: usize| -> String {
            table.columns[slot]
                .default
                .clone()
                .unwrap_or_else(|| "NULL".to_string())
        };
        // The source rows: VALUES (with DEFAULT replaced) or a query; no source means DEFAULT VALUES.
        let from_source = insert.source.is_some();
        let mut source = match insert.source {
            Some(source) => *source,
            None => parse_query("SELECT 1 AS __qubedb_default_row")?,
        };
        if let SetExpr::Values(values) = source.body.as_mut() {
            for row in &mut values.rows {
                if row.len() > targets.len() {
                    return Err(Error::user(
                        "42601",
                        "INSERT has more expressions than target columns",
                    ));
                }
                if row.len() < targets.len() {
                    return Err(Error::user(
                        "42601",
                        "INSERT has more target columns than expressions",
                    ));
                }
                for (position, expr) in row.iter_mut().enumerate() {
                    if is_default_keyword(expr) {
                        let default =
                            parse_query(&format!("SELECT {}", default_sql(targets[position])))?;
                        if let SetExpr::Select(select) = *default.body
                            && let Some(SelectItem::UnnamedExpr(value)) =
                                select.projection.into_iter().next()
                        {
                            *expr = value;
                        }
                    } else if let Some(Identity::Always) = table.columns[targets[position]].identity
                    {
                        return Err(Error::user(
                            "428C9",
                            format!(
                                "cannot insert a non-DEFAULT value into column \"{}\"",
                                table.columns[targets[position]].name
                            ),
                        )
                        .with_detail(format!(
                            "Column \"{}\" is an identity column defined as GENERATED ALWAYS.",
                            table.columns[targets[position]].name
                        )));
                    }
                }
            }
        }
        let supplied: Vec<usize> = if from_source {
            targets.clone()
        } else {
            Vec::new()
        };
        let defaulted: Vec<usize> = table
            .live_columns()
            .map(|(slot, _)| slot)
            .filter(|slot| !supplied.contains(slot) && table.columns[*slot].default.is_some())
            .collect();
        let query = if defaulted.is_empty() {
            source
        } else {
            let defaults: Vec<String> = defaulted
                .iter()
                .map(|&slot| format!("({})", default_sql(slot)))
                .collect();
            let source_sql = source.to_string();
            let columns: Vec<String> = (0..supplied.len())
                .map(|index| format!("__qubedb_source_{index}"))
                .collect();
            let alias = if supplied.is_empty() {
                "__qubedb_source".to_string()
            } else {
                format!("__qubedb_source({})", columns.join(", "))
            };
            let mut list = columns.clone();
            list.extend(defaults);
            parse_query(&format!(
                "SELECT {} FROM ({source_sql}) AS {alias}",
                list.join(", ")
            ))?
        };
        let (_, batches) = self.collect_query(query).await?;
        // DEFAULT VALUES on a table without defaults computes one row of no columns (a dummy column here).
        let expected_columns = supplied.len() + defaulted.len();
        if let Some(batch) = batches.first()
            && (from_source || expected_columns > 0)
            && batch.num_columns() != expected_columns
        {
            return Err(Error::user(
                "42601",
                if batch.num_columns() > supplied.len() + defaulted.len() {
                    "INSERT has more expressions than target columns"
                } else {
                    "INSERT has more target columns than expressions"
                },
            ));
        }
        let mut slots = supplied.clone();
        slots.extend(defaulted.iter().copied());
        let computed = Self::batch_values(&table, &batches, &slots, 0)?;
        let rows = self.complete_rows(&table, &slots, computed).await?;
        let conflict = match insert.on {
            None => None,
            Some(OnInsert::OnConflict(on_conflict)) => Some(on_conflict),
            Some(_) => return Err(Error::not_supported("ON DUPLICATE KEY UPDATE")),
        };
        let written = match conflict {
            None => {
                self.write_new_rows(&table, &rows)?;
                rows
            }
            Some(on_conflict) => {
                self.insert_on_conflict(&table, &alias, rows, on_conflict)
                    .await?
            }
        };
        let tag = format!("INSERT 0 {}", written.len());
        self.finish_dml(&table, &alias, insert.returning, written, tag)
            .await
    }

    /// Makes the transaction's commit fail if `table`'s definition changed under it (concurrent DDL).
    fn validate_table(&self, table: &TableDef) -> Result<()> {
        self.with_state(|state| {
            state
                .transaction()?
                .validate_key(&Key::Object(table.id).encode());
            Ok(())
        })
    }

    /// Values computed for `slots` placed in whole rows of `table` (NULL in the other slots), checked
    /// for NOT NULL and the table's CHECK constraints.
    async fn complete_rows(
        &mut self,
        table: &TableDef,
        slots: &[usize],
        computed: Vec<Vec<Value>>,
    ) -> Result<Vec<Vec<Value>>> {
        let rows: Vec<Vec<Value>> = computed
            .into_iter()
            .map(|values| {
                let mut row: Vec<Value> = table.columns.iter().map(|_| Value::Null).collect();
                for (&slot, value) in slots.iter().zip(values) {
                    row[slot] = value;
                }
                row
            })
            .collect();
        for row in &rows {
            Self::check_not_null(table, row)?;
        }
        self.check_constraints(table, &rows).await?;
        Ok(rows)
    }

    /// Writes new rows of `table` with their index entries, checking uniqueness and foreign keys.
    fn write_new_rows(&self, table: &TableDef, rows: &[Vec<Value>]) -> Result<()> {
        let catalog = self.catalog();
        let database = self.shared.database.clone();
        self.with_state(|state| {
            let transaction = state.transaction()?;
            let writer = TableWriter::new(&catalog, table, &database)?;
            for row in rows {
                writer.check_references(transaction, row)?;
                let key = writer.new_row_key(row)?;
                writer.insert(transaction, key, row)?;
            }
            Ok(())
        })
    }

    /// COPY's rows inserted without SQL: each field read by its column type's input rules (as an
    /// INSERT of string literals reads it), then NOT NULL, CHECK, uniqueness and foreign keys as for
    /// any INSERT. `None` when the table needs what only an INSERT computes: a default (or identity) for
    /// a column the COPY does not list, or a value for a GENERATED ALWAYS column.
    pub(crate) async fn copy_rows(
        &mut self,
        table_name: &ObjectName,
        columns: &[ObjectName],
        rows: &[Vec<Option<String>>],
    ) -> Result<Option<u64>> {
        let catalog = self.catalog();
        let table = target_table(&catalog, &self.shared.temp_schema, table_name)?;
        let targets = insert_targets(&table, columns)?;
        let computed_elsewhere = table.live_columns().any(|(slot, column)| {
            !targets.contains(&slot) && (column.default.is_some() || column.identity.is_some())
        });
        let always = targets
            .iter()
            .any(|&slot| table.columns[slot].identity == Some(Identity::Always));
        if computed_elsewhere || always {
            return Ok(None);
        }
        self.validate_table(&table)?;
        let schema = Arc::new(Schema::new(
            targets
                .iter()
                .map(|&slot| Field::new(&table.columns[slot].name, ArrowType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let mut count = 0u64;
        for chunk in rows.chunks(COPY_ROWS_PER_BATCH) {
            for row in chunk {
                if row.len() > targets.len() {
                    return Err(Error::user(
                        "22P04",
                        "extra data after last expected column",
                    ));
                }
                if let Some(&slot) = targets.get(row.len()) {
                    return Err(Error::user(
                        "22P04",
                        format!("missing data for column \"{}\"", table.columns[slot].name),
                    ));
                }
            }
            let arrays: Vec<ArrayRef> = (0..targets.len())
                .map(|position| {
                    Arc::new(datafusion::arrow::array::StringArray::from_iter(
                        chunk.iter().map(|row| row[position].as_deref()),
                    )) as ArrayRef
                })
                .collect();
            let batch = RecordBatch::try_new(schema.clone(), arrays)?;
            let computed = Self::batch_values(&table, &[batch], &targets, 0)?;
            let full = self.complete_rows(&table, &targets, computed).await?;
            self.write_new_rows(&table, &full)?;
            count += full.len() as u64;
        }
        Ok(Some(count))
    }

    /// The unique constraint an ON CONFLICT clause names: `None` for the primary key, `Some(index)`.
    fn arbiter(
        table: &TableDef,
        catalog: &Catalog,
        target: &Option<ConflictTarget>,
    ) -> Result<Option<Vec<Option<IndexDef>>>> {
        let Some(target) = target else {
            return Ok(None);
        };
        let no_match = || {
            Error::user(
                "42P10",
                "there is no unique or exclusion constraint matching the ON CONFLICT specification",
            )
        };
        match target {
            ConflictTarget::Columns(columns) => {
                let slots: Vec<usize> = columns
                    .iter()
                    .map(|column| column_slot(table, &normalize(column)))
                    .collect::<Result<_>>()?;
                if !table.primary_key.is_empty()
                    && crate::sql::write::same_columns(&table.primary_key, &slots)
                {
                    return Ok(Some(vec![None]));
                }
                catalog
                    .indexes_of(table.id)
                    .find(|index| {
                        index.unique
                            && index.is_plain()
                            && crate::sql::write::same_columns(&index.columns, &slots)
                    })
                    .map(|index| Some(vec![Some(index.clone())]))
                    .ok_or_else(no_match)
            }
            ConflictTarget::OnConstraint(name) => {
                let name = last_name(name);
                let primary = table
                    .primary_key_name
                    .clone()
                    .unwrap_or_else(|| format!("{}_pkey", table.name));
                if !table.primary_key.is_empty() && name == primary {
                    return Ok(Some(vec![None]));
                }
                catalog
                    .indexes_of(table.id)
                    .find(|index| index.unique && index.name == name)
                    .map(|index| Some(vec![Some(index.clone())]))
                    .ok_or_else(|| {
                        Error::user(
                            "42704",
                            format!(
                                "constraint \"{name}\" for table \"{}\" does not exist",
                                table.name
                            ),
                        )
                    })
            }
        }
    }

    async fn insert_on_conflict(
        &mut self,
        table: &TableDef,
        alias: &str,
        rows: Vec<Vec<Value>>,
        on_conflict: datafusion::sql::sqlparser::ast::OnConflict,
    ) -> Result<Vec<Vec<Value>>> {
        let catalog = self.catalog();
        let database = self.shared.database.clone();
        let arbiters = Self::arbiter(table, &catalog, &on_conflict.conflict_target)?;
        if matches!(on_conflict.action, OnConflictAction::DoUpdate(_)) && arbiters.is_none() {
            return Err(Error::user(
                "42601",
                "ON CONFLICT DO UPDATE requires inference specification or constraint name",
            ));
        }
        // Rows inserted now, and (existing row, proposed row) pairs to update.
        let mut inserted = Vec::new();
        let mut conflicts: Vec<(StoredRow, Vec<Value>)> = Vec::new();
        let mut touched: HashSet<Vec<u8>> = HashSet::new();
        self.with_state(|state| {
            let transaction = state.transaction()?;
            let writer = TableWriter::new(&catalog, table, &database)?;
            let all_unique: Vec<Option<IndexDef>> = {
                let mut list = Vec::new();
                if !table.primary_key.is_empty() {
                    list.push(None);
                }
                list.extend(writer.unique_indexes().map(|index| Some((*index).clone())));
                list
            };
            let arbiters = arbiters.clone().unwrap_or(all_unique);
            for row in rows {
                let mut existing = None;
                for arbiter in &arbiters {
                    let found = match arbiter {
                        None => writer.existing_by_primary_key(transaction, &row)?,
                        Some(index) => writer.existing_by_index(transaction, index, &row)?,
                    };
                    if found.is_some() {
                        existing = found;
                        break;
                    }
                }
                match existing {
                    None => {
                        writer.check_references(transaction, &row)?;
                        let key = writer.new_row_key(&row)?;
                        touched.insert(key.clone());
                        writer.insert(transaction, key, &row)?;
                        inserted.push(row);
                    }
                    Some(existing) => {
                        if let OnConflictAction::DoUpdate(_) = on_conflict.action {
                            if !touched.insert(existing.key.clone()) {
                                return Err(Error::user(
                                    "21000",
                                    "ON CONFLICT DO UPDATE command cannot affect row a second time",
                                )
                                .with_detail(
                                    "Ensure that no rows proposed for insertion within the same command have duplicate constrained values.",
                                ));
                            }
                            conflicts.push((existing, row));
                        }
                    }
                }
            }
            Ok(())
        })?;
        let OnConflictAction::DoUpdate(do_update) = on_conflict.action else {
            return Ok(inserted);
        };
        if conflicts.is_empty() {
            return Ok(inserted);
        }
        let existing_rows: Vec<Vec<Value>> = conflicts
            .iter()
            .map(|(row, _)| row.values.clone())
            .collect();
        let proposed: Vec<Vec<Value>> = conflicts.iter().map(|(_, row)| row.clone()).collect();
        self.register_local(alias, mem_table(rows_batch(table, &existing_rows, true)?)?);
        self.register_local(EXCLUDED, mem_table(rows_batch(table, &proposed, true)?)?);
        let (assigned_slots, expressions) = assignments(table, &do_update.assignments)?;
        let mut list: Vec<String> = vec![format!("{}.{}", quote(alias), quote(ORDINAL_COLUMN))];
        list.extend(expressions);
        let condition = match &do_update.selection {
            Some(selection) => format!("({selection})"),
            None => "TRUE".into(),
        };
        list.push(condition);
        let sql = format!(
            "SELECT {} FROM {} JOIN {} ON {}.{} = {}.{}",
            list.join(", "),
            quote(alias),
            quote(EXCLUDED),
            quote(alias),
            quote(ORDINAL_COLUMN),
            quote(EXCLUDED),
            quote(ORDINAL_COLUMN)
        );
        let (_, batches) = self.collect_query(parse_query(&sql)?).await?;
        let mut updates: Vec<(StoredRow, Vec<Value>)> = Vec::new();
        for batch in &batches {
            let ordinals = batch
                .column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .ok_or_else(|| Error::internal("ordinal column"))?
                .clone();
            let new_values =
                Self::batch_values(table, std::slice::from_ref(batch), &assigned_slots, 1)?;
            let condition = cast_to(batch.column(1 + assigned_slots.len()), DataType::Boolean)?;
            let condition = condition
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| Error::internal("condition column"))?
                .clone();
            for (index, assigned) in new_values.into_iter().enumerate() {
                if condition.is_null(index) || !condition.value(index) {
                    continue;
                }
                let (existing, _) = &conflicts[ordinals.value(index) as usize];
                let mut values = existing.values.clone();
                for (&slot, value) in assigned_slots.iter().zip(assigned) {
                    values[slot] = value;
                }
                updates.push((existing.clone(), values));
            }
        }
        let mut written = inserted;
        let updated = self.apply_updates(table, updates).await?;
        written.extend(updated);
        Ok(written)
    }

    /// Writes updated rows: checks, then deletes every old row before inserting the new ones (so a key may
    /// move onto another updated row's old key), then applies foreign-key actions.
    async fn apply_updates(
        &mut self,
        table: &TableDef,
        updates: Vec<(StoredRow, Vec<Value>)>,
    ) -> Result<Vec<Vec<Value>>> {
        for (_, values) in &updates {
            Self::check_not_null(table, values)?;
        }
        let new_rows: Vec<Vec<Value>> = updates.iter().map(|(_, values)| values.clone()).collect();
        self.check_constraints(table, &new_rows).await?;
        let catalog = self.catalog();
        let database = self.shared.database.clone();
        self.with_state(|state| {
            let transaction = state.transaction()?;
            let writer = TableWriter::new(&catalog, table, &database)?;
            for (old, _) in &updates {
                writer.delete(transaction, old)?;
            }
            let mut changes = Vec::with_capacity(updates.len());
            for (old, values) in &updates {
                let key = if table.has_row_id() {
                    old.key.clone()
                } else {
                    Key::Row(
                        table.id,
                        crate::sql::write::primary_key_bytes(table, values),
                    )
                    .encode()
                };
                let references_changed = table.foreign_keys.iter().any(|foreign_key| {
                    foreign_key
                        .columns
                        .iter()
                        .any(|&slot| old.values[slot] != values[slot])
                });
                if references_changed {
                    writer.check_references(transaction, values)?;
                }
                writer.insert(transaction, key, values)?;
                changes.push(ParentChange {
                    old: old.values.clone(),
                    new: Some(values.clone()),
                });
            }
            enforce_referencing(transaction, &catalog, &database, table, &changes, 0)
        })?;
        Ok(new_rows)
    }

    pub(crate) async fn update(&mut self, update: Update) -> Result<QueryResult> {
        if update.or.is_some() || update.limit.is_some() || !update.order_by.is_empty() {
            return Err(Error::not_supported("UPDATE with OR / ORDER BY / LIMIT"));
        }
        let catalog = self.catalog();
        let (table, alias) = dml_target(&catalog, &self.shared.temp_schema, &update.table)?;
        self.validate_table(&table)?;
        let (assigned_slots, sql) = update_source_sql(&catalog, &table, &alias, &update)?;
        let (_, batches) = self.collect_query(parse_query(&sql)?).await?;
        let live: Vec<usize> = table.live_columns().map(|(slot, _)| slot).collect();
        let key_columns = live.len() + usize::from(table.has_row_id());
        let old_rows = Self::stored_rows(&table, &batches)?;
        let new_values = Self::batch_values(&table, &batches, &assigned_slots, key_columns)?;
        let mut seen = HashSet::new();
        let mut updates = Vec::new();
        for (old, assigned) in old_rows.into_iter().zip(new_values) {
            if !seen.insert(old.key.clone()) {
                continue;
            }
            let mut values = old.values.clone();
            for (&slot, value) in assigned_slots.iter().zip(assigned) {
                values[slot] = value;
            }
            updates.push((old, values));
        }
        let written = self.apply_updates(&table, updates).await?;
        let tag = format!("UPDATE {}", written.len());
        self.finish_dml(&table, &alias, update.returning, written, tag)
            .await
    }

    /// The rows of `table` in the leading columns of internal query results (live columns, then row id).
    fn stored_rows(table: &TableDef, batches: &[RecordBatch]) -> Result<Vec<StoredRow>> {
        let live: Vec<usize> = table.live_columns().map(|(slot, _)| slot).collect();
        let values = Self::batch_values(table, batches, &live, 0)?;
        let mut row_ids = Vec::new();
        if table.has_row_id() {
            for batch in batches {
                let column = batch.column(live.len());
                let ids = column
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .ok_or_else(|| Error::internal("row id column"))?;
                row_ids.extend(ids.values().iter().copied());
            }
        }
        let mut rows = Vec::with_capacity(values.len());
        for (index, live_values) in values.into_iter().enumerate() {
            let mut full: Vec<Value> = table.columns.iter().map(|_| Value::Null).collect();
            for (&slot, value) in live.iter().zip(live_values) {
                full[slot] = value;
            }
            let key = if table.has_row_id() {
                let mut out = Vec::new();
                qubedb_model::keycode::encode_value(&Value::Integer(row_ids[index]), &mut out);
                Key::Row(table.id, out).encode()
            } else {
                Key::Row(table.id, crate::sql::write::primary_key_bytes(table, &full)).encode()
            };
            rows.push(StoredRow { key, values: full });
        }
        Ok(rows)
    }

    pub(crate) async fn delete(&mut self, delete: Delete) -> Result<QueryResult> {
        if delete.limit.is_some() || !delete.order_by.is_empty() || !delete.tables.is_empty() {
            return Err(Error::not_supported(
                "DELETE with ORDER BY / LIMIT / several tables",
            ));
        }
        let catalog = self.catalog();
        let from = match &delete.from {
            FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables) => tables,
        };
        let [target] = from.as_slice() else {
            return Err(Error::not_supported("DELETE from several tables"));
        };
        let (table, alias) = dml_target(&catalog, &self.shared.temp_schema, target)?;
        self.validate_table(&table)?;
        let sql = delete_source_sql(&catalog, &table, &alias, &delete);
        let (_, batches) = self.collect_query(parse_query(&sql)?).await?;
        let rows = Self::stored_rows(&table, &batches)?;
        let database = self.shared.database.clone();
        let deleted = self.with_state(|state| {
            let transaction = state.transaction()?;
            let writer = TableWriter::new(&catalog, &table, &database)?;
            let mut seen = HashSet::new();
            let mut changes = Vec::new();
            let mut deleted = Vec::new();
            for row in rows {
                if !seen.insert(row.key.clone()) {
                    continue;
                }
                writer.delete(transaction, &row)?;
                changes.push(ParentChange {
                    old: row.values.clone(),
                    new: None,
                });
                deleted.push(row.values);
            }
            enforce_referencing(transaction, &catalog, &database, &table, &changes, 0)?;
            Ok(deleted)
        })?;
        let tag = format!("DELETE {}", deleted.len());
        self.finish_dml(&table, &alias, delete.returning, deleted, tag)
            .await
    }
}

/// The last part of a possibly qualified name, folded as PostgreSQL folds identifiers.
/// The query an UPDATE reads: the target's rows (`alias.*`, then the row id) and the new value of each
/// assigned column; returns the assigned slots with it.
pub(crate) fn update_source_sql(
    catalog: &Catalog,
    table: &TableDef,
    alias: &str,
    update: &Update,
) -> Result<(Vec<usize>, String)> {
    let (assigned_slots, expressions) = assignments(table, &update.assignments)?;
    let mut sql = format!(
        "SELECT {}.*, {} FROM {} AS {}",
        quote(alias),
        expressions.join(", "),
        keyed_name(catalog, table),
        quote(alias)
    );
    for join in &update.table.joins {
        sql.push_str(&format!(" {join}"));
    }
    if let Some(from) = &update.from {
        let tables = match from {
            UpdateTableFromKind::BeforeSet(tables) | UpdateTableFromKind::AfterSet(tables) => {
                tables
            }
        };
        for item in tables {
            sql.push_str(&format!(", {item}"));
        }
    }
    if let Some(selection) = &update.selection {
        sql.push_str(&format!(" WHERE {selection}"));
    }
    Ok((assigned_slots, sql))
}

/// The query a DELETE reads: the target's rows (`alias.*`, then the row id) that the WHERE keeps.
pub(crate) fn delete_source_sql(
    catalog: &Catalog,
    table: &TableDef,
    alias: &str,
    delete: &Delete,
) -> String {
    let mut sql = format!(
        "SELECT {}.* FROM {} AS {}",
        quote(alias),
        keyed_name(catalog, table),
        quote(alias)
    );
    if let Some(using) = &delete.using {
        for item in using {
            sql.push_str(&format!(", {item}"));
        }
    }
    if let Some(selection) = &delete.selection {
        sql.push_str(&format!(" WHERE {selection}"));
    }
    sql
}

/// The name an INSERT's target rows go by (its alias, else the table's name).
pub(crate) fn insert_alias(table: &TableDef, insert: &Insert) -> String {
    insert
        .table_alias
        .as_ref()
        .map(|alias| normalize(&alias.alias))
        .unwrap_or_else(|| table.name.clone())
}

/// The target slots of an INSERT, in the order its source supplies them.
pub(crate) fn insert_targets(table: &TableDef, columns: &[ObjectName]) -> Result<Vec<usize>> {
    Ok(if columns.is_empty() {
        table.live_columns().map(|(slot, _)| slot).collect()
    } else {
        let mut seen = HashSet::new();
        columns
            .iter()
            .map(|column| {
                let name = last_name(column);
                let slot = column_slot(table, &name)?;
                if !seen.insert(slot) {
                    return Err(Error::user(
                        "42701",
                        format!("column \"{name}\" specified more than once"),
                    ));
                }
                Ok(slot)
            })
            .collect::<Result<_>>()?
    })
}

/// The last part of a name, folded as an identifier.
pub(crate) fn last_name(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(ident)) => normalize(ident),
        _ => name.to_string(),
    }
}

/// The slot of live column `name` of `table`, or 42703.
fn column_slot(table: &TableDef, name: &str) -> Result<usize> {
    table.column_slot(name).ok_or_else(|| {
        Error::user(
            "42703",
            format!(
                "column \"{name}\" of relation \"{}\" does not exist",
                table.name
            ),
        )
    })
}

/// The target table of UPDATE / DELETE and the name its rows go by in the statement.
pub(crate) fn dml_target(
    catalog: &Catalog,
    temp_schema: &str,
    target: &TableWithJoins,
) -> Result<(TableDef, String)> {
    let TableFactor::Table { name, alias, .. } = &target.relation else {
        return Err(Error::not_supported(format!(
            "UPDATE / DELETE of \"{}\"",
            target.relation
        )));
    };
    let table = target_table(catalog, temp_schema, name)?;
    let alias = alias
        .as_ref()
        .map(|alias| normalize(&alias.name))
        .unwrap_or_else(|| table.name.clone());
    Ok((table, alias))
}

/// SET assignments: the slots they change, and each new value's SQL (DEFAULT replaced by the default).
fn assignments(
    table: &TableDef,
    list: &[datafusion::sql::sqlparser::ast::Assignment],
) -> Result<(Vec<usize>, Vec<String>)> {
    let mut slots = Vec::new();
    let mut expressions = Vec::new();
    let mut by_slot: HashMap<usize, ()> = HashMap::new();
    for assignment in list {
        let names: Vec<&ObjectName> = match &assignment.target {
            AssignmentTarget::ColumnName(name) => vec![name],
            AssignmentTarget::Tuple(names) => names.iter().collect(),
        };
        if names.len() != 1 {
            return Err(Error::not_supported(
                "multiple-column assignment (a, b) = (...)",
            ));
        }
        let name = last_name(names[0]);
        let slot = column_slot(table, &name)?;
        if by_slot.insert(slot, ()).is_some() {
            return Err(Error::user(
                "42601",
                format!("multiple assignments to same column \"{name}\""),
            ));
        }
        let column = &table.columns[slot];
        let expression = if is_default_keyword(&assignment.value) {
            column.default.clone().unwrap_or_else(|| "NULL".to_string())
        } else {
            if column.identity == Some(Identity::Always) {
                return Err(Error::user(
                    "428C9",
                    format!("column \"{name}\" can only be updated to DEFAULT"),
                )
                .with_detail(format!(
                    "Column \"{name}\" is an identity column defined as GENERATED ALWAYS."
                )));
            }
            assignment.value.to_string()
        };
        slots.push(slot);
        expressions.push(format!(
            "({expression}) AS {}",
            quote(&format!("__qubedb_set_{slot}"))
        ));
    }
    Ok((slots, expressions))
}

/// Casts a computed column to a column type with PostgreSQL's rules where Arrow's differ: floats round to
/// integers half to even (as `rint`), numerics half away from zero, where Arrow truncates.
pub(crate) fn cast_column(array: &ArrayRef, data_type: DataType) -> Result<ArrayRef> {
    if !data_type.is_integer() {
        return cast_to(array, data_type);
    }
    let rounded: Option<datafusion::arrow::array::Float64Array> = match array.data_type() {
        ArrowType::Float32 | ArrowType::Float64 => {
            let doubles = datafusion::arrow::compute::cast(array, &ArrowType::Float64)?;
            let doubles = doubles
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Float64Array>()
                .ok_or_else(|| Error::internal("float column"))?
                .clone();
            Some(
                doubles
                    .iter()
                    .map(|value| value.map(f64::round_ties_even))
                    .collect(),
            )
        }
        ArrowType::Decimal128(_, scale) if *scale > 0 => {
            let decimals = array
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Decimal128Array>()
                .ok_or_else(|| Error::internal("decimal column"))?;
            let divisor = 10i128.pow(u32::from(scale.unsigned_abs()));
            let integers: datafusion::arrow::array::Int64Array = decimals
                .iter()
                .map(|value| {
                    value.map(|units| {
                        let half = divisor / 2;
                        let rounded = if units >= 0 {
                            (units + half) / divisor
                        } else {
                            (units - half) / divisor
                        };
                        i64::try_from(rounded).unwrap_or(if units >= 0 {
                            i64::MAX
                        } else {
                            i64::MIN
                        })
                    })
                })
                .collect();
            let integers: ArrayRef = Arc::new(integers);
            return cast_to(&integers, data_type);
        }
        _ => None,
    };
    match rounded {
        Some(rounded) => {
            let rounded: ArrayRef = Arc::new(rounded);
            cast_to(&rounded, data_type)
        }
        None => cast_to(array, data_type),
    }
}
