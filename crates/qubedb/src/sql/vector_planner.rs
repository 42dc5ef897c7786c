//! Vectors in DataFusion's planner: the operators become the functions of [`crate::sql::vector`].
//!
//! `<~>` and `<%>` are the Hamming and Jaccard distances of bit strings (`sql/bit_string.rs`).
//! `<->`, `<#>`, `<=>` and `<+>` exist only for vectors (`<=>` and `<+>` arrive respelled, see
//! `sql/parse.rs`), so they map without looking at types. `+`, `-`, `*` and `||` map when an operand
//! is a vector and both are shallow (a column, literal, cast or call: vector expressions are; long
//! arithmetic chains are not, and their types are never computed here). A comparison of a vector with
//! a text literal (or an IN list of them, [`VectorInLists`]) reads the literal as a vector, as
//! PostgreSQL resolves an unknown-typed literal;
//! vectors compare with each other as Arrow lists do, element by element and then by length, which is
//! pgvector's order.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType as ArrowType, Field};
use datafusion::common::DFSchema;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::expr::{Placeholder, ScalarFunction};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::BinaryOperator;
use qubedb_model::vector::{Metric, VectorKind};

use crate::error::{Error, to_datafusion};
use crate::sql::jsonb_planner::{comparison_operator, is_text_literal, shallow};
use crate::sql::parse::{COSINE_OPERATOR_SPELLING, L1_OPERATOR_SPELLING};
use crate::sql::sparse_vector::{self, is_sparse};
use crate::sql::vector::{arrow_type, distance_function, is_vector, kind_of, type_name, udf};

/// A call of the vector function `name`.
pub(crate) fn call(name: &'static str, arguments: Vec<Expr>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(udf(name), arguments))
}

/// The expression planner for vector operators (see the module docs).
#[derive(Debug, Default)]
pub struct VectorOperators;

fn is_vector_expr(expr: &Expr, schema: &DFSchema) -> bool {
    expr.get_type(schema)
        .is_ok_and(|data_type| is_vector(&data_type))
}

fn vector_kind_of_expr(expr: &Expr, schema: &DFSchema) -> Option<VectorKind> {
    kind_of(&expr.get_type(schema).ok()?)
}

/// The cast function to vectors of `kind`.
fn input_function(kind: VectorKind) -> &'static str {
    match kind {
        VectorKind::Single => "qubedb_vector",
        VectorKind::Half => "qubedb_halfvec",
    }
}

/// The metric a distance operator measures.
pub(crate) fn operator_metric(op: &BinaryOperator) -> Option<Metric> {
    match op {
        BinaryOperator::LtDashGt => Some(Metric::L2),
        BinaryOperator::Spaceship => Some(Metric::Cosine),
        BinaryOperator::Custom(spelling) => match spelling.as_str() {
            "<#>" => Some(Metric::InnerProduct),
            spelling if spelling == COSINE_OPERATOR_SPELLING => Some(Metric::Cosine),
            spelling if spelling == L1_OPERATOR_SPELLING => Some(Metric::L1),
            _ => None,
        },
        _ => None,
    }
}

/// `expr`, a parameter of no type yet typed as a vector (the distance operators take only vectors),
/// a sparse vector when the other operand is one.
fn typed_placeholder(expr: Expr, sparse: bool) -> Expr {
    let data_type = if sparse {
        sparse_vector::arrow_type()
    } else {
        arrow_type()
    };
    match expr {
        Expr::Placeholder(Placeholder { id, field: None }) => Expr::Placeholder(
            Placeholder::new_with_field(id, Some(Arc::new(Field::new("", data_type, true)))),
        ),
        other => other,
    }
}

fn is_sparse_expr(expr: &Expr, schema: &DFSchema) -> bool {
    expr.get_type(schema)
        .is_ok_and(|data_type| is_sparse(&data_type))
}

/// `expr` read as a sparse vector if it is a text literal, else as is.
fn text_as_sparse(expr: Expr) -> Expr {
    if is_text_literal(&expr) {
        call_sparse("qubedb_sparsevec", vec![expr])
    } else {
        expr
    }
}

fn call_sparse(name: &'static str, arguments: Vec<Expr>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(sparse_vector::udf(name), arguments))
}

/// `expr` read as a vector of `kind` if it is a text literal (`'[1,2]'` beside a vector), else as is.
fn text_as_vector(kind: VectorKind, expr: Expr) -> Expr {
    if is_text_literal(&expr) {
        call(input_function(kind), vec![expr])
    } else {
        expr
    }
}

