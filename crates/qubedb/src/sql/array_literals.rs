//! PostgreSQL's array literals in text form: `'{1,2,3}'` compared with an array column is that array, as
//! an untyped literal takes the type of what it meets in PostgreSQL. DataFusion sees a string and refuses
//! to compare it with a list, so this expression planner, which sees each binary operation as the SQL
//! planner builds it (with the input's schema), replaces such a string with the list literal it spells,
//! its elements cast to the column's element type. Catalog queries need it (`polroles = '{0}'` in psql's
//! `\d`), and so do users (`WHERE tags = '{a,b}'`).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{Expr, ExprSchemable};

/// The expression planner (see the module docs).
#[derive(Debug, Default)]
pub struct ArrayLiterals;

impl ExprPlanner for ArrayLiterals {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> datafusion::error::Result<PlannerResult<RawBinaryExpr>> {
        // Only a text literal spelling an array can change; the operand's type is computed only then
        // (computing types of every operand as the planner builds each operation would make deep
        // expressions quadratic, and deeper on the stack).
        let spells_array = |side: &Expr| matches!(side, Expr::Literal(ScalarValue::Utf8(Some(text)), _) if text.trim_start().starts_with('{'));
        if !spells_array(&expr.left) && !spells_array(&expr.right) {
            return Ok(PlannerResult::Original(expr));
        }
        let RawBinaryExpr { op, left, right } = expr;
        let list_element = |side: &Expr| match side.get_type(schema) {
            Ok(DataType::List(element)) | Ok(DataType::LargeList(element)) => Some(element),
            _ => None,
        };
        let (left, right) = match (&left, &right) {
            (other, Expr::Literal(ScalarValue::Utf8(Some(text)), _)) => {
                match list_element(other).and_then(|element| list_literal(text, &element)) {
                    Some(literal) => (left, literal),
                    None => (left, right),
                }
            }
            (Expr::Literal(ScalarValue::Utf8(Some(text)), _), other) => {
                match list_element(other).and_then(|element| list_literal(text, &element)) {
                    Some(literal) => (literal, right),
                    None => (left, right),
                }
            }
            _ => (left, right),
        };
        Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }))
    }
}

/// The list literal `text` (`{a,"b c",NULL}`) spells, elements cast to `element`'s type; `None` when
/// `text` is not a one-dimensional array literal or an element does not cast.
pub(crate) fn list_literal(text: &str, element: &Arc<Field>) -> Option<Expr> {
    let values = parse_array(text)?;
    let scalars = values
        .into_iter()
        .map(|value| match value {
            None => ScalarValue::try_from(element.data_type()).ok(),
            Some(text) => ScalarValue::Utf8(Some(text))
                .cast_to(element.data_type())
                .ok(),
        })
        .collect::<Option<Vec<ScalarValue>>>()?;
    let array = ScalarValue::new_list(&scalars, element.data_type(), element.is_nullable());
    Some(Expr::Literal(ScalarValue::List(array), None))
}

/// The multi-dimensional array `text` (`{{1,2},{3,4}}`) spells, as nested list literals whose innermost
/// elements are cast to `element`'s type (PostgreSQL's `real[]` holds arrays of any dimensions; here each
/// dimension is one level of list, as `ARRAY[[1,2],[3,4]]` builds). `None` when `text` is not a
/// multi-dimensional array literal or an element does not cast; an error when its sub-arrays differ in
/// shape, as PostgreSQL's `array_in` refuses them.
pub(crate) fn nested_list_literal(
    text: &str,
    element: &Arc<Field>,
) -> Option<crate::error::Result<Expr>> {
    let items = parse_nested_array(text)?;
    if !items.iter().any(|item| matches!(item, Element::Array(_))) {
        return None;
    }
    let Some(shape) = shape_of(&items) else {
        return Some(Err(crate::error::Error::user(
            "22P02",
            format!("malformed array literal: \"{text}\""),
        )
        .with_detail(
            "Multidimensional arrays must have sub-arrays with matching dimensions.",
        )));
    };
    let value = nested_scalar(&items, shape.len(), element)?;
    Some(Ok(Expr::Literal(value, None)))
}

