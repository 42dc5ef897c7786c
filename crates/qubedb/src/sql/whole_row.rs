//! Whole-row references: a FROM item's name used as a value (`SELECT row_to_json(t) FROM t`,
//! `jsonb_agg(q)`, `SELECT q FROM (...) q`) is the item's row, a record of its columns.
//!
//! DataFusion has no such reference, so the rewrite here replaces the name with
//! `named_struct('a', "q"."a", ...)` over the item's columns when they are known before planning: a
//! table's (the catalog's live columns), a derived table's or a CTE's (the alias's column list, or the
//! names of its select list when every item has one), renamed by the alias's column list. A name that is
//! also a column of a FROM item stays the column, as in PostgreSQL. Only the select that owns the FROM
//! item is rewritten (a subquery's own items are rewritten when it is visited).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Query, Select, SelectItem, SetExpr, TableFactor, VisitMut, VisitorMut,
};
use qubedb_model::catalog::{Catalog, Object};

use crate::error::{Error, Result};
use crate::sql::rewrite::{lookup, normalize, parse_expression};

/// Rewrites whole-row references in `query` and its subqueries.
pub fn rewrite(query: &mut Query, catalog: &Catalog, temp_schema: &str) -> Result<()> {
    let mut rewriter = Rewriter {
        catalog,
        temp_schema,
        ctes: Vec::new(),
        failure: None,
    };
    let _ = query.visit(&mut rewriter);
    match rewriter.failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

struct Rewriter<'a> {
    catalog: &'a Catalog,
    temp_schema: &'a str,
    /// The CTEs in scope, innermost last: (name, columns when known).
    ctes: Vec<Vec<(String, Option<Vec<String>>)>>,
    failure: Option<Error>,
}

impl Rewriter<'_> {
    /// The output names of a query's select list, when every item has one (`*` and `t.*` expand to
    /// the columns of the query's FROM items, when those are known).
    fn output_names(&self, query: &Query) -> Option<Vec<String>> {
        let SetExpr::Select(select) = query.body.as_ref() else {
            return None;
        };
        let mut names = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::ExprWithAlias { alias, .. } => names.push(normalize(alias)),
                SelectItem::UnnamedExpr(Expr::Identifier(ident)) => names.push(normalize(ident)),
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                    names.push(parts.last().map(normalize)?);
                }
                SelectItem::Wildcard(_) => {
                    for (_, columns) in self.items(select) {
                        names.extend(columns?);
                    }
                }
                SelectItem::QualifiedWildcard(
                    datafusion::sql::sqlparser::ast::SelectItemQualifiedWildcardKind::ObjectName(
                        name,
                    ),
                    _,
                ) => {
                    let qualifier = name.0.last()?.as_ident().map(normalize)?;
                    let (_, columns) = self
                        .items(select)
                        .into_iter()
                        .find(|(item, _)| *item == qualifier)?;
                    names.extend(columns?);
                }
                _ => return None,
            }
        }
        Some(names)
    }

    /// The FROM items of `select` with their columns, when known: (name, columns).
    fn items(&self, select: &Select) -> Vec<(String, Option<Vec<String>>)> {
        let mut items = Vec::new();
        for table in &select.from {
            let factors = std::iter::once(&table.relation)
                .chain(table.joins.iter().map(|join| &join.relation));
            for factor in factors {
                if let Some(item) = self.item(factor) {
                    items.push(item);
                }
            }
        }
        items
    }

    fn item(&self, factor: &TableFactor) -> Option<(String, Option<Vec<String>>)> {
        let (name, columns, alias) = match factor {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let last = name.0.last()?.as_ident().map(normalize)?;
                let from_cte = (name.0.len() == 1)
                    .then(|| {
                        self.ctes
                            .iter()
                            .rev()
                            .flatten()
                            .find(|(cte, _)| *cte == last)
                            .map(|(_, columns)| columns.clone())
                    })
                    .flatten();
                let columns = match from_cte {
                    Some(columns) => columns,
                    None => match lookup(self.catalog, self.temp_schema, name) {
                        Ok(Some(Object::Table(table))) => Some(
                            table
                                .live_columns()
                                .map(|(_, column)| column.name.clone())
                                .collect(),
                        ),
                        _ => None,
                    },
                };
                (last, columns, alias)
            }
            TableFactor::Derived {
                subquery,
                alias: Some(alias),
                ..
            } => {
                let columns = if alias.columns.is_empty() {
                    self.output_names(subquery)
                } else {
                    Some(
                        alias
                            .columns
                            .iter()
                            .map(|column| normalize(&column.name))
                            .collect(),
                    )
                };
                (normalize(&alias.name), columns, &None)
            }
            _ => return None,
        };
        let Some(alias) = alias else {
            return Some((name, columns));
        };
        let mut columns = columns;
        if !alias.columns.is_empty()
            && let Some(columns) = columns.as_mut()
        {
            for (column, renamed) in columns.iter_mut().zip(&alias.columns) {
                *column = normalize(&renamed.name);
            }
        }
        Some((normalize(&alias.name), columns))
    }
}

