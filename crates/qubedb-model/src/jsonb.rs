//! JSON documents: the text parser (PostgreSQL's JSON grammar and error messages), the binary `jsonb`
//! form QubeDB stores and computes with, and the operations PostgreSQL's jsonb operators are made of.
//!
//! Why a binary form: a query that reads `doc->'user'->>'city'` from every row should not parse every
//! document. A stored jsonb value is laid out so that a field is found by binary search over the
//! object's keys and an array element by index, both without touching the rest of the document; the
//! SQL operators work on these bytes directly ([`Jsonb`] is a borrowed view of them).
//!
//! Why not a crate: PostgreSQL's jsonb is specific in ways users see. Numbers are `numeric` (exact, any
//! size, printed with the scale they were written with: `1.50` stays `1.50`, `1e2` prints `100`); object
//! keys are unique (the last wins) and ordered shorter-first then bytewise; text output puts a space
//! after `:` and `,`; invalid input is reported with PostgreSQL's detail messages and context line.
//! Databend's `jsonb` crate (named in DESIGN.md) stores numbers as int/float/decimal64-256, orders keys
//! bytewise and has its own error texts, so every output and error would need re-translation; the
//! format here is small (one module) and is exactly PostgreSQL's semantics.
//!
//! The binary layout (all integers little-endian `u32`); a value is a tag byte and a body whose length
//! is known from its container (the top-level value is the whole buffer):
//!
//! ```text
//! 0 null | 1 false | 2 true               no body
//! 3 number                                the canonical numeric text (ASCII, `-12.50`)
//! 4 string                                UTF-8 bytes
//! 5 array   count, end[count], elements   end[i]: end of element i, from the start of the elements
//! 6 object  count, key_end[count], value_end[count], keys, values   keys in jsonb order
//! ```
//!
//! Tags are below 9, so no binary value begins like JSON text (whitespace, `{`, `[`, `"`, a digit,
//! `-`, `t`, `f`, `n`): a reader can tell the two apart ([`Jsonb::from_stored`]).

use std::cmp::Ordering;
use std::fmt::Write as _;

const TAG_NULL: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_NUMBER: u8 = 3;
const TAG_STRING: u8 = 4;
const TAG_ARRAY: u8 = 5;
const TAG_OBJECT: u8 = 6;

/// Deepest nesting of arrays and objects accepted (PostgreSQL stops at its stack depth limit). Parsing,
/// printing and comparing recurse once per level, each marked `#[recursive::recursive]` so that the
/// stack grows on demand: a deep document cannot overflow a small thread stack (a test parses, prints
/// and compares one in a 1 MiB thread).
pub const JSON_DEPTH_MAX: usize = 1000;
/// Largest exponent accepted in a number (PostgreSQL's `numeric` has the same bound on its weight).
const EXPONENT_MAX: i64 = 131_072;

/// A JSON error with PostgreSQL's SQLSTATE, message, detail and context line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub context: Option<String>,
}

impl JsonError {
    /// An error with SQLSTATE `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> JsonError {
        JsonError {
            code,
            message: message.into(),
            detail: None,
            hint: None,
            context: None,
        }
    }

    /// Sets the hint line.
    pub fn with_hint(mut self, hint: &str) -> JsonError {
        self.hint = Some(hint.to_string());
        self
    }

    /// Sets the detail line.
    pub fn with_detail(mut self, detail: &str) -> JsonError {
        self.detail = Some(detail.to_string());
        self
    }
}

/// Most elements an array may be padded to by a subscript assignment past its end (`doc[1000000] =
/// ...`): the nulls are built in memory (PostgreSQL's limit, 268,435,455, is about the encoded size).
pub const ASSIGN_ARRAY_ELEMENTS_MAX: usize = 1 << 24;

fn too_many_elements() -> JsonError {
    JsonError::new(
        "54000",
        format!(
            "number of jsonb array elements exceeds the maximum allowed ({ASSIGN_ARRAY_ELEMENTS_MAX})"
        ),
    )
}

/// The result of a JSON operation.
pub type JsonResult<T> = std::result::Result<T, JsonError>;

/// A JSON value as a tree: what the parser builds and the operations that rebuild a document produce.
/// Objects are kept normalized (keys unique and in jsonb order) by [`Json::object`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The canonical text of the number (see [`canonical_number`]).
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// jsonb's key order: shorter keys first, then bytewise.
pub fn key_order(left: &str, right: &str) -> Ordering {
    left.len()
        .cmp(&right.len())
        .then_with(|| left.as_bytes().cmp(right.as_bytes()))
}

impl Json {
    /// An object from pairs in any order: keys sorted in jsonb order, the last of equal keys kept.
    pub fn object(mut pairs: Vec<(String, Json)>) -> Json {
        // A stable sort keeps equal keys in input order, so the last of each run is the one to keep.
        pairs.sort_by(|left, right| key_order(&left.0, &right.0));
        let mut unique: Vec<(String, Json)> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match unique.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => unique.push(pair),
            }
        }
        Json::Object(unique)
    }

    /// A number from an integer.
    pub fn integer(value: i64) -> Json {
        Json::Number(value.to_string())
    }

    /// The binary form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the binary form to `out`.
    #[recursive::recursive]
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.push(TAG_NULL),
            Json::Bool(false) => out.push(TAG_FALSE),
            Json::Bool(true) => out.push(TAG_TRUE),
            Json::Number(text) => {
                out.push(TAG_NUMBER);
                out.extend_from_slice(text.as_bytes());
            }
            Json::String(text) => {
                out.push(TAG_STRING);
                out.extend_from_slice(text.as_bytes());
            }
            Json::Array(items) => {
                out.push(TAG_ARRAY);
                put_u32(out, items.len());
                let table = out.len();
                out.resize(table + 4 * items.len(), 0);
                let start = out.len();
                for (index, item) in items.iter().enumerate() {
                    item.encode_into(out);
                    let end = out.len() - start;
                    set_u32(out, table + 4 * index, end);
                }
            }
            Json::Object(pairs) => {
                out.push(TAG_OBJECT);
                put_u32(out, pairs.len());
                let table = out.len();
                out.resize(table + 8 * pairs.len(), 0);
                let start = out.len();
                for (index, (key, _)) in pairs.iter().enumerate() {
                    out.extend_from_slice(key.as_bytes());
                    let end = out.len() - start;
                    set_u32(out, table + 4 * index, end);
                }
                let values_table = table + 4 * pairs.len();
                for (index, (_, value)) in pairs.iter().enumerate() {
                    value.encode_into(out);
                    let end = out.len() - start;
                    set_u32(out, values_table + 4 * index, end);
                }
            }
        }
    }

    /// The value as PostgreSQL prints `jsonb`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        Jsonb::new(&self.encode()).write_text(&mut out);
        out
    }
}

fn put_u32(out: &mut Vec<u8>, value: usize) {
    out.extend_from_slice(&(value as u32).to_le_bytes());
}

fn set_u32(out: &mut [u8], at: usize, value: usize) {
    out[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes());
}

/// What kind of JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Null,
    String,
    Number,
    Bool,
    Array,
    Object,
}

impl Kind {
    /// `jsonb_typeof`'s name for the kind.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Bool => "boolean",
            Kind::Array => "array",
            Kind::Object => "object",
        }
    }
}

/// A borrowed binary jsonb value (see the module docs for the layout). Every accessor trusts the bytes
/// to be well formed; [`Jsonb::validate`] checks bytes read from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jsonb<'a> {
    bytes: &'a [u8],
}

impl<'a> Jsonb<'a> {
    /// A view of well-formed binary jsonb bytes.
    pub fn new(bytes: &'a [u8]) -> Jsonb<'a> {
        Jsonb { bytes }
    }

    /// The bytes of the value.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// True when stored bytes are the binary form (not JSON text written by an older version).
    pub fn is_binary(bytes: &[u8]) -> bool {
        bytes.first().is_some_and(|tag| *tag <= TAG_OBJECT)
    }

    /// The binary form of stored bytes: binary as is, JSON text (as versions before the binary form
    /// stored) parsed.
    pub fn from_stored(bytes: &[u8]) -> JsonResult<std::borrow::Cow<'_, [u8]>> {
        if Jsonb::is_binary(bytes) {
            return Ok(std::borrow::Cow::Borrowed(bytes));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| JsonError::new("XX001", "stored jsonb value is not UTF-8"))?;
        Ok(std::borrow::Cow::Owned(parse(text)?.encode()))
    }