/// The lengths of each dimension of `items`, if every sub-array at each depth has the same shape and
/// values sit only at the deepest level.
fn shape_of(items: &[Element]) -> Option<Vec<usize>> {
    let mut shape = vec![items.len()];
    let mut inner: Option<Vec<usize>> = None;
    for item in items {
        let this = match item {
            Element::Value(_) => Vec::new(),
            Element::Array(children) => shape_of(children)?,
        };
        match &inner {
            None => inner = Some(this),
            Some(seen) if *seen == this => {}
            Some(_) => return None,
        }
    }
    let inner = inner.unwrap_or_default();
    // An empty sub-array (`{{}}`) has no shape to match.
    if inner.contains(&0) {
        return None;
    }
    shape.extend(inner);
    Some(shape)
}

/// `items` as a list scalar `depth` levels deep, the innermost values cast to `element`'s type.
fn nested_scalar(items: &[Element], depth: usize, element: &Arc<Field>) -> Option<ScalarValue> {
    if depth == 1 {
        let scalars = items
            .iter()
            .map(|item| match item {
                Element::Value(None) => ScalarValue::try_from(element.data_type()).ok(),
                Element::Value(Some(text)) => ScalarValue::Utf8(Some(text.clone()))
                    .cast_to(element.data_type())
                    .ok(),
                Element::Array(_) => None,
            })
            .collect::<Option<Vec<ScalarValue>>>()?;
        let array = ScalarValue::new_list(&scalars, element.data_type(), element.is_nullable());
        return Some(ScalarValue::List(array));
    }
    let children = items
        .iter()
        .map(|item| match item {
            Element::Array(children) => nested_scalar(children, depth - 1, element),
            Element::Value(_) => None,
        })
        .collect::<Option<Vec<ScalarValue>>>()?;
    let child_type = children.first()?.data_type();
    Some(ScalarValue::List(ScalarValue::new_list(
        &children,
        &child_type,
        true,
    )))
}

/// The elements of a one-dimensional PostgreSQL array literal (`None` for an unquoted NULL).
pub(crate) fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut values = Vec::new();
    if inner.trim().is_empty() {
        return Some(values);
    }
    let mut characters = inner.chars().peekable();
    loop {
        while characters.peek().is_some_and(|c| c.is_whitespace()) {
            characters.next();
        }
        let mut value = String::new();
        let mut quoted = false;
        if characters.peek() == Some(&'"') {
            quoted = true;
            characters.next();
            loop {
                match characters.next()? {
                    '\\' => value.push(characters.next()?),
                    '"' => break,
                    character => value.push(character),
                }
            }
        }
        while let Some(&character) = characters.peek() {
            if character == ',' {
                break;
            }
            if character == '{' || character == '}' || (quoted && !character.is_whitespace()) {
                return None;
            }
            characters.next();
            if character == '\\' {
                value.push(characters.next()?);
            } else {
                value.push(character);
            }
        }
        let value = if quoted {
            value
        } else {
            value.trim().to_string()
        };
        values.push(if !quoted && value.eq_ignore_ascii_case("null") {
            None
        } else {
            Some(value)
        });
        match characters.next() {
            Some(',') => continue,
            None => return Some(values),
            Some(_) => return None,
        }
    }
}

/// An element of an array literal of any number of dimensions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Element {
    /// A value (`None` for an unquoted NULL).
    Value(Option<String>),
    /// A sub-array.
    Array(Vec<Element>),
}

/// The elements of a PostgreSQL array literal of any number of dimensions (`{{1,2},{3,4}}`); `None`
/// when `text` is not one.
pub(crate) fn parse_nested_array(text: &str) -> Option<Vec<Element>> {
    let characters: Vec<char> = text.trim().chars().collect();
    let mut position = 0;
    let elements = nested_items(&characters, &mut position)?;
    (position == characters.len()).then_some(elements)
}

