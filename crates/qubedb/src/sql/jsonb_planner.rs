//! jsonb in DataFusion's planner: the operators become the functions of [`crate::sql::jsonb`], and
//! casts to and from jsonb become its input, output and scalar-cast functions.
//!
//! Operators: an expression planner sees each binary operation as the SQL planner builds it, with the
//! input's schema. `->`, `->>`, `#>`, `#>>`, `?`, `?|`, `?&` and `#-` exist only for JSON, so they map
//! without looking at types. `@>` and `<@` also mean array containment, `||` string and array
//! concatenation, `-` subtraction and `<` ... `>=` ordinary comparisons: those map only when an operand
//! is jsonb (its type is computed only for these operators, and for `-` and the comparisons only
//! when the other side is a literal or the expression is shallow, keeping deep arithmetic cheap).
//! `(doc -> 'a') ->> 'b'` is planned as one path extraction, so the middle value is never copied.
//!
//! Casts: DataFusion casts between Arrow types; a cast of jsonb (`LargeBinary`) to text must print
//! the JSON, and type coercion casts an untyped literal compared with a jsonb column to
//! `LargeBinary`, which must parse it. An analyzer rule, run after type coercion, replaces those
//! casts with the functions. It also reads a text literal cast to an array (`'{a,b}'::text[]`) as
//! PostgreSQL's array syntax (Arrow would make a one-element list of the text).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType as ArrowType, Field};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::GetFieldAccess;
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::planner::{
    ExprPlanner, PlannerResult, RawBinaryExpr, RawFieldAccessExpr,
};
use datafusion::logical_expr::{
    Expr, ExprSchemable, LogicalPlan, Operator, ScalarUDF, binary_expr,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::BinaryOperator;

use crate::sql::convert::TYPE_METADATA_KEY;
use crate::sql::jsonb::Scalar;

/// Puts QubeDB's expression planners first in a state builder: array literals, then jsonb operators
/// (both must see the operators before DataFusion's own planners do).
pub(crate) fn install_planners(
    builder: &mut datafusion::execution::session_state::SessionStateBuilder,
) {
    if let Some(planners) = builder.expr_planners() {
        planners.insert(0, Arc::new(JsonbOperators));
        crate::sql::vector_planner::install(planners);
        planners.insert(0, Arc::new(crate::sql::array_literals::ArrayLiterals));
    }
}

/// A call of the jsonb function `name`.
fn call(name: &'static str, arguments: Vec<Expr>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(function(name), arguments))
}

fn function(name: &'static str) -> Arc<ScalarUDF> {
    crate::sql::jsonb::udf(name)
}

/// The expression planner for jsonb operators (see the module docs).
#[derive(Debug, Default)]
pub struct JsonbOperators;

fn is_jsonb(expr: &Expr, schema: &DFSchema) -> bool {
    matches!(expr.get_type(schema), Ok(ArrowType::LargeBinary))
}

/// True for json values (`LargeUtf8`, see `sql/convert.rs`).
fn is_json(expr: &Expr, schema: &DFSchema) -> bool {
    matches!(expr.get_type(schema), Ok(ArrowType::LargeUtf8))
}

/// The logical operator of a comparison's SQL operator (`<`, `<=`, `>`, `>=`, `=`; anything else
/// reads as `<>`).
pub(crate) fn comparison_operator(op: &BinaryOperator) -> Operator {
    match op {
        BinaryOperator::Lt => Operator::Lt,
        BinaryOperator::LtEq => Operator::LtEq,
        BinaryOperator::Gt => Operator::Gt,
        BinaryOperator::GtEq => Operator::GtEq,
        BinaryOperator::Eq => Operator::Eq,
        _ => Operator::NotEq,
    }
}

/// True for a text literal (an untyped literal takes the type of what it meets).
pub(crate) fn is_text_literal(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Literal(
            ScalarValue::Utf8(Some(_)) | ScalarValue::LargeUtf8(Some(_)),
            _
        )
    )
}