    /// Checks that `bytes` are well-formed binary jsonb (for bytes from a client or a file).
    pub fn validate(bytes: &[u8]) -> bool {
        #[recursive::recursive]
        fn valid(bytes: &[u8], depth: usize) -> bool {
            let Some((&tag, body)) = bytes.split_first() else {
                return false;
            };
            match tag {
                TAG_NULL | TAG_FALSE | TAG_TRUE => body.is_empty(),
                TAG_NUMBER => std::str::from_utf8(body).is_ok_and(|text| {
                    let mut lexer = Lexer::new(text);
                    lexer.next(false).is_ok()
                        && lexer.token == Token::Number
                        && lexer.token_end == text.len()
                        && canonical_number(text).is_ok_and(|canonical| canonical == text)
                }),
                TAG_STRING => std::str::from_utf8(body).is_ok(),
                TAG_ARRAY | TAG_OBJECT if depth < JSON_DEPTH_MAX => {
                    let Some(count) = body.get(..4).map(read_u32) else {
                        return false;
                    };
                    let slots = if tag == TAG_ARRAY { count } else { 2 * count };
                    let Some(table_len) = slots.checked_mul(4) else {
                        return false;
                    };
                    let Some(data) = body.get(4 + table_len..) else {
                        return false;
                    };
                    let table = &body[4..4 + table_len];
                    let mut previous = 0;
                    let mut keys: Vec<&[u8]> = Vec::new();
                    for slot in 0..slots {
                        let end = read_u32(&table[4 * slot..]);
                        if end < previous || end > data.len() {
                            return false;
                        }
                        let piece = &data[previous..end];
                        let is_key = tag == TAG_OBJECT && slot < count;
                        if is_key {
                            if std::str::from_utf8(piece).is_err() {
                                return false;
                            }
                            keys.push(piece);
                        } else if !valid(piece, depth + 1) {
                            return false;
                        }
                        previous = end;
                    }
                    let ordered = keys
                        .windows(2)
                        .all(|pair| (pair[0].len(), pair[0]) < (pair[1].len(), pair[1]));
                    previous == data.len() && ordered
                }
                _ => false,
            }
        }
        valid(bytes, 0)
    }

    /// The kind of value.
    pub fn kind(&self) -> Kind {
        match self.bytes.first().copied() {
            Some(TAG_FALSE | TAG_TRUE) => Kind::Bool,
            Some(TAG_NUMBER) => Kind::Number,
            Some(TAG_STRING) => Kind::String,
            Some(TAG_ARRAY) => Kind::Array,
            Some(TAG_OBJECT) => Kind::Object,
            _ => Kind::Null,
        }
    }

    /// True for a string, number, boolean or null.
    pub fn is_scalar(&self) -> bool {
        !matches!(self.kind(), Kind::Array | Kind::Object)
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&'a str> {
        match self.bytes.split_first() {
            Some((&TAG_STRING, body)) => Some(text_of(body)),
            _ => None,
        }
    }

    /// The canonical text of a number value.
    pub fn as_number(&self) -> Option<&'a str> {
        match self.bytes.split_first() {
            Some((&TAG_NUMBER, body)) => Some(text_of(body)),
            _ => None,
        }
    }

    /// The value of a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self.bytes.first() {
            Some(&TAG_TRUE) => Some(true),
            Some(&TAG_FALSE) => Some(false),
            _ => None,
        }
    }

    /// Elements of an array or pairs of an object; 0 for a scalar.
    pub fn len(&self) -> usize {
        match self.kind() {
            Kind::Array | Kind::Object => read_u32(&self.bytes[1..]),
            _ => 0,
        }
    }

    /// True for an empty array or object, and for scalars.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The start of the element data and the offsets table of a container.
    fn layout(&self) -> (usize, &'a [u8]) {
        let count = self.len();
        let slots = if self.kind() == Kind::Object {
            2 * count
        } else {
            count
        };
        let table = &self.bytes[5..5 + 4 * slots];
        (5 + 4 * slots, table)
    }

    /// Slot `slot` of a container's element data.
    fn slot(&self, slot: usize) -> &'a [u8] {
        let (data, table) = self.layout();
        let start = if slot == 0 {
            0
        } else {
            read_u32(&table[4 * (slot - 1)..])
        };
        let end = read_u32(&table[4 * slot..]);
        &self.bytes[data + start..data + end]
    }

    /// Element `index` of an array.
    pub fn element(&self, index: usize) -> Option<Jsonb<'a>> {
        (self.kind() == Kind::Array && index < self.len()).then(|| Jsonb::new(self.slot(index)))
    }

    /// Element `index` of an array, counting from the end when negative (as `->` does).
    pub fn element_signed(&self, index: i64) -> Option<Jsonb<'a>> {
        let length = self.len() as i64;
        let index = if index < 0 { length + index } else { index };
        if index < 0 {
            return None;
        }
        self.element(index as usize)
    }

    /// Pair `index` of an object, in key order.
    pub fn entry(&self, index: usize) -> Option<(&'a str, Jsonb<'a>)> {
        if self.kind() != Kind::Object || index >= self.len() {
            return None;
        }
        let count = self.len();
        Some((
            text_of(self.slot(index)),
            Jsonb::new(self.slot(count + index)),
        ))
    }

    /// The value of key `key` of an object (binary search over the keys).
    pub fn get(&self, key: &str) -> Option<Jsonb<'a>> {
        if self.kind() != Kind::Object {
            return None;
        }
        let count = self.len();
        let (mut low, mut high) = (0, count);
        while low < high {
            let middle = (low + high) / 2;
            match key_order(text_of(self.slot(middle)), key) {
                Ordering::Less => low = middle + 1,
                Ordering::Greater => high = middle,
                Ordering::Equal => return Some(Jsonb::new(self.slot(count + middle))),
            }
        }
        None
    }

    /// The elements of an array (nothing for other kinds).
    pub fn elements(&self) -> impl Iterator<Item = Jsonb<'a>> + '_ {
        let count = if self.kind() == Kind::Array {
            self.len()
        } else {
            0
        };
        (0..count).map(|index| Jsonb::new(self.slot(index)))
    }

    /// The pairs of an object in key order (nothing for other kinds).
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, Jsonb<'a>)> + '_ {
        let count = if self.kind() == Kind::Object {
            self.len()
        } else {
            0
        };
        (0..count).filter_map(|index| self.entry(index))
    }

    /// The value at `path`: keys into objects, indexes (negative from the end) into arrays; `None`
    /// where a step does not exist (as `#>` does).
    pub fn at_path<S: AsRef<str>>(&self, path: &[S]) -> Option<Jsonb<'a>> {
        let mut current = *self;
        for step in path {
            let step = step.as_ref();
            current = match current.kind() {
                Kind::Object => current.get(step)?,
                Kind::Array => current.element_signed(step.trim().parse::<i64>().ok()?)?,
                _ => return None,
            };
        }
        Some(current)
    }

    /// The value as a tree.
    #[recursive::recursive]
    pub fn to_json(&self) -> Json {
        match self.kind() {
            Kind::Null => Json::Null,
            Kind::Bool => Json::Bool(self.as_bool().unwrap_or_default()),
            Kind::Number => Json::Number(self.as_number().unwrap_or("0").to_string()),
            Kind::String => Json::String(self.as_str().unwrap_or_default().to_string()),
            Kind::Array => Json::Array(self.elements().map(|item| item.to_json()).collect()),
            Kind::Object => Json::Object(
                self.entries()
                    .map(|(key, value)| (key.to_string(), value.to_json()))
                    .collect(),
            ),
        }
    }

    /// The value as PostgreSQL prints `jsonb`.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.bytes.len() + 8);
        self.write_text(&mut out);
        out
    }

    /// Appends the text form to `out`.
    #[recursive::recursive]
    pub fn write_text(&self, out: &mut String) {
        match self.kind() {
            Kind::Null => out.push_str("null"),
            Kind::Bool => out.push_str(if self.as_bool() == Some(true) {
                "true"
            } else {
                "false"
            }),
            Kind::Number => out.push_str(self.as_number().unwrap_or("0")),
            Kind::String => escape_string(self.as_str().unwrap_or_default(), out),
            Kind::Array => {
                out.push('[');
                for (index, item) in self.elements().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    item.write_text(out);
                }
                out.push(']');
            }
            Kind::Object => {
                out.push('{');
                for (index, (key, value)) in self.entries().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    escape_string(key, out);
                    out.push_str(": ");
                    value.write_text(out);
                }
                out.push('}');
            }
        }
    }

    /// `->>`'s text: a string unquoted, JSON null as SQL NULL, anything else as its jsonb text.
    pub fn to_unquoted_text(&self) -> Option<String> {
        match self.kind() {
            Kind::Null => None,
            Kind::String => Some(self.as_str().unwrap_or_default().to_string()),
            _ => Some(self.to_text()),
        }
    }

    /// `jsonb_pretty`: four spaces of indentation per level, one element per line.
    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.write_pretty(&mut out, 0);
        out
    }

    #[recursive::recursive]
    fn write_pretty(&self, out: &mut String, depth: usize) {
        let indent = |out: &mut String, depth: usize| {
            out.push('\n');
            for _ in 0..depth {
                out.push_str("    ");
            }
        };
        match self.kind() {
            Kind::Array if !self.is_empty() => {
                out.push('[');
                for (index, item) in self.elements().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    indent(out, depth + 1);
                    item.write_pretty(out, depth + 1);
                }
                indent(out, depth);
                out.push(']');
            }
            Kind::Object if !self.is_empty() => {
                out.push('{');
                for (index, (key, value)) in self.entries().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    indent(out, depth + 1);
                    escape_string(key, out);
                    out.push_str(": ");
                    value.write_pretty(out, depth + 1);
                }
                indent(out, depth);
                out.push('}');
            }
            _ => self.write_text(out),
        }
    }

    /// jsonb's total order (PostgreSQL's `jsonb_cmp`): objects > arrays > booleans > numbers > strings >
    /// null; arrays by length then elements, objects by pair count then keys then values; a top-level
    /// scalar sorts below every array (PostgreSQL's "raw scalar" arrays).
    #[recursive::recursive]
    pub fn compare(&self, other: &Jsonb<'_>) -> Ordering {
        fn rank(kind: Kind) -> u8 {
            match kind {
                Kind::Null => 0,
                Kind::String => 1,
                Kind::Number => 2,
                Kind::Bool => 3,
                Kind::Array => 4,
                Kind::Object => 5,
            }
        }
        let (left, right) = (self.kind(), other.kind());
        if left != right {
            return rank(left).cmp(&rank(right));
        }
        match left {
            Kind::Null => Ordering::Equal,
            Kind::String => {
                let (a, b) = (self.as_str().unwrap_or(""), other.as_str().unwrap_or(""));
                a.as_bytes().cmp(b.as_bytes())
            }
            Kind::Number => compare_numbers(
                self.as_number().unwrap_or("0"),
                other.as_number().unwrap_or("0"),
            ),
            Kind::Bool => self.as_bool().cmp(&other.as_bool()),
            Kind::Array => self.len().cmp(&other.len()).then_with(|| {
                self.elements()
                    .zip(other.elements())
                    .map(|(a, b)| a.compare(&b))
                    .find(|order| order.is_ne())
                    .unwrap_or(Ordering::Equal)
            }),
            Kind::Object => self.len().cmp(&other.len()).then_with(|| {
                for ((left_key, left_value), (right_key, right_value)) in
                    self.entries().zip(other.entries())
                {
                    let order = key_order(left_key, right_key)
                        .then_with(|| left_value.compare(&right_value));
                    if order.is_ne() {
                        return order;
                    }
                }
                Ordering::Equal
            }),
        }
    }

    /// True when two values are equal as jsonb (numbers by value: `1.0` equals `1`).
    pub fn equals(&self, other: &Jsonb<'_>) -> bool {
        self.compare(other) == Ordering::Equal
    }

    /// `@>`: PostgreSQL's containment. An object contains an object whose every pair it has (nested
    /// containers contained recursively); an array contains an array whose every element matches one
    /// of its own (a scalar an equal scalar, a container a container it contains); a top-level array
    /// contains a scalar it has as an element; scalars contain equal scalars.
    #[recursive::recursive]
    pub fn contains(&self, other: &Jsonb<'_>) -> bool {
        match (self.kind(), other.kind()) {
            (Kind::Object, Kind::Object) => other.entries().all(|(key, wanted)| {
                self.get(key).is_some_and(|have| {
                    if wanted.is_scalar() {
                        have.is_scalar() && have.equals(&wanted)
                    } else {
                        have.kind() == wanted.kind() && have.contains(&wanted)
                    }
                })
            }),
            (Kind::Array, Kind::Array) => other.elements().all(|wanted| self.has_element(&wanted)),
            // An array contains a bare scalar (PostgreSQL's one exception to matching structure),
            // never a bare object.
            (Kind::Array, Kind::Object) => false,
            (Kind::Array, _) => self.has_element(other),
            (Kind::Object, _) | (_, Kind::Object) | (_, Kind::Array) => false,
            _ => self.equals(other),
        }
    }

    /// True when an element of this array matches `wanted` as containment asks.
    fn has_element(&self, wanted: &Jsonb<'_>) -> bool {
        if wanted.is_scalar() {
            self.elements()
                .any(|have| have.is_scalar() && have.equals(wanted))
        } else {
            self.elements()
                .any(|have| have.kind() == wanted.kind() && have.contains(wanted))
        }
    }

    /// `?`: the string is a key of this object, a string element of this array, or this string.
    pub fn exists(&self, key: &str) -> bool {
        match self.kind() {
            Kind::Object => self.get(key).is_some(),
            Kind::Array => self.elements().any(|item| item.as_str() == Some(key)),
            Kind::String => self.as_str() == Some(key),
            _ => false,
        }
    }
}

