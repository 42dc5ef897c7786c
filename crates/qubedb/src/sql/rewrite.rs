//! Rewrites of parsed statements before DataFusion plans them, and name resolution shared by DDL and DML.
//!
//! Views are expanded here: a reference to a view becomes the view's query as a derived table with the view's
//! name (and column names) as alias. DataFusion therefore never needs to know about views, and a view always
//! reads through the same transaction as the statement that uses it.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, Statement, TableAlias, TableAliasColumnDef,
    TableFactor, Value as SqlValue, ValueWithSpan, VisitMut, VisitorMut, visit_expressions_mut,
};
use qubedb_model::catalog::{Catalog, Object};

use crate::error::{Error, Result};
use crate::sql::convert::parse_interval;
use crate::sql::parse::parse;

/// Deepest nesting of views in views.
pub const VIEW_DEPTH_MAX: usize = 32;

/// An identifier as PostgreSQL folds it: unquoted names are lower-cased.
pub fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

fn parts(name: &ObjectName) -> Result<Vec<String>> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Ok(normalize(ident)),
            other => Err(Error::not_supported(format!("name part {other}"))),
        })
        .collect()
}

/// A name resolved to a schema and an object name within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    pub schema: u64,
    pub schema_name: String,
    pub name: String,
}

/// Splits `[schema.]name` and resolves the schema (default `public`), checking the name's length.
pub fn qualify(catalog: &Catalog, name: &ObjectName) -> Result<QualifiedName> {
    let parts = parts(name)?;
    let (schema_name, object) = match parts.as_slice() {
        [object] => ("public".to_string(), object.clone()),
        [schema, object] => (schema.clone(), object.clone()),
        [database, schema, object] if database == "qubedb" => (schema.clone(), object.clone()),
        _ => {
            return Err(Error::user(
                "42601",
                format!("improper qualified name (too many dotted names): {name}"),
            ));
        }
    };
    if object.len() > qubedb_model::IDENTIFIER_BYTES_MAX {
        return Err(Error::user(
            "42622",
            format!(
                "identifier \"{object}\" is longer than identifier_bytes_max = {}",
                qubedb_model::IDENTIFIER_BYTES_MAX
            ),
        ));
    }
    let schema = catalog
        .schema_id(&schema_name)
        .ok_or_else(|| Error::user("3F000", format!("schema \"{schema_name}\" does not exist")))?;
    Ok(QualifiedName {
        schema,
        schema_name,
        name: object,
    })
}

/// Resolves a name to an existing object, or `None`.
pub fn lookup<'a>(catalog: &'a Catalog, name: &ObjectName) -> Result<Option<&'a Object>> {
    let qualified = qualify(catalog, name)?;
    Ok(catalog.relation(qualified.schema, &qualified.name))
}

/// Applies every rewrite to a query.
pub fn rewrite_query(query: &mut Query, catalog: &Catalog) -> Result<()> {
    expand_views(query, catalog, 0)?;
    rewrite_literals(query)
}

/// Rewrites literals whose PostgreSQL syntax DataFusion does not read: `INTERVAL '1 day 02:00:00'` is
/// parsed here ([`parse_interval`]) and handed on in a form DataFusion reads exactly.
fn rewrite_literals(query: &mut Query) -> Result<()> {
    let mut failure = None;
    let _ = visit_expressions_mut(query, |expr| {
        if let Expr::Interval(interval) = expr
            && interval.leading_field.is_none()
            && interval.last_field.is_none()
            && let Expr::Value(ValueWithSpan {
                value: SqlValue::SingleQuotedString(text),
                ..
            }) = interval.value.as_mut()
        {
            match parse_interval(text) {
                Ok((months, days, microseconds)) => {
                    *text = format!("{months} months {days} days {microseconds} microseconds");
                }
                Err(error) => {
                    failure = Some(error);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    });
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Applies every rewrite to a statement (DML bodies).
pub fn rewrite_statement(statement: &mut Statement, catalog: &Catalog) -> Result<()> {
    let mut expander = ViewExpander {
        catalog,
        shadowed: HashSet::new(),
        depth: 0,
        error: None,
    };
    let _ = statement.visit(&mut expander);
    match expander.error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

fn expand_views(query: &mut Query, catalog: &Catalog, depth: usize) -> Result<()> {
    let mut expander = ViewExpander {
        catalog,
        shadowed: HashSet::new(),
        depth,
        error: None,
    };
    let _ = query.visit(&mut expander);
    match expander.error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

struct ViewExpander<'a> {
    catalog: &'a Catalog,
    /// CTE names, which shadow views of the same unqualified name.
    shadowed: HashSet<String>,
    depth: usize,
    error: Option<Error>,
}

impl VisitorMut for ViewExpander<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for table in &with.cte_tables {
                self.shadowed.insert(normalize(&table.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        if name.0.len() == 1
            && let Some(ObjectNamePart::Identifier(ident)) = name.0.first()
            && self.shadowed.contains(&normalize(ident))
        {
            return ControlFlow::Continue(());
        }
        let view = match lookup(self.catalog, name) {
            Ok(Some(Object::View(view))) => view.clone(),
            _ => return ControlFlow::Continue(()),
        };
        if self.depth >= VIEW_DEPTH_MAX {
            self.error = Some(Error::user(
                "54001",
                format!(
                    "views nested deeper than view_depth_max = {VIEW_DEPTH_MAX} (a view that refers to itself?)"
                ),
            ));
            return ControlFlow::Break(());
        }
        let mut subquery = match parse(&view.query).map(|mut statements| statements.pop()) {
            Ok(Some(Statement::Query(query))) => query,
            _ => {
                self.error = Some(Error::internal(format!(
                    "stored query of view \"{}\" does not parse",
                    view.name
                )));
                return ControlFlow::Break(());
            }
        };
        if let Err(error) = expand_views(&mut subquery, self.catalog, self.depth + 1) {
            self.error = Some(error);
            return ControlFlow::Break(());
        }
        let alias = alias.clone().unwrap_or_else(|| TableAlias {
            explicit: true,
            name: Ident::with_quote('"', view.name.clone()),
            columns: Vec::new(),
            at: None,
        });
        let alias = if alias.columns.is_empty() && !view.columns.is_empty() {
            TableAlias {
                columns: view
                    .columns
                    .iter()
                    .map(|column| TableAliasColumnDef {
                        name: Ident::with_quote('"', column.clone()),
                        data_type: None,
                    })
                    .collect(),
                ..alias
            }
        } else {
            alias
        };
        *factor = TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(alias),
            sample: None,
        };
        ControlFlow::Continue(())
    }
}