/// True for expressions whose type is cheap to compute (no deep operator chains).
pub(crate) fn shallow(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Column(_)
            | Expr::Literal(..)
            | Expr::ScalarFunction(_)
            | Expr::Cast(_)
            | Expr::TryCast(_)
            | Expr::Placeholder(_)
    )
}

/// The text of a constant key.
fn constant_key(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(text)), _) => Some(text.clone()),
        _ => None,
    }
}

/// `(doc -> 'a') -> 'b'` (constant keys) as the document and its keys (`doc`, `[a, b]`); `None` for
/// anything else.
fn constant_keys(expr: &Expr) -> Option<(Expr, Vec<String>)> {
    let Expr::ScalarFunction(call) = expr else {
        return None;
    };
    match (call.func.name(), call.args.as_slice()) {
        ("jsonb_object_field", [document, key]) => {
            let key = constant_key(key)?;
            let (root, mut keys) = (document.clone(), vec![key]);
            Some((root, std::mem::take(&mut keys)))
        }
        ("qubedb_jsonb_keys", [document, keys @ ..]) => {
            let keys = keys.iter().map(constant_key).collect::<Option<Vec<_>>>()?;
            Some((document.clone(), keys))
        }
        _ => None,
    }
}

impl ExprPlanner for JsonbOperators {
    /// Subscripts of jsonb (`doc['key']`, `doc[0]`, chains of both): the key's or the element's
    /// value, as `->` gives it (PostgreSQL's jsonb subscripting).
    fn plan_field_access(
        &self,
        expr: RawFieldAccessExpr,
        schema: &DFSchema,
    ) -> datafusion::error::Result<PlannerResult<RawFieldAccessExpr>> {
        if !is_jsonb(&expr.expr, schema) {
            return Ok(PlannerResult::Original(expr));
        }
        let RawFieldAccessExpr { field_access, expr } = expr;
        let key = match field_access {
            GetFieldAccess::NamedStructField { name } => Expr::Literal(name, None),
            GetFieldAccess::ListIndex { key } => *key,
            other => {
                return Ok(PlannerResult::Original(RawFieldAccessExpr {
                    field_access: other,
                    expr,
                }));
            }
        };
        Ok(PlannerResult::Planned(call(
            "jsonb_object_field",
            vec![expr, key],
        )))
    }

    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> datafusion::error::Result<PlannerResult<RawBinaryExpr>> {
        let RawBinaryExpr { op, left, right } = expr;
        let planned = match &op {
            // On json the path operators read the text as written (`sql/jsonb/json_text.rs`).
            BinaryOperator::Arrow
            | BinaryOperator::LongArrow
            | BinaryOperator::HashArrow
            | BinaryOperator::HashLongArrow
                if is_json(&left, schema) =>
            {
                let name = match op {
                    BinaryOperator::Arrow => "json_object_field",
                    BinaryOperator::LongArrow => "json_object_field_text",
                    BinaryOperator::HashArrow => "json_extract_path",
                    _ => "json_extract_path_text",
                };
                Some(call(name, vec![left.clone(), right.clone()]))
            }
            BinaryOperator::Arrow | BinaryOperator::LongArrow => {
                let text = op == BinaryOperator::LongArrow;
                // A chain of constant keys becomes one lookup of all of them.
                if let Some(key) = constant_key(&right)
                    && let Some((root, mut keys)) = constant_keys(&left)
                {
                    keys.push(key);
                    let name = if text {
                        "qubedb_jsonb_keys_text"
                    } else {
                        "qubedb_jsonb_keys"
                    };
                    let mut arguments = vec![root];
                    arguments.extend(
                        keys.into_iter()
                            .map(|key| Expr::Literal(ScalarValue::Utf8(Some(key)), None)),
                    );
                    return Ok(PlannerResult::Planned(call(name, arguments)));
                }
                let name = if text {
                    "jsonb_object_field_text"
                } else {
                    "jsonb_object_field"
                };
                Some(call(name, vec![left.clone(), right.clone()]))
            }
            BinaryOperator::HashArrow => Some(call(
                "jsonb_extract_path",
                vec![left.clone(), right.clone()],
            )),
            BinaryOperator::HashLongArrow => Some(call(
                "jsonb_extract_path_text",
                vec![left.clone(), right.clone()],
            )),
            BinaryOperator::Question => {
                Some(call("jsonb_exists", vec![left.clone(), right.clone()]))
            }
            BinaryOperator::QuestionPipe => {
                Some(call("jsonb_exists_any", vec![left.clone(), right.clone()]))
            }
            BinaryOperator::QuestionAnd => {
                Some(call("jsonb_exists_all", vec![left.clone(), right.clone()]))
            }
            BinaryOperator::HashMinus => {
                Some(call("jsonb_delete_path", vec![left.clone(), right.clone()]))
            }
            BinaryOperator::AtQuestion => Some(call(
                "jsonb_path_exists_opr",
                vec![left.clone(), right.clone()],
            )),
            BinaryOperator::AtAt if is_jsonb(&left, schema) || is_text_literal(&left) => Some(
                call("jsonb_path_match_opr", vec![left.clone(), right.clone()]),
            ),
            BinaryOperator::AtArrow | BinaryOperator::ArrowAt => {
                let jsonb =
                    is_jsonb(&left, schema) || (is_text_literal(&left) && is_jsonb(&right, schema));
                jsonb.then(|| {
                    let name = if op == BinaryOperator::AtArrow {
                        "jsonb_contains"
                    } else {
                        "jsonb_contained"
                    };
                    call(name, vec![left.clone(), right.clone()])
                })
            }
            BinaryOperator::StringConcat => {
                let jsonb = (!is_text_literal(&left) && is_jsonb(&left, schema))
                    || (!is_text_literal(&right) && is_jsonb(&right, schema));
                jsonb.then(|| call("jsonb_concat", vec![left.clone(), right.clone()]))
            }
            BinaryOperator::Minus => {
                let candidate =
                    matches!(right, Expr::Literal(..) | Expr::Cast(_)) || shallow(&left);
                (candidate && is_jsonb(&left, schema))
                    .then(|| call("jsonb_delete", vec![left.clone(), right.clone()]))
            }
            // jsonb compares by jsonb's order, numbers by value (`1.0` = `1`), not bytewise.
            BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
            | BinaryOperator::Eq
            | BinaryOperator::NotEq
                if shallow(&left) && shallow(&right) =>
            {
                let jsonb = is_jsonb(&left, schema) || is_jsonb(&right, schema);
                jsonb.then(|| {
                    let operator = comparison_operator(&op);
                    binary_expr(
                        call("jsonb_cmp", vec![left.clone(), right.clone()]),
                        operator,
                        Expr::Literal(ScalarValue::Int32(Some(0)), None),
                    )
                })
            }
            _ => None,
        };
        Ok(match planned {
            Some(planned) => PlannerResult::Planned(planned),
            None => PlannerResult::Original(RawBinaryExpr { op, left, right }),
        })
    }
}