fn read_u32(bytes: &[u8]) -> usize {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word) as usize
}

fn text_of(bytes: &[u8]) -> &str {
    // The encoder writes only UTF-8 text; `validate` checks bytes from outside.
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// Appends `text` as a JSON string literal, escaped as PostgreSQL's `escape_json` does.
pub fn escape_string(text: &str, out: &mut String) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if (control as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", control as u32);
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

/// Compares two canonical numbers by value.
pub fn compare_numbers(left: &str, right: &str) -> Ordering {
    let (left_negative, left) = split_sign(left);
    let (right_negative, right) = split_sign(right);
    let left_zero = is_zero(left);
    let right_zero = is_zero(right);
    let left_sign = if left_zero {
        0
    } else if left_negative {
        -1
    } else {
        1
    };
    let right_sign = if right_zero {
        0
    } else if right_negative {
        -1
    } else {
        1
    };
    if left_sign != right_sign || left_sign == 0 {
        return left_sign.cmp(&right_sign);
    }
    let magnitude = compare_magnitudes(left, right);
    if left_negative {
        magnitude.reverse()
    } else {
        magnitude
    }
}

fn split_sign(text: &str) -> (bool, &str) {
    match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    }
}

fn is_zero(text: &str) -> bool {
    text.bytes().all(|byte| byte == b'0' || byte == b'.')
}

fn compare_magnitudes(left: &str, right: &str) -> Ordering {
    let split = |text: &str| -> (String, String) {
        let (integer, fraction) = text.split_once('.').unwrap_or((text, ""));
        let integer = integer.trim_start_matches('0').to_string();
        (integer, fraction.trim_end_matches('0').to_string())
    };
    let (left_integer, left_fraction) = split(left);
    let (right_integer, right_fraction) = split(right);
    left_integer
        .len()
        .cmp(&right_integer.len())
        .then_with(|| left_integer.cmp(&right_integer))
        .then_with(|| left_fraction.cmp(&right_fraction))
}

/// PostgreSQL's `numeric` text for a JSON number literal (already checked against the JSON grammar):
/// no exponent, no leading zeros, the scale the literal was written with (`1.50` → `1.50`, `1e2` →
/// `100`, `1.5e-3` → `0.0015`), no negative zero.
pub fn canonical_number(text: &str) -> JsonResult<String> {
    let overflow = || JsonError::new("22003", "value overflows numeric format");
    let (negative, rest) = split_sign(text);
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => {
            let exponent: i64 = rest[at + 1..]
                .trim_start_matches('+')
                .parse()
                .map_err(|_| overflow())?;
            (&rest[..at], exponent)
        }
        None => (rest, 0),
    };
    if exponent.abs() > EXPONENT_MAX {
        return Err(overflow());
    }
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{integer}{fraction}");
    // The decimal point sits after `point` digits of `digits`.
    let point = integer.len() as i64 + exponent;
    let scale = (fraction.len() as i64 - exponent).max(0) as usize;
    let mut integer_part = String::new();
    let mut fraction_part = String::new();
    if point <= 0 {
        fraction_part.extend(std::iter::repeat_n('0', (-point) as usize));
        fraction_part.push_str(&digits);
    } else if point as usize >= digits.len() {
        integer_part.push_str(&digits);
        integer_part.extend(std::iter::repeat_n('0', point as usize - digits.len()));
    } else {
        integer_part.push_str(&digits[..point as usize]);
        fraction_part.push_str(&digits[point as usize..]);
    }
    let integer_part = integer_part.trim_start_matches('0');
    let integer_part = if integer_part.is_empty() {
        "0"
    } else {
        integer_part
    };
    // Keep exactly `scale` fraction digits (dropped ones are zeros: the scale counts written digits).
    let mut fraction_part: String = fraction_part.chars().take(scale).collect();
    while fraction_part.len() < scale {
        fraction_part.push('0');
    }
    let zero = integer_part == "0" && fraction_part.bytes().all(|byte| byte == b'0');
    let mut out = String::with_capacity(integer_part.len() + fraction_part.len() + 2);
    if negative && !zero {
        out.push('-');
    }
    out.push_str(integer_part);
    if !fraction_part.is_empty() {
        out.push('.');
        out.push_str(&fraction_part);
    }
    Ok(out)
}

/// Parses JSON text as `jsonb` input does.
pub fn parse(text: &str) -> JsonResult<Json> {
    let mut parser = Parser {
        lexer: Lexer::new(text),
        keep_text: false,
    };
    parser.document()
}

/// Checks JSON text as `json` input does (the text itself is what `json` keeps). `\u0000` is allowed
/// in `json` text.
pub fn validate_text(text: &str) -> JsonResult<()> {
    let mut parser = Parser {
        lexer: Lexer::new(text),
        keep_text: true,
    };
    parser.document().map(|_| ())
}

/// The kinds of token of PostgreSQL's JSON lexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// No token read yet (PostgreSQL's `JSON_TOKEN_INVALID`).
    Invalid,
    ObjectStart,
    ObjectEnd,
    ArrayStart,
    ArrayEnd,
    Comma,
    Colon,
    String,
    Number,
    True,
    False,
    Null,
    End,
}

/// PostgreSQL's JSON lexer: tokens with their byte span, and the error texts of `json_errdetail`.
struct Lexer<'a> {
    input: &'a str,
    /// Start and end of the current token.
    token_start: usize,
    token_end: usize,
    token: Token,
    /// The decoded text of the last string token.
    string: String,
    line_number: usize,
    line_start: usize,
}

