//! The text-preserving `json` type: values kept as the text they were written in (whitespace, key
//! order, duplicate keys, number spelling), and the reading of members out of that text.
//!
//! PostgreSQL's `json` stores its input verbatim and its processing functions work on the text: `->`
//! returns the member's text exactly as it appears inside the document (`'{"a": [1, 2]}'::json -> 'a'`
//! is `[1, 2]`), and of equal keys the last is the one found. [`JsonText`] is one value's span inside
//! such a text; its accessors skip over the text without building a tree, so a lookup costs one pass
//! over the bytes before the member. The text is checked once, where it enters a `json` value
//! ([`crate::jsonb::validate_text`], with PostgreSQL's error messages); the scanner here trusts it and,
//! given text that is not JSON, answers wrongly but never panics.

use std::borrow::Cow;

use crate::jsonb::{self, Json, JsonError, JsonResult, Kind};

/// One JSON value's text (without surrounding whitespace) inside a valid JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonText<'a> {
    text: &'a str,
}

/// True for the bytes JSON counts as whitespace.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() && is_space(bytes[at]) {
        at += 1;
    }
    at
}

/// The end of the string starting at `at` (which holds its opening quote).
fn string_end(bytes: &[u8], mut at: usize) -> usize {
    at += 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    bytes.len()
}

/// The end of the value starting at `at`.
fn value_end(bytes: &[u8], at: usize) -> usize {
    match bytes.get(at) {
        None => at,
        Some(b'"') => string_end(bytes, at),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut position = at;
            while position < bytes.len() {
                match bytes[position] {
                    b'"' => {
                        position = string_end(bytes, position);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return position + 1;
                        }
                    }
                    _ => {}
                }
                position += 1;
            }
            bytes.len()
        }
        Some(_) => {
            let mut position = at;
            while position < bytes.len()
                && !is_space(bytes[position])
                && !matches!(bytes[position], b',' | b']' | b'}' | b':')
            {
                position += 1;
            }
            position
        }
    }
}

impl<'a> JsonText<'a> {
    /// The value of a whole JSON text (surrounding whitespace dropped).
    pub fn new(text: &'a str) -> JsonText<'a> {
        JsonText {
            text: text
                .trim_matches(|character: char| character.is_ascii() && is_space(character as u8)),
        }
    }

    /// The value's own text.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    pub fn kind(&self) -> Kind {
        match self.text.as_bytes().first() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') | None => Kind::Null,
            Some(_) => Kind::Number,
        }
    }

    /// A member's text at `start..end` of this value's text.
    fn slice(&self, start: usize, end: usize) -> JsonText<'a> {
        JsonText {
            text: self.text.get(start..end).unwrap_or_default(),
        }
    }

    /// The elements of an array, in order (none for anything else).
    pub fn elements(&self) -> impl Iterator<Item = JsonText<'a>> + 'a {
        let this = *self;
        let bytes = self.text.as_bytes();
        let mut at = if this.kind() == Kind::Array {
            1
        } else {
            bytes.len()
        };
        std::iter::from_fn(move || {
            at = skip_space(bytes, at);
            if at >= bytes.len() || bytes[at] == b']' {
                at = bytes.len();
                return None;
            }
            let end = value_end(bytes, at);
            if end == at {
                // Not JSON (`[}`): stop rather than loop.
                at = bytes.len();
                return None;
            }
            let element = this.slice(at, end);
            at = skip_space(bytes, end);
            if bytes.get(at) == Some(&b',') {
                at += 1;
            }
            Some(element)
        })
    }

    /// The members of an object, in the order written, duplicates included: each key's text (with
    /// its quotes and escapes, see [`decode_string`]) and value.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, JsonText<'a>)> + 'a {
        let this = *self;
        let bytes = self.text.as_bytes();
        let mut at = if this.kind() == Kind::Object {
            1
        } else {
            bytes.len()
        };
        std::iter::from_fn(move || {
            at = skip_space(bytes, at);
            if at >= bytes.len() || bytes[at] != b'"' {
                at = bytes.len();
                return None;
            }
            let key_end = string_end(bytes, at);
            let key = this.text.get(at..key_end).unwrap_or_default();
            at = skip_space(bytes, key_end);
            if bytes.get(at) == Some(&b':') {
                at += 1;
            }
            at = skip_space(bytes, at);
            let end = value_end(bytes, at);
            let value = this.slice(at, end);
            at = skip_space(bytes, end);
            if bytes.get(at) == Some(&b',') {
                at += 1;
            }
            Some((key, value))
        })
    }

    /// The value of `key` in an object (the last of equal keys, as PostgreSQL's json functions read
    /// them); `None` when absent or not an object.
    pub fn get(&self, key: &str) -> Option<JsonText<'a>> {
        self.entries()
            .filter(|(quoted, _)| key_equals(quoted, key))
            .last()
            .map(|(_, value)| value)
    }

    /// The element at `index` of an array, negative indexes counting from the end.
    pub fn element_signed(&self, index: i64) -> Option<JsonText<'a>> {
        if self.kind() != Kind::Array {
            return None;
        }
        if index >= 0 {
            return self.elements().nth(usize::try_from(index).ok()?);
        }
        let count = self.elements().count();
        let from_end = usize::try_from(index.unsigned_abs()).ok()?;
        self.elements().nth(count.checked_sub(from_end)?)
    }

    /// The value at a path of keys and array indexes (`#>`); the value itself for an empty path.
    pub fn at_path<S: AsRef<str>>(&self, path: &[S]) -> Option<JsonText<'a>> {
        let mut current = *self;
        for step in path {
            let step = step.as_ref();
            current = match current.kind() {
                Kind::Object => current.get(step)?,
                Kind::Array => current.element_signed(step.trim().parse().ok()?)?,
                _ => return None,
            };
        }
        Some(current)
    }

    /// The value as `->>` gives it: a string unescaped, `null` as `None`, anything else its text.
    pub fn to_unquoted(&self) -> JsonResult<Option<Cow<'a, str>>> {
        match self.kind() {
            Kind::Null => Ok(None),
            Kind::String => decode_string(self.text).map(Some),
            _ => Ok(Some(Cow::Borrowed(self.text))),
        }
    }

    /// `json_strip_nulls`: the value with every object member whose value is null removed, written
    /// without whitespace (as PostgreSQL re-emits the tokens).
    pub fn strip_nulls(&self) -> JsonResult<String> {
        let mut out = String::with_capacity(self.text.len());
        self.write_stripped(&mut out)?;
        Ok(out)
    }

    fn write_stripped(&self, out: &mut String) -> JsonResult<()> {
        match self.kind() {
            Kind::Object => {
                out.push('{');
                let mut first = true;
                for (key, value) in self.entries() {
                    if value.kind() == Kind::Null {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    jsonb::escape_string(&decode_string(key)?, out);
                    out.push(':');
                    value.write_stripped(out)?;
                }
                out.push('}');
            }
            Kind::Array => {
                out.push('[');
                for (index, element) in self.elements().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    element.write_stripped(out)?;
                }
                out.push(']');
            }
            Kind::String => jsonb::escape_string(&decode_string(self.text)?, out),
            _ => out.push_str(self.text),
        }
        Ok(())
    }
}