/// The analyzer rule for casts to and from jsonb (see the module docs).
#[derive(Debug, Default)]
pub struct JsonbCasts;

impl AnalyzerRule for JsonbCasts {
    fn name(&self) -> &str {
        "qubedb_jsonb_casts"
    }

    fn analyze(
        &self,
        plan: LogicalPlan,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = {
                let inputs = node.inputs();
                if inputs.is_empty() {
                    node.schema().as_ref().clone()
                } else {
                    datafusion::logical_expr::utils::merge_schema(&inputs)
                }
            };
            // Rewritten expressions keep their names: the nodes above refer to them by name.
            let names = NamePreserver::new(&node);
            node.map_expressions(|expr| {
                let name = names.save(&expr);
                expr.transform_up(|expr| rewrite_cast(expr, &schema))
                    .map(|transformed| transformed.update_data(|expr| name.restore(expr)))
            })?
            // A rewritten cast may change its field (`without_stale_type`), and a node above reads
            // its input's fields: every schema is computed again, as DataFusion's type coercion does.
            .map_data(|node| node.recompute_schema())
        })
        .map(|transformed| transformed.data)
    }
}

/// Whether `expr` is a bit string: a bit function's result or a column whose `qubedb.type` says so
/// (a bit string computes as text, `sql/bit_string.rs`).
fn is_bit_string(expr: &Expr, schema: &DFSchema) -> bool {
    crate::sql::bit_string::is_bit_string_call(expr, &|operand| is_bit_string(operand, schema))
        || matches!(expr, Expr::Column(_))
            && expr.to_field(schema).is_ok_and(|(_, field)| {
                field
                    .metadata()
                    .get(TYPE_METADATA_KEY)
                    .is_some_and(|name| name.starts_with("bit"))
            })
}