/// The items of the braces starting at `position`, which it moves past the closing brace.
fn nested_items(characters: &[char], position: &mut usize) -> Option<Vec<Element>> {
    let skip_spaces = |position: &mut usize| {
        while characters.get(*position).is_some_and(|c| c.is_whitespace()) {
            *position += 1;
        }
    };
    if characters.get(*position) != Some(&'{') {
        return None;
    }
    *position += 1;
    let mut items = Vec::new();
    skip_spaces(position);
    if characters.get(*position) == Some(&'}') {
        *position += 1;
        return Some(items);
    }
    loop {
        skip_spaces(position);
        match characters.get(*position)? {
            '{' => items.push(Element::Array(nested_items(characters, position)?)),
            '"' => {
                *position += 1;
                let mut value = String::new();
                loop {
                    match characters.get(*position)? {
                        '\\' => {
                            *position += 1;
                            value.push(*characters.get(*position)?);
                        }
                        '"' => break,
                        other => value.push(*other),
                    }
                    *position += 1;
                }
                *position += 1;
                items.push(Element::Value(Some(value)));
            }
            _ => {
                let mut value = String::new();
                while let Some(&character) = characters.get(*position) {
                    if matches!(character, ',' | '}' | '{' | '"') {
                        break;
                    }
                    if character == '\\' {
                        *position += 1;
                        value.push(*characters.get(*position)?);
                    } else {
                        value.push(character);
                    }
                    *position += 1;
                }
                let value = value.trim().to_string();
                if value.is_empty() {
                    return None;
                }
                items.push(Element::Value(
                    (!value.eq_ignore_ascii_case("null")).then_some(value),
                ));
            }
        }
        skip_spaces(position);
        match characters.get(*position)? {
            ',' => *position += 1,
            '}' => {
                *position += 1;
                return Some(items);
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Element, parse_array, parse_nested_array, shape_of};

    #[test]
    fn multidimensional_literals_must_be_rectangular() {
        let shape = |text: &str| shape_of(&parse_nested_array(text).expect("an array literal"));
        assert_eq!(shape("{{1,2,3},{4,5,6}}"), Some(vec![2, 3]));
        assert_eq!(shape("{{{1}},{{2}}}"), Some(vec![2, 1, 1]));
        assert_eq!(shape("{{1},{2,3}}"), None);
        assert_eq!(shape("{{1},2}"), None);
        assert_eq!(shape("{{}}"), None);
    }

    #[test]
    fn nested_array_literals_keep_their_dimensions() {
        let value = |text: &str| Element::Value(Some(text.to_string()));
        assert_eq!(
            parse_nested_array(r#"{{1,"a b"},{NULL, 4}}"#),
            Some(vec![
                Element::Array(vec![value("1"), value("a b")]),
                Element::Array(vec![Element::Value(None), value("4")]),
            ])
        );
        assert_eq!(parse_nested_array("{}"), Some(vec![]));
        assert_eq!(
            parse_nested_array("{1,2}"),
            Some(vec![value("1"), value("2")])
        );
        assert_eq!(parse_nested_array("{{1},2"), None);
        assert_eq!(parse_nested_array("{1,,2}"), None);
        assert_eq!(parse_nested_array("{1} x"), None);
    }

    #[test]
    fn array_literals_split_as_postgresql_reads_them() {
        assert_eq!(
            parse_array("{1, 2,NULL}"),
            Some(vec![Some("1".into()), Some("2".into()), None])
        );
        assert_eq!(
            parse_array(r#"{"a,b","say \"hi\"",null,"NULL"}"#),
            Some(vec![
                Some("a,b".into()),
                Some("say \"hi\"".into()),
                None,
                Some("NULL".into())
            ])
        );
        assert_eq!(parse_array("{}"), Some(vec![]));
        assert_eq!(parse_array("{{1},{2}}"), None);
        assert_eq!(parse_array("1,2"), None);
    }
}