impl<'a> Lexer<'a> {
    fn new(input: &'a str) -> Lexer<'a> {
        Lexer {
            input,
            token_start: 0,
            token_end: 0,
            token: Token::Invalid,
            string: String::new(),
            line_number: 1,
            line_start: 0,
        }
    }

    /// The error for the current token, with PostgreSQL's context line.
    fn error(&self, detail: String) -> JsonError {
        self.error_with("22P02", "invalid input syntax for type json", detail)
    }

    fn error_with(&self, code: &'static str, message: &str, detail: String) -> JsonError {
        let bytes = self.input.as_bytes();
        let context_end = self.token_end.min(bytes.len());
        let mut context_start = self.line_start.min(context_end);
        // Show at most about 50 bytes before the end of the token, starting on a character boundary.
        while context_end - context_start >= 50 {
            context_start += 1;
            while !self.input.is_char_boundary(context_start) {
                context_start += 1;
            }
        }
        let prefix = if context_start > self.line_start {
            "..."
        } else {
            ""
        };
        let suffix = if self.token != Token::End
            && context_end < bytes.len()
            && bytes[context_end] != b'\n'
            && bytes[context_end] != b'\r'
        {
            "..."
        } else {
            ""
        };
        JsonError {
            code,
            message: message.to_string(),
            detail: Some(detail),
            hint: None,
            context: Some(format!(
                "JSON data, line {}: {prefix}{}{suffix}",
                self.line_number,
                &self.input[context_start..context_end]
            )),
        }
    }

    /// The text of the current token (for "but found" messages).
    fn token_text(&self) -> &str {
        &self.input[self.token_start..self.token_end.min(self.input.len())]
    }

    /// Reads the next token; `keep_text` allows `\u0000` (json input).
    fn next(&mut self, keep_text: bool) -> JsonResult<()> {
        let bytes = self.input.as_bytes();
        let mut at = self.token_end;
        while at < bytes.len() {
            match bytes[at] {
                b'\n' => {
                    at += 1;
                    self.line_number += 1;
                    self.line_start = at;
                }
                b' ' | b'\t' | b'\r' => at += 1,
                _ => break,
            }
        }
        self.token_start = at;
        if at >= bytes.len() {
            self.token = Token::End;
            self.token_end = at;
            return Ok(());
        }
        let single = |token| (token, at + 1);
        let (token, end) = match bytes[at] {
            b'{' => single(Token::ObjectStart),
            b'}' => single(Token::ObjectEnd),
            b'[' => single(Token::ArrayStart),
            b']' => single(Token::ArrayEnd),
            b',' => single(Token::Comma),
            b':' => single(Token::Colon),
            b'"' => return self.lex_string(at, keep_text),
            b'-' | b'0'..=b'9' => return self.lex_number(at),
            _ => {
                let end = alphanumeric_end(bytes, at);
                if end == at {
                    // One character, whole.
                    let width = self.input[at..].chars().next().map_or(1, char::len_utf8);
                    // The token type stays the previous token's, as in PostgreSQL's lexer
                    // (it decides whether the context line ends in "...").
                    self.token_end = at + width;
                    return Err(self.invalid_token());
                }
                let word = &self.input[at..end];
                match word {
                    "true" => (Token::True, end),
                    "false" => (Token::False, end),
                    "null" => (Token::Null, end),
                    _ => {
                        self.token_end = end;
                        self.token = Token::String;
                        return Err(self.invalid_token());
                    }
                }
            }
        };
        self.token = token;
        self.token_end = end;
        Ok(())
    }

    fn invalid_token(&self) -> JsonError {
        self.error(format!("Token \"{}\" is invalid.", self.token_text()))
    }

    fn lex_number(&mut self, start: usize) -> JsonResult<()> {
        let bytes = self.input.as_bytes();
        let mut at = start;
        let mut valid = true;
        if bytes[at] == b'-' {
            at += 1;
        }
        let digits = |at: &mut usize| {
            let from = *at;
            while *at < bytes.len() && bytes[*at].is_ascii_digit() {
                *at += 1;
            }
            *at > from
        };
        if at < bytes.len() && bytes[at] == b'0' {
            at += 1;
        } else if !digits(&mut at) {
            valid = false;
        }
        if valid && at < bytes.len() && bytes[at] == b'.' {
            at += 1;
            valid = digits(&mut at);
        }
        if valid && at < bytes.len() && (bytes[at] == b'e' || bytes[at] == b'E') {
            at += 1;
            if at < bytes.len() && (bytes[at] == b'+' || bytes[at] == b'-') {
                at += 1;
            }
            valid = digits(&mut at);
        }
        // Letters or digits glued to the number make the whole run one invalid token.
        let end = alphanumeric_end(bytes, at);
        self.token_end = end;
        if !valid || end != at {
            self.token = Token::Number;
            return Err(self.invalid_token());
        }
        if at == start + 1 && bytes[start] == b'-' {
            self.token = Token::Number;
            return Err(self.invalid_token());
        }
        self.token = Token::Number;
        Ok(())
    }

    fn lex_string(&mut self, start: usize, keep_text: bool) -> JsonResult<()> {
        let bytes = self.input.as_bytes();
        let mut at = start + 1;
        self.string.clear();
        let mut pending_high: Option<u32> = None;
        loop {
            if at >= bytes.len() {
                self.token_end = at;
                self.token = Token::String;
                return Err(self.invalid_token());
            }
            let byte = bytes[at];
            if byte == b'"' {
                break;
            }
            if byte < 0x20 {
                self.token_end = at + 1;
                self.token = Token::String;
                return Err(self.error(format!(
                    "Character with value 0x{byte:02x} must be escaped."
                )));
            }
            if byte == b'\\' {
                at += 1;
                if at >= bytes.len() {
                    self.token_end = at;
                    self.token = Token::String;
                    return Err(self.invalid_token());
                }
                let escape = bytes[at];
                if escape == b'u' {
                    let hex = self.input.get(at + 1..at + 5).filter(|hex| {
                        hex.len() == 4 && hex.bytes().all(|digit| digit.is_ascii_hexdigit())
                    });
                    let Some(hex) = hex else {
                        let end = (at + 1..=(at + 5).min(bytes.len()))
                            .take_while(|&end| end == at + 1 || bytes[end - 1].is_ascii_hexdigit())
                            .last()
                            .unwrap_or(at + 1);
                        self.token_end = end;
                        self.token = Token::String;
                        return Err(self
                            .error("\"\\u\" must be followed by four hexadecimal digits.".into()));
                    };
                    let code = u32::from_str_radix(hex, 16).unwrap_or_default();
                    at += 5;
                    self.token_end = at;
                    self.token = Token::String;
                    if (0xD800..0xDC00).contains(&code) {
                        if pending_high.is_some() {
                            return Err(self.unicode_error(
                                "Unicode high surrogate must not follow a high surrogate.",
                            ));
                        }
                        pending_high = Some(code);
                        continue;
                    }
                    if (0xDC00..0xE000).contains(&code) {
                        let Some(high) = pending_high.take() else {
                            return Err(self.unicode_error(
                                "Unicode low surrogate must follow a high surrogate.",
                            ));
                        };
                        let combined = 0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00);
                        self.string
                            .push(char::from_u32(combined).unwrap_or(char::REPLACEMENT_CHARACTER));
                        continue;
                    }
                    if pending_high.is_some() {
                        return Err(self
                            .unicode_error("Unicode low surrogate must follow a high surrogate."));
                    }
                    if code == 0 {
                        if keep_text {
                            self.string.push_str("\\u0000");
                            continue;
                        }
                        return Err(self.error_with(
                            "22P05",
                            "unsupported Unicode escape sequence",
                            "\\u0000 cannot be converted to text.".into(),
                        ));
                    }
                    self.string
                        .push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                    continue;
                }
                if pending_high.is_some() {
                    self.token_end = at + 1;
                    self.token = Token::String;
                    return Err(
                        self.unicode_error("Unicode low surrogate must follow a high surrogate.")
                    );
                }
                let decoded = match escape {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    _ => {
                        let width = self.input[at..].chars().next().map_or(1, char::len_utf8);
                        self.token_end = at + width;
                        self.token = Token::String;
                        return Err(self.error(format!(
                            "Escape sequence \"\\{}\" is invalid.",
                            &self.input[at..at + width]
                        )));
                    }
                };
                self.string.push(decoded);
                at += 1;
                continue;
            }
            if pending_high.is_some() {
                self.token_end = at;
                self.token = Token::String;
                return Err(
                    self.unicode_error("Unicode low surrogate must follow a high surrogate.")
                );
            }
            let width = self.input[at..].chars().next().map_or(1, char::len_utf8);
            self.string.push_str(&self.input[at..at + width]);
            at += width;
        }
        if pending_high.is_some() {
            self.token_end = at;
            self.token = Token::String;
            return Err(self.unicode_error("Unicode low surrogate must follow a high surrogate."));
        }
        self.token_end = at + 1;
        self.token = Token::String;
        Ok(())
    }