/// The list type as many levels deep as `source` (a list of lists, at least), whose innermost elements
/// are `element`s; `None` when `source` is not a list of lists.
fn nested_target(source: &ArrowType, element: &Arc<Field>) -> Option<ArrowType> {
    let (ArrowType::List(inner) | ArrowType::LargeList(inner)) = source else {
        return None;
    };
    let (ArrowType::List(deeper) | ArrowType::LargeList(deeper)) = inner.data_type() else {
        return None;
    };
    let child = match deeper.data_type() {
        ArrowType::List(_) | ArrowType::LargeList(_) => nested_target(inner.data_type(), element)?,
        _ => ArrowType::List(element.clone()),
    };
    Some(ArrowType::List(Arc::new(Field::new_list_field(
        child, true,
    ))))
}

fn rewrite_cast(expr: Expr, schema: &DFSchema) -> datafusion::error::Result<Transformed<Expr>> {
    let (inner, target) = match &expr {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            (expr.as_ref(), field.data_type().clone())
        }
        _ => return Ok(Transformed::no(expr)),
    };
    let target = &target;
    // `'{a,b}'::text[]`: PostgreSQL's array literal, not a one-element array of that text.
    if let (
        Expr::Literal(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)), _),
        ArrowType::List(element),
    ) = (inner, target)
        && let Some(list) = crate::sql::array_literals::list_literal(text, element)
    {
        return Ok(Transformed::yes(list));
    }
    // `'{{1,2},{3,4}}'::int[]`: an array of two dimensions.
    if let (
        Expr::Literal(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)), _),
        ArrowType::List(element),
    ) = (inner, target)
        && let Some(list) = crate::sql::array_literals::nested_list_literal(text, element)
    {
        return list
            .map(Transformed::yes)
            .map_err(crate::error::to_datafusion);
    }
    let Ok(source) = inner.get_type(schema) else {
        return Ok(Transformed::no(expr));
    };
    // A bit string (a bit function's result, or a column whose `qubedb.type` says so) cast to an
    // integer reads its bits, not its text as digits.
    if target.is_integer() && is_bit_string(inner, schema) {
        let width = if matches!(target, ArrowType::Int64 | ArrowType::UInt64) {
            64
        } else {
            32
        };
        let bits = Expr::ScalarFunction(ScalarFunction::new_udf(
            crate::sql::bit_string::udf("qubedb_bit_to_integer"),
            vec![
                inner.clone(),
                Expr::Literal(ScalarValue::Int64(Some(width)), None),
            ],
        ));
        return Ok(Transformed::yes(Expr::Cast(Cast::new(
            Box::new(bits),
            target.clone(),
        ))));
    }
    // `ARRAY[[1,2],[3,4]]::real[]`: PostgreSQL's array types hold any number of dimensions; the
    // cast reaches the innermost elements and keeps the dimensions.
    if let ArrowType::List(element) = target
        && !matches!(element.data_type(), ArrowType::List(_))
        && let Some(nested) = nested_target(&source, element)
    {
        return Ok(Transformed::yes(match &expr {
            Expr::TryCast(_) => Expr::TryCast(TryCast::new(Box::new(inner.clone()), nested)),
            _ => Expr::Cast(Cast::new(Box::new(inner.clone()), nested)),
        }));
    }
    if let Some(replacement) =
        crate::sql::vector_planner::rewrite_vector_cast(inner, &source, target)
    {
        return Ok(Transformed::yes(replacement));
    }
    let replacement = match (&source, target) {
        (ArrowType::LargeBinary, ArrowType::LargeBinary) => inner.clone(),
        (ArrowType::LargeBinary, ArrowType::Utf8) => call("qubedb_jsonb_text", vec![inner.clone()]),
        (ArrowType::LargeBinary, ArrowType::LargeUtf8 | ArrowType::Utf8View) => {
            Expr::Cast(Cast::new(
                Box::new(call("qubedb_jsonb_text", vec![inner.clone()])),
                target.clone(),
            ))
        }
        (ArrowType::LargeBinary, ArrowType::Decimal128(..) | ArrowType::Decimal256(..)) => {
            Expr::Cast(Cast::new(
                Box::new(call("qubedb_jsonb_to_numeric", vec![inner.clone()])),
                target.clone(),
            ))
        }
        (ArrowType::LargeBinary, other) => match Scalar::function_for(other) {
            Some(name) => call(name, vec![inner.clone()]),
            None => return Ok(Transformed::no(expr)),
        },
        // Text becoming json is checked to be JSON.
        (ArrowType::Utf8 | ArrowType::Utf8View, ArrowType::LargeUtf8) => {
            call("qubedb_json", vec![inner.clone()])
        }
        (ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View, ArrowType::LargeBinary) => {
            let text = if source == ArrowType::Utf8 {
                inner.clone()
            } else {
                Expr::Cast(Cast::new(Box::new(inner.clone()), ArrowType::Utf8))
            };
            call("qubedb_jsonb", vec![text])
        }
        _ => return Ok(without_stale_type(expr, schema)),
    };
    Ok(Transformed::yes(replacement))
}

