//! Descriptions of the catalog for clients (the shell's `\d`, `\dt`, `\d TABLE`), read from the session's
//! transaction view.

use qubedb_model::catalog::{Object, ReferentialAction};

use crate::error::{Error, Result};
use crate::session::Session;

/// One relation: schema, name and kind (`table`, `view`, `index`, `sequence`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationInfo {
    pub schema: String,
    pub name: String,
    pub kind: &'static str,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub not_null: bool,
    pub default: Option<String>,
}

/// A table: its columns, and its indexes and constraints as PostgreSQL's `\d` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnInfo>,
    pub indexes: Vec<String>,
    pub checks: Vec<String>,
    pub foreign_keys: Vec<String>,
    pub referenced_by: Vec<String>,
}

fn action(action: ReferentialAction) -> &'static str {
    match action {
        ReferentialAction::NoAction => "",
        ReferentialAction::Restrict => " RESTRICT",
        ReferentialAction::Cascade => " CASCADE",
        ReferentialAction::SetNull => " SET NULL",
        ReferentialAction::SetDefault => " SET DEFAULT",
    }
}

impl Session {
    /// Every table, view, index and sequence, by schema and name.
    pub fn list_relations(&mut self) -> Result<Vec<RelationInfo>> {
        let catalog = self.current_catalog()?;
        let mut relations: Vec<RelationInfo> = catalog
            .objects()
            .filter(|object| !matches!(object, Object::Schema(_)))
            .map(|object| {
                let (schema, name) = object.qualified_name();
                RelationInfo {
                    schema: catalog.schema_name(schema).to_string(),
                    name: name.to_string(),
                    kind: object.kind(),
                }
            })
            .collect();
        relations.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        Ok(relations)
    }

    /// The description of table `name` (`[schema.]name`), or `None` if there is no such table.
    pub fn describe_table(&mut self, name: &str) -> Result<Option<TableInfo>> {
        let catalog = self.current_catalog()?;
        let (schema_name, table_name) = match name.split_once('.') {
            Some((schema, table)) => (schema.to_string(), table.to_string()),
            None => ("public".to_string(), name.to_string()),
        };
        let fold = |text: String| {
            if text.starts_with('"') && text.ends_with('"') && text.len() >= 2 {
                text[1..text.len() - 1].to_string()
            } else {
                text.to_lowercase()
            }
        };
        let (schema_name, table_name) = (fold(schema_name), fold(table_name));
        let Some(schema) = catalog.schema_id(&schema_name) else {
            return Ok(None);
        };
        let Some(Object::Table(table)) = catalog.relation(schema, &table_name) else {
            return Ok(None);
        };
        let column_names = |slots: &[usize]| -> String {
            slots
                .iter()
                .map(|&slot| table.columns[slot].name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut indexes = Vec::new();
        if let Some(primary) = &table.primary_key_name {
            indexes.push(format!(
                "\"{primary}\" PRIMARY KEY, btree ({})",
                column_names(&table.primary_key)
            ));
        }
        for index in catalog.indexes_of(table.id) {
            let kind = if index.constraint {
                "UNIQUE CONSTRAINT, "
            } else if index.unique {
                "UNIQUE, "
            } else {
                ""
            };
            let key = if index.expressions.is_empty() {
                column_names(&index.columns)
            } else {
                index.expressions.join(", ")
            };
            let method = index.method.name();
            let key = match index.method.operator_class() {
                Some(class) => format!("{key} {class}"),
                None => key,
            };
            let mut line = format!("\"{}\" {kind}{method} ({key})", index.name);
            if !index.include.is_empty() {
                line.push_str(&format!(" INCLUDE ({})", column_names(&index.include)));
            }
            if let Some(predicate) = &index.predicate {
                line.push_str(&format!(" WHERE {predicate}"));
            }
            indexes.push(line);
        }
        let foreign_keys = table
            .foreign_keys
            .iter()
            .map(|key| {
                let parent = catalog.table(key.referenced_table);
                let parent_name = parent.map(|parent| parent.name.clone()).unwrap_or_default();
                let parent_columns = parent
                    .map(|parent| {
                        key.referenced_columns
                            .iter()
                            .map(|&slot| parent.columns[slot].name.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                let mut text = format!(
                    "\"{}\" FOREIGN KEY ({}) REFERENCES {parent_name}({parent_columns})",
                    key.name,
                    column_names(&key.columns)
                );
                if key.on_update != ReferentialAction::NoAction {
                    text.push_str(&format!(" ON UPDATE{}", action(key.on_update)));
                }
                if key.on_delete != ReferentialAction::NoAction {
                    text.push_str(&format!(" ON DELETE{}", action(key.on_delete)));
                }
                text
            })
            .collect();
        let referenced_by = catalog
            .referencing(table.id)
            .into_iter()
            .map(|(child, key)| format!("TABLE \"{}\" CONSTRAINT \"{}\"", child.name, key.name))
            .collect();
        Ok(Some(TableInfo {
            schema: schema_name,
            name: table.name.clone(),
            columns: table
                .live_columns()
                .map(|(_, column)| ColumnInfo {
                    name: column.name.clone(),
                    data_type: column.data_type.sql_name(),
                    not_null: column.not_null,
                    default: column.default.clone(),
                })
                .collect(),
            indexes,
            checks: table
                .checks
                .iter()
                .map(|check| format!("\"{}\" CHECK ({})", check.name, check.expression))
                .collect(),
            foreign_keys,
            referenced_by,
        }))
    }

    fn current_catalog(&mut self) -> Result<std::sync::Arc<qubedb_model::catalog::Catalog>> {
        let state = self.shared.state.lock();
        if state.transaction.is_some() {
            return Ok(state.catalog.clone());
        }
        drop(state);
        let transaction = self.shared.database.store.begin()?;
        self.shared
            .database
            .catalog_for(&transaction)
            .map_err(|error: Error| error)
    }
}