    fn unicode_error(&self, detail: &str) -> JsonError {
        self.error(detail.to_string())
    }
}

/// The end of a run of "alphanumeric" bytes as PostgreSQL's lexer counts them (letters, digits, `_`
/// and any byte of a multibyte character).
fn alphanumeric_end(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len()
        && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_' || bytes[at] >= 0x80)
    {
        at += 1;
    }
    at
}

/// Recursive descent over the lexer's tokens, PostgreSQL's grammar and messages.
struct Parser<'a> {
    lexer: Lexer<'a>,
    keep_text: bool,
}

impl Parser<'_> {
    fn document(&mut self) -> JsonResult<Json> {
        self.advance()?;
        let value = self.value(0)?;
        self.advance()?;
        if self.lexer.token != Token::End {
            return Err(self.expected("Expected end of input"));
        }
        Ok(value)
    }

    fn advance(&mut self) -> JsonResult<()> {
        self.lexer.next(self.keep_text)
    }

    /// "Expected ..., but found "<token>"." or, at the end of input, "The input string ended
    /// unexpectedly.".
    fn expected(&self, what: &str) -> JsonError {
        if self.lexer.token == Token::End {
            return self
                .lexer
                .error("The input string ended unexpectedly.".into());
        }
        self.lexer.error(format!(
            "{what}, but found \"{}\".",
            self.lexer.token_text()
        ))
    }

    /// The value starting at the current token (which is consumed up to its last token).
    #[recursive::recursive]
    fn value(&mut self, depth: usize) -> JsonResult<Json> {
        if depth > JSON_DEPTH_MAX {
            return Err(JsonError::new("54001", "stack depth limit exceeded").with_hint(
                "Increase the configuration parameter \"max_stack_depth\" (currently 100kB), after ensuring the platform's stack depth limit is adequate.",
            ));
        }
        Ok(match self.lexer.token {
            Token::String => Json::String(std::mem::take(&mut self.lexer.string)),
            Token::Number => {
                let text = self.lexer.token_text();
                Json::Number(if self.keep_text {
                    text.to_string()
                } else {
                    canonical_number(text)?
                })
            }
            Token::True => Json::Bool(true),
            Token::False => Json::Bool(false),
            Token::Null => Json::Null,
            Token::ArrayStart => {
                let mut items = Vec::new();
                self.advance()?;
                if self.lexer.token == Token::ArrayEnd {
                    return Ok(Json::Array(items));
                }
                loop {
                    if !starts_value(self.lexer.token) {
                        return Err(self.expected(if items.is_empty() {
                            "Expected array element or \"]\""
                        } else {
                            "Expected JSON value"
                        }));
                    }
                    items.push(self.value(depth + 1)?);
                    self.advance()?;
                    match self.lexer.token {
                        Token::Comma => self.advance()?,
                        Token::ArrayEnd => break,
                        _ => return Err(self.expected("Expected \",\" or \"]\"")),
                    }
                }
                Json::Array(items)
            }
            Token::ObjectStart => {
                let mut pairs = Vec::new();
                self.advance()?;
                if self.lexer.token == Token::ObjectEnd {
                    return Ok(Json::Object(pairs));
                }
                loop {
                    if self.lexer.token != Token::String {
                        return Err(self.expected(if pairs.is_empty() {
                            "Expected string or \"}\""
                        } else {
                            "Expected string"
                        }));
                    }
                    let key = std::mem::take(&mut self.lexer.string);
                    self.advance()?;
                    if self.lexer.token != Token::Colon {
                        return Err(self.expected("Expected \":\""));
                    }
                    self.advance()?;
                    if !starts_value(self.lexer.token) {
                        return Err(self.expected("Expected JSON value"));
                    }
                    let value = self.value(depth + 1)?;
                    pairs.push((key, value));
                    self.advance()?;
                    match self.lexer.token {
                        Token::Comma => self.advance()?,
                        Token::ObjectEnd => break,
                        _ => return Err(self.expected("Expected \",\" or \"}\"")),
                    }
                }
                if self.keep_text {
                    Json::Object(pairs)
                } else {
                    Json::object(pairs)
                }
            }
            _ => return Err(self.expected("Expected JSON value")),
        })
    }
}

fn starts_value(token: Token) -> bool {
    matches!(
        token,
        Token::String
            | Token::Number
            | Token::True
            | Token::False
            | Token::Null
            | Token::ArrayStart
            | Token::ObjectStart
    )
}

/// How [`set_path`] treats the last step of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathChange {
    /// `jsonb_set`: replace the value there; add it when `create` and the parent exists.
    Set { create: bool },
    /// `jsonb_insert`: insert into an array before (or `after`) the element there, or add a new key.
    Insert { after: bool },
    /// `#-`: remove the value there.
    Delete,
}

fn invalid_parameter(message: &str) -> JsonError {
    JsonError::new("22023", message)
}

/// Subscript assignment (`UPDATE t SET doc['a'][0] = value`), as PostgreSQL's `setPath` with
/// `JB_PATH_FILL_GAPS | JB_PATH_CREATE | JB_PATH_CONSISTENT_POSITION`: a missing key is added, and the
/// rest of the path below it is built as objects (text steps) and arrays (integer steps, padded with
/// nulls up to the index); an index past an array's end pads the array with nulls; a negative index
/// counts from the end and must stay inside the array; a scalar where the path needs a container is an
/// error. `path` must not be empty.
pub fn assign_path(document: &mut Json, path: &[String], new_value: Json) -> JsonResult<()> {
    assign_in(document, path, 0, new_value)
}

#[recursive::recursive]
fn assign_in(value: &mut Json, path: &[String], level: usize, new_value: Json) -> JsonResult<()> {
    let last = level + 1 == path.len();
    match value {
        Json::Object(pairs) => {
            let key = &path[level];
            match pairs.iter().position(|(name, _)| name == key) {
                Some(found) if last => pairs[found].1 = new_value,
                Some(found) => assign_in(&mut pairs[found].1, path, level + 1, new_value)?,
                None => {
                    let built = built_path(&path[level + 1..], new_value)?;
                    let mut all = std::mem::take(pairs);
                    all.push((key.clone(), built));
                    *value = Json::object(all);
                }
            }
            Ok(())
        }
        Json::Array(items) => {
            let step = &path[level];
            let index = i64::from(step.trim_start().parse::<i32>().map_err(|_| {
                JsonError::new(
                    "22P02",
                    format!(
                        "path element at position {} is not an integer: \"{step}\"",
                        level + 1
                    ),
                )
            })?);
            let count = items.len() as i64;
            let index = if index < 0 {
                if -index > count {
                    return Err(invalid_parameter(&format!(
                        "path element at position {} is out of range: {index}",
                        level + 1
                    )));
                }
                count + index
            } else {
                index
            };
            let position = usize::try_from(index).expect("the index is not negative here");
            if position >= ASSIGN_ARRAY_ELEMENTS_MAX {
                return Err(too_many_elements());
            }
            if position < items.len() {
                if last {
                    items[position] = new_value;
                } else {
                    assign_in(&mut items[position], path, level + 1, new_value)?;
                }
            } else {
                items.resize(position, Json::Null);
                items.push(built_path(&path[level + 1..], new_value)?);
            }
            Ok(())
        }
        _ => Err(invalid_parameter("cannot replace existing key")
            .with_detail("The path assumes key is a composite object, but it is a scalar value.")),
    }
}

/// The value `new_value` nested under the steps `rest`: an array for an integer step (nulls before the
/// index), an object for any other.
fn built_path(rest: &[String], new_value: Json) -> JsonResult<Json> {
    let mut built = new_value;
    for step in rest.iter().rev() {
        built = match step.trim_start().parse::<i32>() {
            Ok(index) => {
                let padding = usize::try_from(index).unwrap_or(0);
                if padding >= ASSIGN_ARRAY_ELEMENTS_MAX {
                    return Err(too_many_elements());
                }
                let mut items = vec![Json::Null; padding];
                items.push(built);
                Json::Array(items)
            }
            Err(_) => Json::Object(vec![(step.clone(), built)]),
        };
    }
    Ok(built)
}

/// `jsonb_set`, `jsonb_insert` and `#-`, as PostgreSQL's `setPath`: the document with the value at
/// `path` changed. Steps that do not exist leave the document unchanged (only the last step may be
/// created); a step into an array must be an integer.
pub fn set_path(
    document: Jsonb<'_>,
    path: &[Option<&str>],
    new_value: Option<&Json>,
    change: PathChange,
) -> JsonResult<Json> {
    if document.is_scalar() {
        return Err(invalid_parameter(match change {
            PathChange::Delete => "cannot delete path in scalar",
            _ => "cannot set path in scalar",
        }));
    }
    let mut tree = document.to_json();
    if !path.is_empty() {
        set_path_in(&mut tree, path, 0, new_value, change)?;
    }
    Ok(tree)
}