/// A cast to another Arrow type of a value whose field names its SQL type (`qubedb.type`, a column's):
/// DataFusion's cast given only a type keeps the source's metadata, so `id::bigint` of an `integer`
/// column still said `integer` — clients were told int4 and sent binary results as int4 (wrong
/// values). The cast gets an explicit target field (a name, the source's nullability, no metadata),
/// which DataFusion's logical and physical casts both take as is, so the value's SQL type follows its
/// Arrow type, as for any computed value.
fn without_stale_type(expr: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let (inner, field, try_cast) = match &expr {
        Expr::Cast(Cast { expr, field }) => (expr.as_ref(), field, false),
        Expr::TryCast(TryCast { expr, field }) => (expr.as_ref(), field, true),
        _ => return Transformed::no(expr),
    };
    let type_only = field.name().is_empty() && field.is_nullable() && field.metadata().is_empty();
    let Ok((_, source)) = inner.to_field(schema) else {
        return Transformed::no(expr);
    };
    if !type_only
        || source.data_type() == field.data_type()
        || !source.metadata().contains_key(TYPE_METADATA_KEY)
    {
        return Transformed::no(expr);
    }
    let target = Arc::new(Field::new(
        "cast",
        field.data_type().clone(),
        source.is_nullable() || try_cast,
    ));
    let inner = Box::new(inner.clone());
    Transformed::yes(if try_cast {
        Expr::TryCast(TryCast {
            expr: inner,
            field: target,
        })
    } else {
        Expr::Cast(Cast::new_from_field(inner, target))
    })
}