/// Replaces whole-row references in one select's own expressions (not in its subqueries).
struct Replacer<'a> {
    items: &'a [(String, Option<Vec<String>>)],
    /// Nesting of subqueries below the select: only depth 0 is the select's own scope.
    depth: usize,
    failure: Option<Error>,
}

impl Replacer<'_> {
    fn record(&self, ident: &Ident) -> Option<Result<Expr>> {
        if ident.quote_style.is_some() && ident.quote_style != Some('"') {
            return None;
        }
        let name = normalize(ident);
        let is_column = self.items.iter().any(|(_, columns)| {
            columns
                .as_ref()
                .is_some_and(|columns| columns.contains(&name))
        });
        if is_column {
            return None;
        }
        let (item, columns) = self.items.iter().find(|(item, _)| *item == name)?;
        let columns = columns.as_ref()?;
        let quote = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
        let fields: Vec<String> = columns
            .iter()
            .map(|column| {
                format!(
                    "'{}', {}.{}",
                    column.replace('\'', "''"),
                    quote(item),
                    quote(column)
                )
            })
            .collect();
        Some(parse_expression(&format!(
            "named_struct({})",
            fields.join(", ")
        )))
    }
}

impl VisitorMut for Replacer<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        if let Expr::Identifier(ident) = expr
            && let Some(replacement) = self.record(ident)
        {
            match replacement {
                Ok(replacement) => *expr = replacement,
                Err(error) => {
                    self.failure = Some(error);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let scope = query
            .with
            .as_ref()
            .map(|with| {
                with.cte_tables
                    .iter()
                    .map(|cte| {
                        let name = normalize(&cte.alias.name);
                        let columns = if cte.alias.columns.is_empty() {
                            self.output_names(&cte.query)
                        } else {
                            Some(
                                cte.alias
                                    .columns
                                    .iter()
                                    .map(|c| normalize(&c.name))
                                    .collect(),
                            )
                        };
                        (name, columns)
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.ctes.push(scope);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.ctes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        let items = self.items(select);
        if items.iter().all(|(_, columns)| columns.is_none()) {
            return ControlFlow::Continue(());
        }
        let mut replacer = Replacer {
            items: &items,
            depth: 0,
            failure: None,
        };
        // A bare reference in the select list keeps its name as the output column's.
        for item in &mut select.projection {
            if let SelectItem::UnnamedExpr(Expr::Identifier(ident)) = item
                && let Some(replacement) = replacer.record(ident)
            {
                match replacement {
                    Ok(expr) => {
                        *item = SelectItem::ExprWithAlias {
                            expr,
                            alias: Ident::with_quote('"', normalize(ident)),
                        }
                    }
                    Err(error) => {
                        self.failure = Some(error);
                        return ControlFlow::Break(());
                    }
                }
            }
        }
        let _ = select.projection.visit(&mut replacer);
        if let Some(selection) = select.selection.as_mut() {
            let _ = selection.visit(&mut replacer);
        }
        if let Some(having) = select.having.as_mut() {
            let _ = having.visit(&mut replacer);
        }
        if let Some(error) = replacer.failure {
            self.failure = Some(error);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}