#[recursive::recursive]
fn set_path_in(
    value: &mut Json,
    path: &[Option<&str>],
    level: usize,
    new_value: Option<&Json>,
    change: PathChange,
) -> JsonResult<()> {
    let last = level + 1 == path.len();
    let creates = !matches!(
        change,
        PathChange::Delete | PathChange::Set { create: false }
    );
    match value {
        Json::Object(pairs) => {
            let Some(key) = path[level] else {
                return Ok(());
            };
            match pairs.iter().position(|(name, _)| name == key) {
                Some(found) if last => match change {
                    PathChange::Insert { .. } => {
                        return Err(invalid_parameter("cannot replace existing key")
                            .with_hint("Try using the function jsonb_set to replace key value."));
                    }
                    PathChange::Delete => {
                        pairs.remove(found);
                    }
                    PathChange::Set { .. } => {
                        if let Some(new_value) = new_value {
                            pairs[found].1 = new_value.clone();
                        }
                    }
                },
                Some(found) => {
                    set_path_in(&mut pairs[found].1, path, level + 1, new_value, change)?;
                }
                None if last && creates => {
                    if let Some(new_value) = new_value {
                        let mut all = std::mem::take(pairs);
                        all.push((key.to_string(), new_value.clone()));
                        *value = Json::object(all);
                    }
                }
                None => {}
            }
        }
        Json::Array(items) => {
            let count = items.len() as i64;
            let index = match path[level] {
                Some(step) => step.trim().parse::<i32>().map_err(|_| {
                    JsonError::new(
                        "22P02",
                        format!(
                            "path element at position {} is not an integer: \"{step}\"",
                            level + 1
                        ),
                    )
                })? as i64,
                None => count,
            };
            let index = if index < 0 {
                if -index > count {
                    i64::MIN
                } else {
                    count + index
                }
            } else {
                index.min(count)
            };
            let Some(new_value) = new_value.filter(|_| last) else {
                if let Ok(position) = usize::try_from(index)
                    && position < items.len()
                {
                    if last {
                        // Only a delete reaches here without a value.
                        items.remove(position);
                    } else {
                        set_path_in(&mut items[position], path, level + 1, new_value, change)?;
                    }
                }
                return Ok(());
            };
            if (index == i64::MIN || items.is_empty()) && creates {
                items.insert(0, new_value.clone());
                return Ok(());
            }
            match usize::try_from(index) {
                Ok(position) if position < items.len() => match change {
                    PathChange::Insert { after: false } => {
                        items.insert(position, new_value.clone())
                    }
                    PathChange::Insert { after: true } => {
                        items.insert(position + 1, new_value.clone())
                    }
                    _ => items[position] = new_value.clone(),
                },
                _ if creates => items.push(new_value.clone()),
                _ => {}
            }
        }
        _ => {}
    }
    Ok(())
}

/// `||`: two objects merge (the right one's keys win); otherwise both sides as arrays (a scalar or
/// an object as a one-element array) concatenated.
pub fn concat(left: Jsonb<'_>, right: Jsonb<'_>) -> Json {
    if left.kind() == Kind::Object && right.kind() == Kind::Object {
        let mut pairs: Vec<(String, Json)> = Vec::with_capacity(left.len() + right.len());
        for (key, value) in left.entries().chain(right.entries()) {
            pairs.push((key.to_string(), value.to_json()));
        }
        return Json::object(pairs);
    }
    let as_items = |value: Jsonb<'_>| -> Vec<Json> {
        if value.kind() == Kind::Array {
            value.elements().map(|item| item.to_json()).collect()
        } else {
            vec![value.to_json()]
        }
    };
    let mut items = as_items(left);
    items.extend(as_items(right));
    Json::Array(items)
}

/// `- text` / `- text[]`: an object without those keys, an array without string elements equal to one
/// of them.
pub fn delete_keys(document: Jsonb<'_>, keys: &[&str]) -> JsonResult<Json> {
    match document.kind() {
        Kind::Object => Ok(Json::Object(
            document
                .entries()
                .filter(|(key, _)| !keys.contains(key))
                .map(|(key, value)| (key.to_string(), value.to_json()))
                .collect(),
        )),
        Kind::Array => Ok(Json::Array(
            document
                .elements()
                .filter(|item| !item.as_str().is_some_and(|text| keys.contains(&text)))
                .map(|item| item.to_json())
                .collect(),
        )),
        _ => Err(invalid_parameter("cannot delete from scalar")),
    }
}

/// `- integer`: an array without the element at `index` (negative: from the end).
pub fn delete_index(document: Jsonb<'_>, index: i64) -> JsonResult<Json> {
    match document.kind() {
        Kind::Array => {
            let count = document.len() as i64;
            let index = if index < 0 { count + index } else { index };
            Ok(Json::Array(
                document
                    .elements()
                    .enumerate()
                    .filter(|(position, _)| *position as i64 != index)
                    .map(|(_, item)| item.to_json())
                    .collect(),
            ))
        }
        Kind::Object => Err(invalid_parameter(
            "cannot delete from object using integer index",
        )),
        _ => Err(invalid_parameter("cannot delete from scalar")),
    }
}

/// `jsonb_strip_nulls`: object fields whose value is null removed, at every depth.
#[recursive::recursive]
pub fn strip_nulls(document: Jsonb<'_>) -> Json {
    match document.kind() {
        Kind::Object => Json::Object(
            document
                .entries()
                .filter(|(_, value)| value.kind() != Kind::Null)
                .map(|(key, value)| (key.to_string(), strip_nulls(value)))
                .collect(),
        ),
        Kind::Array => Json::Array(document.elements().map(strip_nulls).collect()),
        _ => document.to_json(),
    }
}

/// The entries a GIN index keeps for a document, or the entries a containment query must find (the
/// same function: a document contains a query only if it has every entry of the query's).
///
/// `jsonb_ops`: one token per object key (`K` + key) and per scalar (`V` + kind + value, numbers by
/// value so `1.0` and `1` meet); strings that are array elements or the whole document also give a
/// key token, so `?` finds them. `jsonb_path_ops`: one 8-byte hash per scalar of the keys on the
/// way to it and its value (arrays add nothing to the path), as PostgreSQL's operator class does.
/// Tokens are sorted and unique.
pub fn gin_tokens(document: Jsonb<'_>, mode: GinMode) -> Vec<Vec<u8>> {
    let mut tokens = Vec::new();
    match mode {
        GinMode::Keys => {
            if let Some(text) = document.as_str() {
                tokens.push(key_token(text));
            }
            value_tokens(document, &mut tokens);
        }
        GinMode::PathHashes => path_tokens(document, FNV_OFFSET, &mut tokens),
        GinMode::Paths => exact_path_tokens(document, &mut vec![b'P'], &mut tokens),
    }
    tokens.sort();
    tokens.dedup();
    tokens
}

/// The tokens an index of `mode` looks up for `@> query`, and whether a containing document has all
/// of them (`true`) or at least one. A bare scalar is contained in itself and in a top-level array
/// holding it, whose [`GinMode::Paths`] tokens differ by the array step: either will do.
pub fn gin_containment_tokens(query: Jsonb<'_>, mode: GinMode) -> (Vec<Vec<u8>>, bool) {
    if mode == GinMode::Paths && query.is_scalar() {
        let scalar = scalar_token(query);
        let mut bare = vec![b'P'];
        bare.extend_from_slice(&scalar);
        let mut element = vec![b'P', 0x02];
        element.extend_from_slice(&scalar);
        let long = |token: &Vec<u8>| token.len() > PATH_TOKEN_BYTES_MAX;
        if !long(&bare) && !long(&element) {
            return (vec![bare, element], false);
        }
    }
    (gin_tokens(query, mode), true)
}

/// How a GIN index turns a document into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GinMode {
    /// `jsonb_ops`: a token per key and per scalar, wherever they sit.
    Keys,
    /// `jsonb_path_ops` as first built: an 8-byte hash of each scalar's keys and value (array steps
    /// left out, as PostgreSQL's does). Kept for the indexes made that way.
    PathHashes,
    /// `jsonb_path_ops`: each scalar's path spelled out (keys, array steps) with its value; a path
    /// longer than [`PATH_TOKEN_BYTES_MAX`] is hashed instead.
    Paths,
}

/// Longest spelled-out path token; longer paths are stored as a hash (which answers only with a
/// recheck of the row).
pub const PATH_TOKEN_BYTES_MAX: usize = 256;

/// True when, in [`GinMode::Paths`], the documents holding every token of `query` are exactly the
/// documents containing `query`, so that an `@>` answered by the index needs no recheck of the rows.
///
/// That holds for an object whose arrays hold only scalars, with no empty object or array inside it
/// and no path too long to spell out: object keys are unique, so a path of keys leads to one value,
/// and a path through an array step says that this value is an array holding the scalar, which is
/// what containment asks of it (below the top level, an array never contains a bare scalar, nor an
/// object an array). Two scalars under one array element of objects (`[{"a":1,"b":2}]`) could sit in
/// different elements, and an empty container asks for a value no token records: neither is exact.
pub fn gin_query_is_exact(query: Jsonb<'_>) -> bool {
    #[recursive::recursive]
    fn exact_below(value: Jsonb<'_>, in_array: bool) -> bool {
        match value.kind() {
            Kind::Object => {
                !in_array
                    && !value.is_empty()
                    && value.entries().all(|(_, item)| exact_below(item, false))
            }
            Kind::Array => {
                !in_array
                    && !value.is_empty()
                    && value.elements().all(|item| exact_below(item, true))
            }
            _ => true,
        }
    }
    query.kind() == Kind::Object
        && exact_below(query, false)
        && gin_tokens(query, GinMode::Paths)
            .iter()
            .all(|token| token.first() == Some(&b'P'))
}