impl ExprPlanner for VectorOperators {
    /// `ARRAY['[1,2]'::vector, '[3,4]']`: text literals among vectors are vectors.
    fn plan_array_literal(
        &self,
        exprs: Vec<Expr>,
        schema: &DFSchema,
    ) -> datafusion::error::Result<PlannerResult<Vec<Expr>>> {
        let has_text = exprs.iter().any(is_text_literal);
        let kind = exprs
            .iter()
            .filter(|expr| shallow(expr) && !is_text_literal(expr))
            .find_map(|expr| vector_kind_of_expr(expr, schema));
        let (true, Some(kind)) = (has_text, kind) else {
            return Ok(PlannerResult::Original(exprs));
        };
        Ok(PlannerResult::Original(
            exprs
                .into_iter()
                .map(|expr| text_as_vector(kind, expr))
                .collect(),
        ))
    }

    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> datafusion::error::Result<PlannerResult<RawBinaryExpr>> {
        let RawBinaryExpr { op, left, right } = expr;
        // pgvector's distances of bit strings (`sql/bit_string.rs`); a parameter is a bit string's text.
        if let BinaryOperator::Custom(spelling) = &op
            && let Some(function) = match spelling.as_str() {
                "<~>" => Some("hamming_distance"),
                "<%>" => Some("jaccard_distance"),
                _ => None,
            }
        {
            let text = |expr: Expr| match expr {
                Expr::Placeholder(Placeholder { id, field: None }) => {
                    Expr::Placeholder(Placeholder::new_with_field(
                        id,
                        Some(Arc::new(Field::new("", ArrowType::Utf8, true))),
                    ))
                }
                other => other,
            };
            return Ok(PlannerResult::Planned(Expr::ScalarFunction(
                ScalarFunction::new_udf(
                    crate::sql::bit_string::udf(function),
                    vec![text(left), text(right)],
                ),
            )));
        }
        // The bitwise operators of bit strings: text-typed operands are bit strings here (text has no
        // such operators; bit strings compute as text, `sql/bit_string.rs`).
        let bitwise = match op {
            BinaryOperator::BitwiseAnd => Some(("qubedb_bit_and", false)),
            BinaryOperator::BitwiseOr => Some(("qubedb_bit_or", false)),
            BinaryOperator::PGBitwiseXor => Some(("qubedb_bit_xor", false)),
            BinaryOperator::PGBitwiseShiftLeft => Some(("qubedb_bit_shift_left", true)),
            BinaryOperator::PGBitwiseShiftRight => Some(("qubedb_bit_shift_right", true)),
            _ => None,
        };
        let is_text_expr = |expr: &Expr| {
            expr.get_type(schema)
                .is_ok_and(|data_type| crate::sql::vector::is_text(&data_type))
        };
        let is_integer_expr = |expr: &Expr| {
            expr.get_type(schema)
                .is_ok_and(|data_type| data_type.is_integer())
        };
        if let Some((function, shift)) = bitwise
            && is_text_expr(&left)
            && if shift {
                is_integer_expr(&right)
            } else {
                is_text_expr(&right)
            }
        {
            return Ok(PlannerResult::Planned(Expr::ScalarFunction(
                ScalarFunction::new_udf(crate::sql::bit_string::udf(function), vec![left, right]),
            )));
        }
        if let Some(metric) = operator_metric(&op) {
            // `col <-> $1`: the parameter is a vector, so a prepared query's cached plan can bind it
            // (`sql/plan_cache.rs`) instead of planning each execution afresh.
            let (left_sparse, right_sparse) = (
                is_sparse_expr(&left, schema),
                is_sparse_expr(&right, schema),
            );
            let (left, right) = (
                typed_placeholder(left, right_sparse),
                typed_placeholder(right, left_sparse),
            );
            return Ok(PlannerResult::Planned(call(
                distance_function(metric),
                vec![left, right],
            )));
        }
        let arithmetic = match op {
            BinaryOperator::Plus => Some("vector_add"),
            BinaryOperator::Minus => Some("vector_sub"),
            BinaryOperator::Multiply => Some("vector_mul"),
            BinaryOperator::StringConcat => Some("vector_concat"),
            _ => None,
        };
        let comparison = matches!(
            op,
            BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq
                | BinaryOperator::Eq
                | BinaryOperator::NotEq
        );
        if (arithmetic.is_none() && !comparison) || !shallow(&left) || !shallow(&right) {
            return Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }));
        }
        let (left_sparse, right_sparse) = (
            is_sparse_expr(&left, schema),
            is_sparse_expr(&right, schema),
        );
        if let Some(name) = arithmetic
            && (left_sparse || right_sparse)
        {
            // pgvector defines no arithmetic on sparse vectors.
            let operand = |expr: &Expr| {
                expr.get_type(schema)
                    .map_or_else(|_| "unknown".to_string(), |data_type| type_name(&data_type))
            };
            let symbol = match name {
                "vector_add" => "+",
                "vector_sub" => "-",
                "vector_mul" => "*",
                _ => "||",
            };
            return Err(to_datafusion(
                Error::user(
                    "42883",
                    format!(
                        "operator does not exist: {} {symbol} {}",
                        operand(&left),
                        operand(&right)
                    ),
                )
                .with_hint(
                    "No operator matches the given name and argument types. You might need to add explicit type casts.",
                ),
            ));
        }
        if comparison
            && (left_sparse || right_sparse)
            && (left_sparse || is_text_literal(&left))
            && (right_sparse || is_text_literal(&right))
        {
            // Sparse vectors compare in pgvector's order (`sparsevec_cmp`), not field by field.
            let compared = call_sparse(
                "sparsevec_cmp",
                vec![text_as_sparse(left), text_as_sparse(right)],
            );
            return Ok(PlannerResult::Planned(Expr::BinaryExpr(
                datafusion::logical_expr::BinaryExpr::new(
                    Box::new(compared),
                    comparison_operator(&op),
                    Box::new(datafusion::prelude::lit(0i32)),
                ),
            )));
        }
        let left_vector = is_vector_expr(&left, schema);
        let right_vector = is_vector_expr(&right, schema);
        let other_fits = |vector: bool, other: &Expr, other_vector: bool| {
            vector && (other_vector || is_text_literal(other))
        };
        if !other_fits(left_vector, &right, right_vector)
            && !other_fits(right_vector, &left, left_vector)
        {
            return Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }));
        }
        if let Some(name) = arithmetic {
            return Ok(PlannerResult::Planned(call(name, vec![left, right])));
        }
        // A comparison: the text literal read as a vector of the other side's kind.
        let kind = vector_kind_of_expr(&left, schema)
            .or_else(|| vector_kind_of_expr(&right, schema))
            .unwrap_or_default();
        Ok(PlannerResult::Original(RawBinaryExpr {
            op,
            left: text_as_vector(kind, left),
            right: text_as_vector(kind, right),
        }))
    }
}