/// True when the quoted key text `quoted` names `key`.
fn key_equals(quoted: &str, key: &str) -> bool {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(quoted);
    if !inner.contains('\\') {
        return inner == key;
    }
    decode_string(quoted).is_ok_and(|decoded| decoded == key)
}

/// The text of a JSON string literal (with its quotes), escapes resolved; PostgreSQL's error for
/// `\u0000`, which text cannot hold.
pub fn decode_string(quoted: &str) -> JsonResult<Cow<'_, str>> {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(quoted);
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    match jsonb::parse(quoted)? {
        Json::String(text) => Ok(Cow::Owned(text)),
        _ => Err(JsonError::new("XX000", "json string expected")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str =
        r#" {"a": [1, 2 ,{"b":null}], "c" : "x\"y", "a":{"d" :1.50}, "e": "\u00e9"} "#;

    #[test]
    fn members_are_read_as_written() {
        let value = JsonText::new(DOCUMENT);
        assert_eq!(value.kind(), Kind::Object);
        let keys: Vec<&str> = value.entries().map(|(key, _)| key).collect();
        assert_eq!(keys, [r#""a""#, r#""c""#, r#""a""#, r#""e""#]);
        // The last of equal keys is found, with its own spacing.
        assert_eq!(value.get("a").map(|v| v.as_str()), Some(r#"{"d" :1.50}"#));
        assert_eq!(value.at_path(&["a", "d"]).map(|v| v.as_str()), Some("1.50"));
        assert_eq!(value.get("zz"), None);
        let first = value.entries().next().map(|(_, value)| value);
        let array = first.expect("a first member");
        assert_eq!(array.as_str(), r#"[1, 2 ,{"b":null}]"#);
        let elements: Vec<&str> = array.elements().map(|v| v.as_str()).collect();
        assert_eq!(elements, ["1", "2", r#"{"b":null}"#]);
        assert_eq!(
            array.element_signed(-1).map(|v| v.as_str()),
            Some(r#"{"b":null}"#)
        );
        assert_eq!(array.element_signed(-4), None);
        assert_eq!(array.element_signed(3), None);
        assert_eq!(array.get("a"), None);
        assert_eq!(JsonText::new("[]").elements().count(), 0);
        assert_eq!(JsonText::new("{ }").entries().count(), 0);
    }

    #[test]
    fn strings_are_unescaped_and_nulls_stripped() {
        let value = JsonText::new(DOCUMENT);
        let text = |key: &str| {
            value
                .get(key)
                .expect("member")
                .to_unquoted()
                .expect("valid")
        };
        assert_eq!(text("c").as_deref(), Some("x\"y"));
        assert_eq!(text("e").as_deref(), Some("é"));
        assert_eq!(text("a").as_deref(), Some(r#"{"d" :1.50}"#));
        assert_eq!(JsonText::new("null").to_unquoted().expect("valid"), None);
        assert_eq!(
            JsonText::new(r#"{"a": null, "b": [null, {"c": null, "d": "\u0041"}]}"#)
                .strip_nulls()
                .expect("valid"),
            r#"{"b":[null,{"d":"A"}]}"#
        );
        assert!(JsonText::new(r#""\u0000""#).to_unquoted().is_err());
    }

    #[test]
    fn text_that_is_not_json_does_not_panic() {
        for text in [
            "{", "[}", "[1,", "[1:2]", r#"{"a"#, r#"{"a":"#, "\"", "[{]", "}", "",
        ] {
            let value = JsonText::new(text);
            let _ = value.entries().count();
            let _ = value.elements().count();
            let _ = value.get("a");
            let _ = value.at_path(&["a", "0"]);
            let _ = value.strip_nulls();
        }
    }
}