/// The `jsonb_ops` token of a key (what `?` looks up).
pub fn key_token(key: &str) -> Vec<u8> {
    let mut token = Vec::with_capacity(key.len() + 1);
    token.push(b'K');
    token.extend_from_slice(key.as_bytes());
    token
}

/// The token of a scalar: its kind and its value (numbers without trailing fraction zeros).
fn scalar_token(value: Jsonb<'_>) -> Vec<u8> {
    let mut token = vec![b'V'];
    match value.kind() {
        Kind::Null => token.push(b'n'),
        Kind::Bool => token.extend_from_slice(if value.as_bool() == Some(true) {
            b"t"
        } else {
            b"f"
        }),
        Kind::Number => {
            token.push(b'#');
            token.extend_from_slice(number_by_value(value.as_number().unwrap_or("0")).as_bytes());
        }
        _ => {
            token.push(b's');
            token.extend_from_slice(value.as_str().unwrap_or_default().as_bytes());
        }
    }
    token
}

/// A number's text with the same value for every scale (`1.50` and `1.5` and `1.500`).
fn number_by_value(text: &str) -> &str {
    if !text.contains('.') {
        return text;
    }
    let trimmed = text.trim_end_matches('0');
    let trimmed = trimmed.trim_end_matches('.');
    if trimmed == "-0" { "0" } else { trimmed }
}