/// The replacement of a cast to or from vectors that DataFusion planned as an Arrow cast (type
/// coercion's casts of literals and arguments, and `::text`), `None` when Arrow's cast is right.
pub(crate) fn rewrite_vector_cast(
    inner: &Expr,
    source: &ArrowType,
    target: &ArrowType,
) -> Option<Expr> {
    if is_sparse(target) {
        if is_sparse(source) {
            return Some(inner.clone());
        }
        return Some(call_sparse("qubedb_sparsevec", vec![inner.clone()]));
    }
    if is_sparse(source) {
        let text = call_sparse("qubedb_sparsevec_text", vec![inner.clone()]);
        return match target {
            ArrowType::Utf8 => Some(text),
            ArrowType::LargeUtf8 | ArrowType::Utf8View => Some(Expr::Cast(
                datafusion::logical_expr::expr::Cast::new(Box::new(text), target.clone()),
            )),
            _ => None,
        };
    }
    if let Some(kind) = kind_of(target) {
        if kind_of(source) == Some(kind) {
            return Some(inner.clone());
        }
        return Some(call(input_function(kind), vec![inner.clone()]));
    }
    if is_vector(source) {
        return match target {
            ArrowType::Utf8 => Some(call("qubedb_vector_text", vec![inner.clone()])),
            ArrowType::LargeUtf8 | ArrowType::Utf8View => {
                Some(Expr::Cast(datafusion::logical_expr::expr::Cast::new(
                    Box::new(call("qubedb_vector_text", vec![inner.clone()])),
                    target.clone(),
                )))
            }
            _ => None,
        };
    }
    None
}

/// The analyzer rule for `v IN ('[1,2]', '[3,4]')`: text literals in the IN list of a vector are
/// read as vectors, as in a comparison (DataFusion's planner has no hook for IN lists, and its type
/// coercion, which runs next, finds no common type for a list and a string). Placed first.
#[derive(Debug, Default)]
pub(crate) struct VectorInLists;

impl AnalyzerRule for VectorInLists {
    fn name(&self) -> &str {
        "qubedb_vector_in_lists"
    }

    fn analyze(
        &self,
        plan: LogicalPlan,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<LogicalPlan> {
        let rewritten = plan.transform_up_with_subqueries(|node| {
            // Most plans have no such list: look before merging the inputs' schemas.
            let mut candidate = false;
            node.apply_expressions(|expr| {
                candidate = expr.exists(|inner| {
                    Ok(matches!(inner, Expr::InList(in_list)
                        if in_list.list.iter().any(is_text_literal)))
                })?;
                Ok(if candidate {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            })?;
            if !candidate {
                return Ok(Transformed::no(node));
            }
            let schema = merge_schema(&node.inputs());
            node.map_expressions(|expr| {
                expr.transform_up(|inner| {
                    let Expr::InList(mut in_list) = inner else {
                        return Ok(Transformed::no(inner));
                    };
                    let kind = (in_list.list.iter().any(is_text_literal) && shallow(&in_list.expr))
                        .then(|| vector_kind_of_expr(&in_list.expr, &schema))
                        .flatten();
                    let Some(kind) = kind else {
                        return Ok(Transformed::no(Expr::InList(in_list)));
                    };
                    in_list.list = std::mem::take(&mut in_list.list)
                        .into_iter()
                        .map(|item| text_as_vector(kind, item))
                        .collect();
                    Ok(Transformed::yes(Expr::InList(in_list)))
                })
            })
        })?;
        Ok(rewritten.data)
    }
}

/// Installs the planner (after the jsonb operators', which look only at jsonb operands).
pub(crate) fn install(planners: &mut Vec<Arc<dyn ExprPlanner>>) {
    planners.insert(0, Arc::new(VectorOperators));
}
