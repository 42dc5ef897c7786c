//! Reading a GIN index: which filters it serves and the rows it points to.
//!
//! A GIN index of a jsonb column keeps one entry per token of each row's document
//! ([`qubedb_model::jsonb::gin_tokens`]): key `Index(index, token, primary key)`, value the primary
//! key. A filter `doc @> constant` needs every token of the constant (a containing document has them
//! all), `doc ? 'k'` and `doc ?& keys` the key tokens, `doc ?| keys` any of them. The scan collects the
//! primary keys under each token's prefix, intersects (or unites) them, and reads those rows by key:
//! the candidates. A `jsonb_ops` index cannot tell a key at the top level from a nested one, nor one
//! array element from another, so the filter itself stays on the scan (DataFusion rechecks it, the
//! filter being pushed down as inexact), as PostgreSQL rechecks a GIN index's candidates.
//!
//! A `jsonb_path_ops` index spells each scalar's path out ([`GinMode::Paths`]), so for the constants
//! [`gin_query_is_exact`] accepts (objects whose arrays hold only scalars) the candidates are exactly
//! the containing rows: the filter is then reported exact, the scan reading this index applies it by
//! reading the candidates alone, and `count(*)` counts them without reading a row. This departs from
//! PostgreSQL, whose `jsonb_path_ops` hashes paths and always rechecks.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr;
use qubedb_kv::ReadView;
use qubedb_model::catalog::IndexDef;
use qubedb_model::jsonb::{GinMode, Jsonb, gin_containment_tokens, gin_query_is_exact, key_token};

use crate::error::Result;
use crate::sql::write::{gin_entry_key, gin_token_prefix};

/// Up to this many candidates, a further token is checked by one look-up per candidate instead of
/// reading all of the token's entries.
const PROBE_ROWS_MAX: usize = 4096;

/// The tokens a filter needs: all of them (`@>`, `?`, `?&`) or any (`?|`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GinLookup {
    pub tokens: Vec<Vec<u8>>,
    pub all: bool,
    /// The rows with the tokens are exactly the rows the filter keeps (no recheck needed).
    pub exact: bool,
}

/// The lookup `filter` asks of GIN index `index` on column `column`, if it is one the index serves.
pub(crate) fn lookup(filter: &Expr, index: &IndexDef, column: &str) -> Option<GinLookup> {
    let mode = index.method.gin_mode()?;
    let path_ops = mode != GinMode::Keys;
    let Expr::ScalarFunction(call) = filter else {
        return None;
    };
    let [Expr::Column(target), Expr::Literal(constant, _)] = call.args.as_slice() else {
        return None;
    };
    if target.name != column {
        return None;
    }
    let keys = |constant: &ScalarValue| -> Option<Vec<String>> {
        match constant {
            ScalarValue::Utf8(Some(text)) => crate::sql::array_literals::parse_array(text)
                .map(|keys| keys.into_iter().flatten().collect()),
            ScalarValue::List(list) => {
                let values = list.value(0);
                let strings = datafusion::arrow::array::AsArray::as_string_opt::<i32>(&values)?;
                Some(strings.iter().flatten().map(str::to_string).collect())
            }
            _ => None,
        }
    };
    let lookup = match call.func.name() {
        "jsonb_contains" => {
            let document = match constant {
                ScalarValue::LargeBinary(Some(bytes)) => bytes.clone(),
                ScalarValue::Utf8(Some(text)) => crate::sql::convert::parse_jsonb(text).ok()?,
                _ => return None,
            };
            let document = Jsonb::new(&document);
            let (tokens, all) = gin_containment_tokens(document, mode);
            GinLookup {
                tokens,
                all,
                exact: mode == GinMode::Paths && gin_query_is_exact(document),
            }
        }
        "jsonb_exists" if !path_ops => match constant {
            ScalarValue::Utf8(Some(key)) => GinLookup {
                tokens: vec![key_token(key)],
                all: true,
                exact: false,
            },
            _ => return None,
        },
        "jsonb_exists_all" if !path_ops => GinLookup {
            tokens: keys(constant)?.iter().map(|key| key_token(key)).collect(),
            all: true,
            exact: false,
        },
        "jsonb_exists_any" if !path_ops => GinLookup {
            tokens: keys(constant)?.iter().map(|key| key_token(key)).collect(),
            all: false,
            exact: false,
        },
        _ => return None,
    };
    // No token (`@> '{}'`, `?& '{}'`): every row may match; the index does not narrow anything.
    (!lookup.tokens.is_empty()).then_some(lookup)
}

/// The primary keys (keycodes) of the rows that have the lookups' tokens, every lookup applying.
pub(crate) fn candidates(
    view: &ReadView,
    index: &IndexDef,
    lookups: &[GinLookup],
) -> Result<Vec<Vec<u8>>> {
    // Every set is a sorted run of primary keys without duplicates (a token's entries come in key
    // order), so intersections and unions are merges.
    let mut result: Option<Vec<Vec<u8>>> = None;
    for lookup in lookups {
        let mut found: Option<Vec<Vec<u8>>> = None;
        // Values before keys: a value is usually rarer than the key it sits under, so the first
        // set is small and the later tokens are probed per candidate rather than read whole.
        let mut tokens: Vec<&Vec<u8>> = lookup.tokens.iter().collect();
        tokens.sort_by_key(|token| token.first() != Some(&b'V'));
        for token in tokens {
            found = Some(match found {
                None => rows_with(view, index.id, token)?,
                Some(mut previous) if lookup.all && previous.len() <= PROBE_ROWS_MAX => {
                    let mut kept = Vec::with_capacity(previous.len());
                    for primary_key in previous.drain(..) {
                        if view
                            .get(&gin_entry_key(index.id, token, &primary_key))?
                            .is_some()
                        {
                            kept.push(primary_key);
                        }
                    }
                    kept
                }
                Some(previous) if lookup.all => {
                    intersection(previous, &rows_with(view, index.id, token)?)
                }
                Some(mut previous) => {
                    previous.extend(rows_with(view, index.id, token)?);
                    previous.sort_unstable();
                    previous.dedup();
                    previous
                }
            });
            if lookup.all && found.as_ref().is_some_and(Vec::is_empty) {
                break;
            }
        }
        let found = found.unwrap_or_default();
        result = Some(match result {
            None => found,
            Some(previous) => intersection(previous, &found),
        });
        if result.as_ref().is_some_and(Vec::is_empty) {
            break;
        }
    }
    Ok(result.unwrap_or_default())
}

/// The keys of sorted run `left` also in sorted run `right`.
fn intersection(left: Vec<Vec<u8>>, right: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut at = 0;
    left.into_iter()
        .filter(|key| {
            while at < right.len() && right[at] < *key {
                at += 1;
            }
            at < right.len() && right[at] == *key
        })
        .collect()
}

/// The primary keys under one token, in key order.
fn rows_with(view: &ReadView, index: u64, token: &[u8]) -> Result<Vec<Vec<u8>>> {
    let prefix = gin_token_prefix(index, token);
    let mut rows = Vec::new();
    view.visit(
        &qubedb_kv::prefix_range(&prefix),
        false,
        &mut |_, primary_key| {
            rows.push(primary_key.to_vec());
            true
        },
    )?;
    Ok(rows)
}