#[recursive::recursive]
fn value_tokens(value: Jsonb<'_>, tokens: &mut Vec<Vec<u8>>) {
    match value.kind() {
        Kind::Object => {
            for (key, item) in value.entries() {
                tokens.push(key_token(key));
                value_tokens(item, tokens);
            }
        }
        Kind::Array => {
            for item in value.elements() {
                if let Some(text) = item.as_str() {
                    tokens.push(key_token(text));
                }
                value_tokens(item, tokens);
            }
        }
        _ => tokens.push(scalar_token(value)),
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The [`GinMode::Paths`] tokens under `value`, whose path so far is `path`: `P`, then per step
/// `0x01`, the key's length (4 bytes) and the key, or `0x02` for an array element, then the scalar's
/// token.
#[recursive::recursive]
fn exact_path_tokens(value: Jsonb<'_>, path: &mut Vec<u8>, tokens: &mut Vec<Vec<u8>>) {
    let depth = path.len();
    match value.kind() {
        Kind::Object => {
            for (key, item) in value.entries() {
                path.push(0x01);
                path.extend_from_slice(&(key.len() as u32).to_be_bytes());
                path.extend_from_slice(key.as_bytes());
                exact_path_tokens(item, path, tokens);
                path.truncate(depth);
            }
        }
        Kind::Array => {
            path.push(0x02);
            for item in value.elements() {
                exact_path_tokens(item, path, tokens);
            }
            path.truncate(depth);
        }
        _ => {
            let mut token = path.clone();
            token.extend_from_slice(&scalar_token(value));
            if token.len() > PATH_TOKEN_BYTES_MAX {
                let mut hashed = vec![b'H'];
                hashed.extend_from_slice(&fnv(FNV_OFFSET, &token).to_be_bytes());
                token = hashed;
            }
            tokens.push(token);
        }
    }
}

#[recursive::recursive]
fn path_tokens(value: Jsonb<'_>, path_hash: u64, tokens: &mut Vec<Vec<u8>>) {
    match value.kind() {
        Kind::Object => {
            for (key, item) in value.entries() {
                // A separator keeps ("ab","c") and ("a","bc") apart.
                let hash = fnv(fnv(path_hash, key.as_bytes()), &[0xff]);
                path_tokens(item, hash, tokens);
            }
        }
        Kind::Array => {
            for item in value.elements() {
                path_tokens(item, path_hash, tokens);
            }
        }
        _ => {
            let hash = fnv(path_hash, &scalar_token(value));
            tokens.push(hash.to_be_bytes().to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        parse(text).expect("valid JSON").to_text()
    }

    #[test]
    fn prints_as_postgresql() {
        assert_eq!(
            round_trip(r#"{"b":1,"aa":[1, 2.50,{"c":null}],"a":true}"#),
            r#"{"a": true, "b": 1, "aa": [1, 2.50, {"c": null}]}"#
        );
        assert_eq!(round_trip(r#"{"a":1,"a":2}"#), r#"{"a": 2}"#);
        assert_eq!(
            round_trip(r#""\n\"\\\u00e9\u0001""#),
            "\"\\n\\\"\\\\é\\u0001\""
        );
        assert_eq!(round_trip("[]"), "[]");
        assert_eq!(round_trip("{}"), "{}");
    }

    #[test]
    fn numbers_are_numeric_text() {
        for (input, output) in [
            ("1", "1"),
            ("-0", "0"),
            ("-0.0", "0.0"),
            ("1.50", "1.50"),
            ("1e2", "100"),
            ("1.5e-3", "0.0015"),
            ("0.1e1", "1"),
            ("1.50e1", "15.0"),
            ("12E+1", "120"),
            ("9223372036854775808", "9223372036854775808"),
        ] {
            assert_eq!(round_trip(input), output, "{input}");
        }
        assert_eq!(round_trip("1.3e100").len(), 101);
    }

    #[test]
    fn errors_name_the_token() {
        let detail = |text: &str| parse(text).expect_err("invalid").detail.expect("detail");
        assert_eq!(detail("'"), "Token \"'\" is invalid.");
        assert_eq!(detail("\"abc"), "Token \"\"abc\" is invalid.");
        assert_eq!(detail("01"), "Token \"01\" is invalid.");
        assert_eq!(detail("1f2"), "Token \"1f2\" is invalid.");
        assert_eq!(detail("0.x1"), "Token \"0.x1\" is invalid.");
        assert_eq!(detail("\"\\v\""), "Escape sequence \"\\v\" is invalid.");
        assert_eq!(
            detail("\"abc\ndef\""),
            "Character with value 0x0a must be escaped."
        );
        assert_eq!(detail("[1,2"), "The input string ended unexpectedly.");
        assert_eq!(detail("[1 2]"), "Expected \",\" or \"]\", but found \"2\".");
        assert_eq!(detail("{\"a\" 1}"), "Expected \":\", but found \"1\".");
        assert_eq!(
            detail("{1:1}"),
            "Expected string or \"}\", but found \"1\"."
        );
        assert_eq!(detail("[1] 2"), "Expected end of input, but found \"2\".");
        let error = parse("{\"a\":1,\n\"b\" 2}").expect_err("invalid");
        assert_eq!(
            error.context.as_deref(),
            Some("JSON data, line 2: \"b\" 2...")
        );
        let error = parse("\"\\v\"").expect_err("invalid");
        assert_eq!(
            error.context.as_deref(),
            Some("JSON data, line 1: \"\\v...")
        );
    }

    #[test]
    fn binary_reads_fields_in_place() {
        let json =
            parse(r#"{"user":{"name":"ann","age":31},"tags":["a","b"],"n":1.0}"#).expect("valid");
        let bytes = json.encode();
        assert!(Jsonb::validate(&bytes));
        let document = Jsonb::new(&bytes);
        let user = document.get("user").expect("user");
        assert_eq!(user.get("name").and_then(|name| name.as_str()), Some("ann"));
        assert_eq!(
            document
                .at_path(&["tags", "-1"])
                .and_then(|tag| tag.as_str()),
            Some("b")
        );
        assert_eq!(document.get("missing"), None);
        assert!(document.contains(&Jsonb::new(
            &parse(r#"{"user":{"age":31.00}}"#).expect("valid").encode()
        )));
        assert!(!document.contains(&Jsonb::new(
            &parse(r#"{"tags":"a"}"#).expect("valid").encode()
        )));
        assert!(document.exists("tags"));
        assert!(document.get("tags").expect("tags").exists("a"));
        assert_eq!(
            Jsonb::from_stored(br#"{"a": 1}"#).expect("text").as_ref(),
            parse(r#"{"a":1}"#).expect("valid").encode().as_slice()
        );
        assert!(!Jsonb::validate(b"\x03abc"));
    }

    #[test]
    fn order_matches_jsonb_cmp() {
        let value = |text: &str| parse(text).expect("valid").encode();
        let sorted = [
            "null",
            "\"a\"",
            "1",
            "2.5",
            "false",
            "true",
            "[]",
            "[1]",
            "{}",
            r#"{"a":1}"#,
        ];
        for pair in sorted.windows(2) {
            let (left, right) = (value(pair[0]), value(pair[1]));
            assert_eq!(
                Jsonb::new(&left).compare(&Jsonb::new(&right)),
                Ordering::Less,
                "{pair:?}"
            );
        }
        assert!(Jsonb::new(&value("1.0")).equals(&Jsonb::new(&value("1"))));
    }

    #[test]
    fn changes_follow_set_path() {
        let document = parse(r#"{"a":[1,2,{"b":3}],"c":"d"}"#)
            .expect("valid")
            .encode();
        let document = Jsonb::new(&document);
        let new = Json::integer(9);
        let set = |path: &[Option<&str>], change| {
            set_path(document, path, Some(&new), change).map(|json| json.to_text())
        };
        let create = PathChange::Set { create: true };
        assert_eq!(
            set(&[Some("a"), Some("-1"), Some("b")], create).expect("set"),
            r#"{"a": [1, 2, {"b": 9}], "c": "d"}"#
        );
        assert_eq!(
            set(&[Some("e")], create).expect("set"),
            r#"{"a": [1, 2, {"b": 3}], "c": "d", "e": 9}"#
        );
        assert_eq!(
            set(&[Some("e")], PathChange::Set { create: false }).expect("set"),
            r#"{"a": [1, 2, {"b": 3}], "c": "d"}"#
        );
        assert_eq!(
            set(&[Some("a"), Some("-9")], create).expect("set"),
            r#"{"a": [9, 1, 2, {"b": 3}], "c": "d"}"#
        );
        assert_eq!(
            set(&[Some("a"), Some("1")], PathChange::Insert { after: true }).expect("insert"),
            r#"{"a": [1, 2, 9, {"b": 3}], "c": "d"}"#
        );
        assert_eq!(
            set(&[Some("a"), Some("x")], create)
                .expect_err("not an integer")
                .message,
            "path element at position 2 is not an integer: \"x\""
        );
        assert_eq!(
            set_path(document, &[Some("a"), Some("0")], None, PathChange::Delete)
                .expect("delete")
                .to_text(),
            r#"{"a": [2, {"b": 3}], "c": "d"}"#
        );
        let insert =
            set(&[Some("c")], PathChange::Insert { after: false }).expect_err("existing key");
        assert_eq!(insert.message, "cannot replace existing key");
        assert_eq!(
            insert.hint.as_deref(),
            Some("Try using the function jsonb_set to replace key value.")
        );
    }

    #[test]
    fn concat_and_delete() {
        let value = |text: &str| parse(text).expect("valid").encode();
        let (left, right) = (value(r#"{"a":1,"b":2}"#), value(r#"{"b":3}"#));
        assert_eq!(
            concat(Jsonb::new(&left), Jsonb::new(&right)).to_text(),
            r#"{"a": 1, "b": 3}"#
        );
        let (left, right) = (value("[1]"), value(r#"{"b":3}"#));
        assert_eq!(
            concat(Jsonb::new(&left), Jsonb::new(&right)).to_text(),
            r#"[1, {"b": 3}]"#
        );
        let array = value(r#"["a","b",1]"#);
        assert_eq!(
            delete_keys(Jsonb::new(&array), &["a"])
                .expect("delete")
                .to_text(),
            r#"["b", 1]"#
        );
        assert_eq!(
            delete_index(Jsonb::new(&array), -1)
                .expect("delete")
                .to_text(),
            r#"["a", "b"]"#
        );
        assert_eq!(
            delete_index(Jsonb::new(&right), 0)
                .expect_err("object")
                .message,
            "cannot delete from object using integer index"
        );
        let nulls = value(r#"{"a":null,"b":[null,{"c":null}]}"#);
        assert_eq!(
            strip_nulls(Jsonb::new(&nulls)).to_text(),
            r#"{"b": [null, {}]}"#
        );
    }

    #[test]
    fn gin_tokens_of_a_query_are_tokens_of_containing_documents() {
        let value = |text: &str| parse(text).expect("valid").encode();
        let document = value(r#"{"a":{"b":[1.50,"x"]},"c":true}"#);
        for query in [
            r#"{"a":{"b":[1.5]}}"#,
            r#"{"c":true}"#,
            r#"{"a":{"b":["x"]}}"#,
        ] {
            let query = value(query);
            assert!(Jsonb::new(&document).contains(&Jsonb::new(&query)));
            for mode in [GinMode::Keys, GinMode::PathHashes, GinMode::Paths] {
                let have = gin_tokens(Jsonb::new(&document), mode);
                for token in gin_tokens(Jsonb::new(&query), mode) {
                    assert!(have.contains(&token), "{mode:?}");
                }
            }
        }
        let have = gin_tokens(Jsonb::new(&document), GinMode::Keys);
        assert!(have.contains(&key_token("x")) && have.contains(&key_token("b")));
        let other = value(r#"{"a":{"c":[1.5]}}"#);
        for mode in [GinMode::PathHashes, GinMode::Paths] {
            let missing = gin_tokens(Jsonb::new(&other), mode);
            assert!(
                missing
                    .iter()
                    .any(|token| !gin_tokens(Jsonb::new(&document), mode).contains(token))
            );
        }
    }

    /// For the queries [`gin_query_is_exact`] accepts, having every path token is containment, over
    /// documents built to tell arrays, nesting and equal-valued numbers apart.
    #[test]
    fn exact_path_queries_match_containment() {
        let value = |text: &str| parse(text).expect("valid").encode();
        let documents = [
            r#"{"a":{"b":1}}"#,
            r#"{"a":[{"b":1}]}"#,
            r#"{"a":{"b":[1]}}"#,
            r#"{"a":{"b":1.0,"c":"x"}}"#,
            r#"{"a":{"b":2},"c":"x"}"#,
            r#"{"a":[1,2,"x"],"b":null}"#,
            r#"{"a":[[1,2]],"b":false}"#,
            r#"{"a":"x"}"#,
            r#"[{"a":{"b":1}}]"#,
            r#"{"a":{"b":{"c":1}}}"#,
            r#"{"a":[1],"a2":[2]}"#,
            r#"{"a":{}}"#,
        ];
        let queries = [
            (r#"{"a":{"b":1}}"#, true),
            (r#"{"a":{"b":1.00,"c":"x"}}"#, true),
            (r#"{"a":[1,2]}"#, true),
            (r#"{"a":[2],"b":null}"#, true),
            (r#"{"c":"x"}"#, true),
            (r#"{"a":"x"}"#, true),
            (r#"{"b":false}"#, true),
            (r#"{"a":{"b":{"c":1}}}"#, true),
            (r#"{"a":[{"b":1}]}"#, false),
            (r#"{"a":[[1,2]]}"#, false),
            (r#"{"a":{}}"#, false),
            (r#"{"a":[]}"#, false),
            (r#"[1]"#, false),
            (r#"1"#, false),
        ];
        for (query, exact) in queries {
            let query = value(query);
            let query = Jsonb::new(&query);
            assert_eq!(gin_query_is_exact(query), exact, "{}", query.to_text());
            if !exact {
                continue;
            }
            let wanted = gin_tokens(query, GinMode::Paths);
            for document in documents {
                let document = value(document);
                let document = Jsonb::new(&document);
                let have = gin_tokens(document, GinMode::Paths);
                assert_eq!(
                    wanted.iter().all(|token| have.contains(token)),
                    document.contains(&query),
                    "{} @> {}",
                    document.to_text(),
                    query.to_text()
                );
            }
        }
        // A bare scalar is found as itself or as a top-level array's element.
        let scalar = value(r#""x""#);
        let (tokens, all) = gin_containment_tokens(Jsonb::new(&scalar), GinMode::Paths);
        assert!(!all);
        for document in [r#""x""#, r#"[1, "x"]"#] {
            let document = value(document);
            let have = gin_tokens(Jsonb::new(&document), GinMode::Paths);
            assert!(tokens.iter().any(|token| have.contains(token)));
        }
        // A path too long to spell out is hashed, and a query holding one is not exact.
        let long = value(&format!(
            r#"{{"a":"{}"}}"#,
            "x".repeat(PATH_TOKEN_BYTES_MAX)
        ));
        let long = Jsonb::new(&long);
        assert_eq!(gin_tokens(long, GinMode::Paths)[0][0], b'H');
        assert!(!gin_query_is_exact(long));
    }

    #[test]
    fn deepest_documents_fit_a_small_stack() {
        let worker = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| {
                let deep = format!(
                    "{}{}",
                    "[{\"a\": ".repeat(JSON_DEPTH_MAX / 2),
                    "}]".repeat(JSON_DEPTH_MAX / 2)
                );
                let deep = deep.replacen("[{\"a\": }]", "[{\"a\": 1}]", 1);
                let too_deep = "[".repeat(JSON_DEPTH_MAX + 2);
                let error = parse(&too_deep).expect_err("too deep");
                assert_eq!(error.code, "54001");
                let json = parse(&deep).expect("deep but within the limit");
                let bytes = json.encode();
                let value = Jsonb::new(&bytes);
                assert!(Jsonb::validate(&bytes));
                assert_eq!(parse(&value.to_text()).expect("round trip").encode(), bytes);
                assert!(value.contains(&value));
                assert_eq!(value.compare(&value), Ordering::Equal);
                let _ = value.to_pretty();
                let _ = gin_tokens(value, GinMode::Paths);
                let _ = strip_nulls(value);
            })
            .expect("thread");
        worker.join().expect("no stack overflow");
    }

    #[test]
    fn pretty_prints_with_four_spaces() {
        let value = parse(r#"{"a":[1,{}],"b":{"c":"d"}}"#)
            .expect("valid")
            .encode();
        assert_eq!(
            Jsonb::new(&value).to_pretty(),
            "{\n    \"a\": [\n        1,\n        {}\n    ],\n    \"b\": {\n        \"c\": \"d\"\n    }\n}"
        );
    }
}
