//! The SQL/JSON path language (PostgreSQL's `jsonpath`): parsing and evaluation over jsonb values.
//!
//! A path is `[lax | strict] expression`. Expressions: `$` (the document), `@` (the current item in a
//! filter), `$name` (a variable), literals, accessors (`.key`, `."key"`, `.*`, `[1]`, `[1 to 3]`,
//! `[last]`, `[*]`, `.**`), filters `? (predicate)`, arithmetic (`+ - * / %`, unary minus), item
//! methods (`.type()`, `.size()`, `.double()`, `.abs()`, `.floor()`, `.ceiling()`, `.keyvalue()`),
//! and predicates (`== != <> < <= > >=`, `&&`, `||`, `!`, `exists (...)`, `like_regex`, `starts with`,
//! `is unknown`).
//!
//! Evaluation yields a sequence of JSON items. In lax mode (the default) an accessor applied to the
//! wrong kind of item skips it and arrays are unwrapped where an item is expected; in strict mode that
//! is an error. Predicates are three-valued: a comparison whose operands cannot be compared is
//! unknown, and a comparison of sequences is true when any pair is (PostgreSQL's semantics).

use std::cmp::Ordering;

use crate::jsonb::{Json, JsonError, JsonResult, compare_numbers};

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    strict: bool,
    expression: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Root,
    Current,
    Last,
    Variable(String),
    Literal(Json),
    /// `base` followed by accessors.
    Chain(Box<Node>, Vec<Accessor>),
    Unary(char, Box<Node>),
    Binary(Box<Node>, Operator, Box<Node>),
    Not(Box<Node>),
    Exists(Box<Node>),
    IsUnknown(Box<Node>),
    LikeRegex(Box<Node>, String, String),
    StartsWith(Box<Node>, Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq)]
enum Accessor {
    Member(String),
    AnyMember,
    AnyElement,
    /// Subscripts: single indexes or `from to to` ranges.
    Elements(Vec<(Node, Option<Node>)>),
    /// `.**` with optional level bounds.
    Descendants(u32, u32),
    Filter(Box<Node>),
    Method(String),
}

/// Three-valued truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    True,
    False,
    Unknown,
}

fn syntax_error(near: Option<&str>) -> JsonError {
    let message = match near {
        Some(token) => format!("syntax error at or near \"{token}\" of jsonpath input"),
        None => "syntax error at end of jsonpath input".to_string(),
    };
    JsonError::new("42601", message)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Dollar,
    At,
    Variable(String),
    Identifier(String),
    String(String),
    Number(String),
    Symbol(&'static str),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Dollar => "$".into(),
            Token::At => "@".into(),
            Token::Variable(name) => format!("${name}"),
            Token::Identifier(word) => word.clone(),
            Token::String(text) => format!("\"{text}\""),
            Token::Number(text) => text.clone(),
            Token::Symbol(symbol) => (*symbol).into(),
        }
    }
}

fn tokenize(text: &str) -> JsonResult<Vec<Token>> {
    let characters: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < characters.len() {
        let character = characters[at];
        if character.is_whitespace() {
            at += 1;
            continue;
        }
        if character == '"' {
            let mut value = String::new();
            at += 1;
            loop {
                let Some(&next) = characters.get(at) else {
                    return Err(syntax_error(None));
                };
                at += 1;
                match next {
                    '"' => break,
                    '\\' => {
                        let escaped = characters
                            .get(at)
                            .copied()
                            .ok_or_else(|| syntax_error(None))?;
                        at += 1;
                        value.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            'b' => '\u{8}',
                            'f' => '\u{c}',
                            'u' => {
                                let hex: String = characters.iter().skip(at).take(4).collect();
                                at += 4;
                                u32::from_str_radix(&hex, 16)
                                    .ok()
                                    .and_then(char::from_u32)
                                    .ok_or_else(|| syntax_error(Some(&hex)))?
                            }
                            other => other,
                        });
                    }
                    other => value.push(other),
                }
            }
            tokens.push(Token::String(value));
            continue;
        }
        if character.is_ascii_digit()
            || (character == '.' && characters.get(at + 1).is_some_and(char::is_ascii_digit))
        {
            let start = at;
            while at < characters.len() && characters[at].is_ascii_digit() {
                at += 1;
            }
            if at < characters.len()
                && characters[at] == '.'
                && characters.get(at + 1).is_some_and(char::is_ascii_digit)
            {
                at += 1;
                while at < characters.len() && characters[at].is_ascii_digit() {
                    at += 1;
                }
            }
            if at < characters.len() && (characters[at] == 'e' || characters[at] == 'E') {
                let mut probe = at + 1;
                if probe < characters.len()
                    && (characters[probe] == '+' || characters[probe] == '-')
                {
                    probe += 1;
                }
                if probe < characters.len() && characters[probe].is_ascii_digit() {
                    at = probe;
                    while at < characters.len() && characters[at].is_ascii_digit() {
                        at += 1;
                    }
                }
            }
            let number: String = characters[start..at].iter().collect();
            if at < characters.len() && (characters[at].is_alphanumeric() || characters[at] == '_')
            {
                return Err(JsonError::new(
                    "42601",
                    format!(
                        "trailing junk after numeric literal at or near \"{number}{}\" of jsonpath input",
                        characters[at]
                    ),
                ));
            }
            tokens.push(Token::Number(number));
            continue;
        }
        if character == '$' {
            at += 1;
            if at < characters.len() && (characters[at].is_alphabetic() || characters[at] == '_') {
                let start = at;
                while at < characters.len()
                    && (characters[at].is_alphanumeric() || characters[at] == '_')
                {
                    at += 1;
                }
                tokens.push(Token::Variable(characters[start..at].iter().collect()));
            } else if at < characters.len() && characters[at] == '"' {
                // `$"name"`
                let rest: String = characters[at..].iter().collect();
                let mut inner = tokenize(&rest)?;
                match inner.first() {
                    Some(Token::String(name)) => {
                        tokens.push(Token::Variable(name.clone()));
                        inner.remove(0);
                        tokens.extend(inner);
                        return Ok(tokens);
                    }
                    _ => return Err(syntax_error(Some("$"))),
                }
            } else {
                tokens.push(Token::Dollar);
            }
            continue;
        }
        if character.is_alphabetic() || character == '_' {
            let start = at;
            while at < characters.len()
                && (characters[at].is_alphanumeric() || characters[at] == '_')
            {
                at += 1;
            }
            tokens.push(Token::Identifier(characters[start..at].iter().collect()));
            continue;
        }
        let two: String = characters[at..(at + 2).min(characters.len())]
            .iter()
            .collect();
        let symbol = match two.as_str() {
            "==" => Some("=="),
            "!=" => Some("!="),
            "<>" => Some("<>"),
            "<=" => Some("<="),
            ">=" => Some(">="),
            "&&" => Some("&&"),
            "||" => Some("||"),
            "**" => Some("**"),
            _ => None,
        };
        if let Some(symbol) = symbol {
            tokens.push(Token::Symbol(symbol));
            at += 2;
            continue;
        }
        let symbol = match character {
            '@' => {
                tokens.push(Token::At);
                at += 1;
                continue;
            }
            '.' => ".",
            '[' => "[",
            ']' => "]",
            '(' => "(",
            ')' => ")",
            ',' => ",",
            '?' => "?",
            '*' => "*",
            '+' => "+",
            '-' => "-",
            '/' => "/",
            '%' => "%",
            '<' => "<",
            '>' => ">",
            '!' => "!",
            '{' => "{",
            '}' => "}",
            other => return Err(syntax_error(Some(&other.to_string()))),
        };
        tokens.push(Token::Symbol(symbol));
        at += 1;
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek(), Some(Token::Symbol(found)) if *found == symbol)
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Identifier(found)) if found.eq_ignore_ascii_case(word))
    }

    fn error(&self) -> JsonError {
        syntax_error(self.peek().map(Token::text).as_deref())
    }

    fn expect_symbol(&mut self, symbol: &str) -> JsonResult<()> {
        if self.peek_symbol(symbol) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn or(&mut self) -> JsonResult<Node> {
        let mut left = self.and()?;
        while self.peek_symbol("||") {
            self.at += 1;
            let right = self.and()?;
            left = Node::Binary(Box::new(left), Operator::Or, Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> JsonResult<Node> {
        let mut left = self.not()?;
        while self.peek_symbol("&&") {
            self.at += 1;
            let right = self.not()?;
            left = Node::Binary(Box::new(left), Operator::And, Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> JsonResult<Node> {
        if self.peek_symbol("!") {
            self.at += 1;
            self.expect_symbol("(")?;
            let inner = self.or()?;
            self.expect_symbol(")")?;
            return Ok(Node::Not(Box::new(inner)));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> JsonResult<Node> {
        if self.peek_word("exists")
            && matches!(self.tokens.get(self.at + 1), Some(Token::Symbol("(")))
        {
            self.at += 2;
            let inner = self.or()?;
            self.expect_symbol(")")?;
            return Ok(Node::Exists(Box::new(inner)));
        }
        let left = self.additive()?;
        let operator = match self.peek() {
            Some(Token::Symbol("==")) => Some(Operator::Equal),
            Some(Token::Symbol("!=")) | Some(Token::Symbol("<>")) => Some(Operator::NotEqual),
            Some(Token::Symbol("<")) => Some(Operator::Less),
            Some(Token::Symbol("<=")) => Some(Operator::LessEqual),
            Some(Token::Symbol(">")) => Some(Operator::Greater),
            Some(Token::Symbol(">=")) => Some(Operator::GreaterEqual),
            _ => None,
        };
        if let Some(operator) = operator {
            self.at += 1;
            let right = self.additive()?;
            return Ok(Node::Binary(Box::new(left), operator, Box::new(right)));
        }
        if self.peek_word("like_regex") {
            self.at += 1;
            let Some(Token::String(pattern)) = self.peek().cloned() else {
                return Err(self.error());
            };
            self.at += 1;
            let mut flags = String::new();
            if self.peek_word("flag") {
                self.at += 1;
                let Some(Token::String(given)) = self.peek().cloned() else {
                    return Err(self.error());
                };
                self.at += 1;
                flags = given;
            }
            return Ok(Node::LikeRegex(Box::new(left), pattern, flags));
        }
        if self.peek_word("starts") {
            self.at += 1;
            if !self.peek_word("with") {
                return Err(self.error());
            }
            self.at += 1;
            let prefix = self.primary()?;
            return Ok(Node::StartsWith(Box::new(left), Box::new(prefix)));
        }
        if self.peek_word("is") {
            self.at += 1;
            if !self.peek_word("unknown") {
                return Err(self.error());
            }
            self.at += 1;
            return Ok(Node::IsUnknown(Box::new(left)));
        }
        Ok(left)
    }

    fn additive(&mut self) -> JsonResult<Node> {
        let mut left = self.multiplicative()?;
        loop {
            let operator = match self.peek() {
                Some(Token::Symbol("+")) => Operator::Add,
                Some(Token::Symbol("-")) => Operator::Subtract,
                _ => return Ok(left),
            };
            self.at += 1;
            let right = self.multiplicative()?;
            left = Node::Binary(Box::new(left), operator, Box::new(right));
        }
    }

    fn multiplicative(&mut self) -> JsonResult<Node> {
        let mut left = self.unary()?;
        loop {
            let operator = match self.peek() {
                Some(Token::Symbol("*")) => Operator::Multiply,
                Some(Token::Symbol("/")) => Operator::Divide,
                Some(Token::Symbol("%")) => Operator::Modulo,
                _ => return Ok(left),
            };
            self.at += 1;
            let right = self.unary()?;
            left = Node::Binary(Box::new(left), operator, Box::new(right));
        }
    }

    #[recursive::recursive]
    fn unary(&mut self) -> JsonResult<Node> {
        if self.peek_symbol("-") || self.peek_symbol("+") {
            let sign = if self.peek_symbol("-") { '-' } else { '+' };
            self.at += 1;
            let inner = self.unary()?;
            return Ok(Node::Unary(sign, Box::new(inner)));
        }
        self.accessors()
    }

    fn accessors(&mut self) -> JsonResult<Node> {
        let base = self.primary()?;
        let mut chain = Vec::new();
        loop {
            if self.peek_symbol(".") {
                self.at += 1;
                match self.peek().cloned() {
                    Some(Token::Symbol("*")) => {
                        self.at += 1;
                        chain.push(Accessor::AnyMember);
                    }
                    Some(Token::Symbol("**")) => {
                        self.at += 1;
                        let (mut low, mut high) = (0, u32::MAX);
                        if self.peek_symbol("{") {
                            self.at += 1;
                            low = self.level()?;
                            high = low;
                            if self.peek_word("to") {
                                self.at += 1;
                                high = self.level()?;
                            }
                            self.expect_symbol("}")?;
                        }
                        chain.push(Accessor::Descendants(low, high));
                    }
                    Some(Token::String(key)) => {
                        self.at += 1;
                        chain.push(Accessor::Member(key));
                    }
                    Some(Token::Identifier(word)) => {
                        self.at += 1;
                        if self.peek_symbol("(") {
                            self.at += 1;
                            self.expect_symbol(")")?;
                            let method = word.to_lowercase();
                            if !matches!(
                                method.as_str(),
                                "type"
                                    | "size"
                                    | "double"
                                    | "abs"
                                    | "floor"
                                    | "ceiling"
                                    | "keyvalue"
                            ) {
                                return Err(JsonError::new(
                                    "42601",
                                    format!("syntax error at or near \"{word}\" of jsonpath input"),
                                ));
                            }
                            chain.push(Accessor::Method(method));
                        } else {
                            chain.push(Accessor::Member(word));
                        }
                    }
                    _ => return Err(self.error()),
                }
            } else if self.peek_symbol("[") {
                self.at += 1;
                if self.peek_symbol("*") {
                    self.at += 1;
                    self.expect_symbol("]")?;
                    chain.push(Accessor::AnyElement);
                    continue;
                }
                let mut subscripts = Vec::new();
                loop {
                    let from = self.additive()?;
                    let to = if self.peek_word("to") {
                        self.at += 1;
                        Some(self.additive()?)
                    } else {
                        None
                    };
                    subscripts.push((from, to));
                    if self.peek_symbol(",") {
                        self.at += 1;
                        continue;
                    }
                    self.expect_symbol("]")?;
                    break;
                }
                chain.push(Accessor::Elements(subscripts));
            } else if self.peek_symbol("?") {
                self.at += 1;
                self.expect_symbol("(")?;
                let predicate = self.or()?;
                self.expect_symbol(")")?;
                chain.push(Accessor::Filter(Box::new(predicate)));
            } else {
                break;
            }
        }
        Ok(if chain.is_empty() {
            base
        } else {
            Node::Chain(Box::new(base), chain)
        })
    }

    fn level(&mut self) -> JsonResult<u32> {
        match self.peek().cloned() {
            Some(Token::Number(number)) => {
                self.at += 1;
                number.parse().map_err(|_| self.error())
            }
            Some(Token::Identifier(word)) if word.eq_ignore_ascii_case("last") => {
                self.at += 1;
                Ok(u32::MAX)
            }
            _ => Err(self.error()),
        }
    }

    #[recursive::recursive]
    fn primary(&mut self) -> JsonResult<Node> {
        let Some(token) = self.peek().cloned() else {
            return Err(syntax_error(None));
        };
        self.at += 1;
        Ok(match token {
            Token::Dollar => Node::Root,
            Token::At => Node::Current,
            Token::Variable(name) => Node::Variable(name),
            Token::String(text) => Node::Literal(Json::String(text)),
            Token::Number(text) => Node::Literal(Json::Number(
                crate::jsonb::canonical_number(&text).map_err(|_| syntax_error(Some(&text)))?,
            )),
            Token::Identifier(word) => match word.as_str() {
                "true" => Node::Literal(Json::Bool(true)),
                "false" => Node::Literal(Json::Bool(false)),
                "null" => Node::Literal(Json::Null),
                "last" => Node::Last,
                _ => return Err(syntax_error(Some(&word))),
            },
            Token::Symbol("(") => {
                let inner = self.or()?;
                self.expect_symbol(")")?;
                inner
            }
            other => return Err(syntax_error(Some(&other.text()))),
        })
    }
}

impl JsonPath {
    /// Parses path text.
    pub fn parse(text: &str) -> JsonResult<JsonPath> {
        let mut tokens = tokenize(text)?;
        let mut strict = false;
        if let Some(Token::Identifier(mode)) = tokens.first() {
            let mode = mode.to_lowercase();
            if (mode == "strict" || mode == "lax") && tokens.len() > 1 {
                strict = mode == "strict";
                tokens.remove(0);
            }
        }
        if tokens.is_empty() {
            return Err(syntax_error(None));
        }
        let mut parser = Parser { tokens, at: 0 };
        let expression = parser.or()?;
        if parser.at < parser.tokens.len() {
            return Err(parser.error());
        }
        Ok(JsonPath { strict, expression })
    }

    /// The items the path selects from `document`, with `variables` (an object) for `$name`.
    pub fn query(&self, document: &Json, variables: &Json) -> JsonResult<Vec<Json>> {
        let context = Context {
            root: document,
            variables,
            strict: self.strict,
        };
        context.evaluate(&self.expression, document, None)
    }

    /// `jsonb_path_exists` / `@?`: whether the path selects anything; `None` when a predicate path
    /// is unknown.
    pub fn exists(&self, document: &Json, variables: &Json) -> JsonResult<Option<bool>> {
        if self.is_predicate() {
            return self
                .matches(document, variables)
                .map(|truth| truth.map(|_| true));
        }
        Ok(Some(!self.query(document, variables)?.is_empty()))
    }

    /// `jsonb_path_match` / `@@`: the boolean a predicate path yields; `None` for unknown (or a
    /// JSON null result).
    pub fn matches(&self, document: &Json, variables: &Json) -> JsonResult<Option<bool>> {
        let items = self.query(document, variables)?;
        match items.as_slice() {
            [Json::Bool(value)] => Ok(Some(*value)),
            [Json::Null] => Ok(None),
            _ => Err(JsonError::new("22038", "single boolean result is expected")),
        }
    }

    fn is_predicate(&self) -> bool {
        matches!(
            self.expression,
            Node::Binary(
                _,
                Operator::Equal
                    | Operator::NotEqual
                    | Operator::Less
                    | Operator::LessEqual
                    | Operator::Greater
                    | Operator::GreaterEqual
                    | Operator::And
                    | Operator::Or,
                _
            ) | Node::Not(_)
                | Node::Exists(_)
                | Node::IsUnknown(_)
                | Node::LikeRegex(..)
                | Node::StartsWith(..)
        )
    }
}

struct Context<'a> {
    root: &'a Json,
    variables: &'a Json,
    strict: bool,
}

fn structural(code: &'static str, message: &str) -> JsonError {
    JsonError::new(code, message)
}

fn number_of(json: &Json) -> Option<f64> {
    match json {
        Json::Number(text) => text.parse().ok(),
        _ => None,
    }
}

fn number_json(value: f64) -> JsonResult<Json> {
    if !value.is_finite() {
        return Err(JsonError::new("22003", "numeric value out of range"));
    }
    let text = if value.fract() == 0.0 && value.abs() < 1e17 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    };
    Ok(Json::Number(crate::jsonb::canonical_number(&text)?))
}

impl Context<'_> {
    /// Items of an array unwrapped (lax mode), others as they are.
    fn unwrap(&self, items: Vec<Json>) -> Vec<Json> {
        if self.strict {
            return items;
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Json::Array(elements) => out.extend(elements),
                other => out.push(other),
            }
        }
        out
    }

    #[recursive::recursive]
    fn evaluate(&self, node: &Node, current: &Json, last: Option<usize>) -> JsonResult<Vec<Json>> {
        Ok(match node {
            Node::Root => vec![self.root.clone()],
            Node::Current => vec![current.clone()],
            Node::Last => match last {
                Some(length) => vec![Json::integer(length as i64 - 1)],
                None => {
                    return Err(JsonError::new(
                        "42601",
                        "LAST is allowed only in array subscripts",
                    ));
                }
            },
            Node::Variable(name) => match self.variables {
                Json::Object(pairs) => match pairs.iter().find(|(key, _)| key == name) {
                    Some((_, value)) => vec![value.clone()],
                    None => {
                        return Err(JsonError::new(
                            "42704",
                            format!("could not find jsonpath variable \"{name}\""),
                        ));
                    }
                },
                _ => {
                    return Err(JsonError::new(
                        "22023",
                        "\"vars\" argument is not an object",
                    ));
                }
            },
            Node::Literal(json) => vec![json.clone()],
            Node::Chain(base, accessors) => {
                let mut items = self.evaluate(base, current, last)?;
                // After `.**`, items of every kind flow on: structural errors are skipped (as
                // PostgreSQL does).
                let mut lenient = false;
                for accessor in accessors {
                    items = self.access(accessor, items, lenient)?;
                    lenient |= matches!(accessor, Accessor::Descendants(..));
                }
                items
            }
            Node::Unary(sign, inner) => {
                let items = self.unwrap(self.evaluate(inner, current, last)?);
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let Some(value) = number_of(&item) else {
                        return Err(JsonError::new(
                            "22038",
                            format!(
                                "operand of unary jsonpath operator {sign} is not a numeric value"
                            ),
                        ));
                    };
                    out.push(if *sign == '-' {
                        number_json(-value)?
                    } else {
                        item
                    });
                }
                out
            }
            Node::Binary(left, operator, right) => match operator {
                Operator::Add
                | Operator::Subtract
                | Operator::Multiply
                | Operator::Divide
                | Operator::Modulo => {
                    let single = |side: &Node, which: &str| -> JsonResult<f64> {
                        let items = self.unwrap(self.evaluate(side, current, last)?);
                        match items.as_slice() {
                            [item] => number_of(item),
                            _ => None,
                        }
                        .ok_or_else(|| {
                            JsonError::new(
                                "22038",
                                format!(
                                    "{which} operand of jsonpath operator {} is not a single numeric value",
                                    operator_symbol(*operator)
                                ),
                            )
                        })
                    };
                    let (a, b) = (single(left, "left")?, single(right, "right")?);
                    if matches!(operator, Operator::Divide | Operator::Modulo) && b == 0.0 {
                        return Err(JsonError::new("22012", "division by zero"));
                    }
                    vec![number_json(match operator {
                        Operator::Add => a + b,
                        Operator::Subtract => a - b,
                        Operator::Multiply => a * b,
                        Operator::Divide => a / b,
                        _ => a % b,
                    })?]
                }
                _ => vec![truth_json(self.predicate(node, current, last)?)],
            },
            Node::Not(_)
            | Node::Exists(_)
            | Node::IsUnknown(_)
            | Node::LikeRegex(..)
            | Node::StartsWith(..) => vec![truth_json(self.predicate(node, current, last)?)],
        })
    }

    fn access(
        &self,
        accessor: &Accessor,
        items: Vec<Json>,
        lenient: bool,
    ) -> JsonResult<Vec<Json>> {
        let strict = self.strict && !lenient;
        let mut out = Vec::new();
        match accessor {
            Accessor::Member(key) => {
                for item in self.unwrap(items) {
                    match item {
                        Json::Object(pairs) => {
                            match pairs.into_iter().find(|(name, _)| name == key) {
                                Some((_, value)) => out.push(value),
                                None if strict => {
                                    return Err(structural(
                                        "2203A",
                                        &format!("JSON object does not contain key \"{key}\""),
                                    ));
                                }
                                None => {}
                            }
                        }
                        _ if strict => {
                            return Err(structural(
                                "2203C",
                                "jsonpath member accessor can only be applied to an object",
                            ));
                        }
                        _ => {}
                    }
                }
            }
            Accessor::AnyMember => {
                for item in self.unwrap(items) {
                    match item {
                        Json::Object(pairs) => {
                            out.extend(pairs.into_iter().map(|(_, value)| value))
                        }
                        _ if strict => {
                            return Err(structural(
                                "2203C",
                                "jsonpath wildcard member accessor can only be applied to an object",
                            ));
                        }
                        _ => {}
                    }
                }
            }
            Accessor::AnyElement => {
                for item in items {
                    match item {
                        Json::Array(elements) => out.extend(elements),
                        _ if strict => {
                            return Err(structural(
                                "22039",
                                "jsonpath wildcard array accessor can only be applied to an array",
                            ));
                        }
                        other => out.push(other),
                    }
                }
            }
            Accessor::Elements(subscripts) => {
                for item in items {
                    let elements = match item {
                        Json::Array(elements) => elements,
                        _ if strict => {
                            return Err(structural(
                                "22039",
                                "jsonpath array accessor can only be applied to an array",
                            ));
                        }
                        other => vec![other],
                    };
                    let length = elements.len();
                    for (from, to) in subscripts {
                        let index = |node: &Node| -> JsonResult<i64> {
                            let values = self.evaluate(node, &Json::Null, Some(length))?;
                            match values.as_slice() {
                                [value] => number_of(value).map(|number| number.trunc() as i64),
                                _ => None,
                            }
                            .ok_or_else(|| {
                                JsonError::new(
                                    "22033",
                                    "jsonpath array subscript is not a single numeric value",
                                )
                            })
                        };
                        let start = index(from)?;
                        let end = match to {
                            Some(to) => index(to)?,
                            None => start,
                        };
                        if strict && (start < 0 || end >= length as i64 || start > end) {
                            return Err(structural(
                                "22033",
                                "jsonpath array subscript is out of bounds",
                            ));
                        }
                        let start = start.max(0);
                        let end = end.min(length as i64 - 1);
                        let mut position = start;
                        while position <= end {
                            out.push(elements[position as usize].clone());
                            position += 1;
                        }
                    }
                }
            }
            Accessor::Descendants(low, high) => {
                fn walk(item: &Json, level: u32, low: u32, high: u32, out: &mut Vec<Json>) {
                    if level >= low && level <= high {
                        out.push(item.clone());
                    }
                    if level >= high {
                        return;
                    }
                    match item {
                        Json::Object(pairs) => {
                            for (_, value) in pairs {
                                walk(value, level + 1, low, high, out);
                            }
                        }
                        Json::Array(elements) => {
                            for element in elements {
                                walk(element, level + 1, low, high, out);
                            }
                        }
                        _ => {}
                    }
                }
                for item in items {
                    walk(&item, 0, *low, *high, &mut out);
                }
            }
            Accessor::Filter(predicate) => {
                for item in self.unwrap(items) {
                    if self.predicate(predicate, &item, None)? == Truth::True {
                        out.push(item);
                    }
                }
            }
            Accessor::Method(method) => {
                let items = if method == "type" || method == "size" {
                    items
                } else {
                    self.unwrap(items)
                };
                for item in items {
                    out.push(self.method(method, item)?);
                }
            }
        }
        Ok(out)
    }

    fn method(&self, method: &str, item: Json) -> JsonResult<Json> {
        let not_numeric = || {
            JsonError::new(
                "22038",
                format!("jsonpath item method .{method}() can only be applied to a numeric value"),
            )
        };
        Ok(match method {
            "type" => Json::String(
                match &item {
                    Json::Null => "null",
                    Json::Bool(_) => "boolean",
                    Json::Number(_) => "number",
                    Json::String(_) => "string",
                    Json::Array(_) => "array",
                    Json::Object(_) => "object",
                }
                .to_string(),
            ),
            "size" => match &item {
                Json::Array(elements) => Json::integer(elements.len() as i64),
                _ if self.strict => {
                    return Err(JsonError::new(
                        "22039",
                        "jsonpath item method .size() can only be applied to an array",
                    ));
                }
                _ => Json::integer(1),
            },
            "double" => match &item {
                Json::Number(_) => number_json(number_of(&item).ok_or_else(not_numeric)?)?,
                Json::String(text) => number_json(text.trim().parse::<f64>().map_err(|_| {
                    JsonError::new(
                        "22038",
                        "jsonpath item method .double() can only be applied to a string or numeric value",
                    )
                })?)?,
                _ => {
                    return Err(JsonError::new(
                        "22038",
                        "jsonpath item method .double() can only be applied to a string or numeric value",
                    ));
                }
            },
            "abs" | "floor" | "ceiling" => {
                let value = number_of(&item).ok_or_else(not_numeric)?;
                number_json(match method {
                    "abs" => value.abs(),
                    "floor" => value.floor(),
                    _ => value.ceil(),
                })?
            }
            _ => match item {
                Json::Object(pairs) => Json::Array(
                    pairs
                        .into_iter()
                        .map(|(key, value)| {
                            Json::object(vec![
                                ("key".to_string(), Json::String(key)),
                                ("value".to_string(), value),
                                ("id".to_string(), Json::integer(0)),
                            ])
                        })
                        .collect(),
                ),
                _ => {
                    return Err(JsonError::new(
                        "2203C",
                        "jsonpath item method .keyvalue() can only be applied to an object",
                    ));
                }
            },
        })
    }

    /// A predicate's truth; errors inside comparisons make them unknown.
    #[recursive::recursive]
    fn predicate(&self, node: &Node, current: &Json, last: Option<usize>) -> JsonResult<Truth> {
        Ok(match node {
            Node::Binary(left, Operator::And, right) => {
                let left = self.predicate(left, current, last)?;
                if left == Truth::False {
                    return Ok(Truth::False);
                }
                match (left, self.predicate(right, current, last)?) {
                    (_, Truth::False) => Truth::False,
                    (Truth::True, Truth::True) => Truth::True,
                    _ => Truth::Unknown,
                }
            }
            Node::Binary(left, Operator::Or, right) => {
                let left = self.predicate(left, current, last)?;
                if left == Truth::True {
                    return Ok(Truth::True);
                }
                match (left, self.predicate(right, current, last)?) {
                    (_, Truth::True) => Truth::True,
                    (Truth::False, Truth::False) => Truth::False,
                    _ => Truth::Unknown,
                }
            }
            Node::Binary(left, operator, right) => {
                let (Ok(left), Ok(right)) = (
                    self.evaluate(left, current, last),
                    self.evaluate(right, current, last),
                ) else {
                    return Ok(Truth::Unknown);
                };
                let (left, right) = (self.unwrap(left), self.unwrap(right));
                let mut unknown = false;
                for a in &left {
                    for b in &right {
                        match compare(a, b, *operator) {
                            Some(true) => {
                                if !self.strict {
                                    return Ok(Truth::True);
                                }
                                return Ok(if unknown { Truth::Unknown } else { Truth::True });
                            }
                            Some(false) => {}
                            None => unknown = true,
                        }
                    }
                }
                if unknown {
                    Truth::Unknown
                } else {
                    Truth::False
                }
            }
            Node::Not(inner) => match self.predicate(inner, current, last)? {
                Truth::True => Truth::False,
                Truth::False => Truth::True,
                Truth::Unknown => Truth::Unknown,
            },
            Node::IsUnknown(inner) => {
                if self.predicate(inner, current, last)? == Truth::Unknown {
                    Truth::True
                } else {
                    Truth::False
                }
            }
            Node::Exists(inner) => match self.evaluate(inner, current, last) {
                Ok(items) if !items.is_empty() => Truth::True,
                Ok(_) => Truth::False,
                Err(_) => Truth::Unknown,
            },
            Node::LikeRegex(inner, pattern, flags) => {
                let Ok(items) = self.evaluate(inner, current, last) else {
                    return Ok(Truth::Unknown);
                };
                let expression = regex_for(pattern, flags)?;
                let mut unknown = false;
                for item in self.unwrap(items) {
                    match item {
                        Json::String(text) if expression.is_match(&text) => return Ok(Truth::True),
                        Json::String(_) => {}
                        _ => unknown = true,
                    }
                }
                if unknown {
                    Truth::Unknown
                } else {
                    Truth::False
                }
            }
            Node::StartsWith(inner, prefix) => {
                let (Ok(items), Ok(prefixes)) = (
                    self.evaluate(inner, current, last),
                    self.evaluate(prefix, current, last),
                ) else {
                    return Ok(Truth::Unknown);
                };
                let Some(Json::String(prefix)) = prefixes.first() else {
                    return Ok(Truth::Unknown);
                };
                let mut unknown = false;
                for item in self.unwrap(items) {
                    match item {
                        Json::String(text) if text.starts_with(prefix.as_str()) => {
                            return Ok(Truth::True);
                        }
                        Json::String(_) => {}
                        _ => unknown = true,
                    }
                }
                if unknown {
                    Truth::Unknown
                } else {
                    Truth::False
                }
            }
            other => {
                // A non-predicate used as one: its single boolean value.
                match self.evaluate(other, current, last)?.as_slice() {
                    [Json::Bool(true)] => Truth::True,
                    [Json::Bool(false)] => Truth::False,
                    _ => Truth::Unknown,
                }
            }
        })
    }
}

fn truth_json(truth: Truth) -> Json {
    match truth {
        Truth::True => Json::Bool(true),
        Truth::False => Json::Bool(false),
        Truth::Unknown => Json::Null,
    }
}

fn operator_symbol(operator: Operator) -> &'static str {
    match operator {
        Operator::Add => "+",
        Operator::Subtract => "-",
        Operator::Multiply => "*",
        Operator::Divide => "/",
        Operator::Modulo => "%",
        _ => "?",
    }
}

/// One comparison of two items: `None` when they cannot be compared (unknown).
fn compare(left: &Json, right: &Json, operator: Operator) -> Option<bool> {
    let order = match (left, right) {
        (Json::Null, Json::Null) => Ordering::Equal,
        (Json::Null, _) | (_, Json::Null) => {
            return match operator {
                Operator::Equal => Some(false),
                Operator::NotEqual => Some(true),
                _ => Some(false),
            };
        }
        (Json::Number(a), Json::Number(b)) => compare_numbers(a, b),
        (Json::String(a), Json::String(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Json::Bool(a), Json::Bool(b)) => a.cmp(b),
        _ => return None,
    };
    Some(match operator {
        Operator::Equal => order == Ordering::Equal,
        Operator::NotEqual => order != Ordering::Equal,
        Operator::Less => order == Ordering::Less,
        Operator::LessEqual => order != Ordering::Greater,
        Operator::Greater => order == Ordering::Greater,
        _ => order != Ordering::Less,
    })
}

/// A `like_regex` pattern with its flags (`i` case-insensitive, `s` dot matches newline, `m`
/// multi-line, `x` extended, `q` the pattern is literal).
fn regex_for(pattern: &str, flags: &str) -> JsonResult<regex::Regex> {
    let mut builder = if flags.contains('q') {
        regex::RegexBuilder::new(&regex::escape(pattern))
    } else {
        regex::RegexBuilder::new(pattern)
    };
    for flag in flags.chars() {
        match flag {
            'i' => {
                builder.case_insensitive(true);
            }
            's' => {
                builder.dot_matches_new_line(true);
            }
            'm' => {
                builder.multi_line(true);
            }
            'x' => {
                builder.ignore_whitespace(true);
            }
            'q' => {}
            other => {
                return Err(JsonError::new(
                    "42601",
                    format!(
                        "invalid input syntax for type jsonpath: unrecognized flag character \"{other}\" in LIKE_REGEX predicate"
                    ),
                ));
            }
        }
    }
    builder
        .build()
        .map_err(|error| JsonError::new("2201B", format!("invalid regular expression: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonb::parse;

    fn query(path: &str, document: &str) -> Vec<String> {
        JsonPath::parse(path)
            .expect("valid path")
            .query(
                &parse(document).expect("valid json"),
                &Json::Object(Vec::new()),
            )
            .expect("evaluates")
            .iter()
            .map(Json::to_text)
            .collect()
    }

    #[test]
    fn accessors_filters_and_methods() {
        let document = r#"{"a": [{"b": 1}, {"b": 5}, {"c": 2}], "s": "hello", "n": 2.5}"#;
        assert_eq!(query("$.a[*].b", document), ["1", "5"]);
        assert_eq!(query("$.a.b", document), ["1", "5"]);
        assert_eq!(query("$.a[*] ? (@.b > 2)", document), [r#"{"b": 5}"#]);
        assert_eq!(query("$.a[last].c", document), ["2"]);
        assert_eq!(query("$.a[0 to 1].b", document), ["1", "5"]);
        assert_eq!(query("$.a.size()", document), ["3"]);
        assert_eq!(query("$.n + 1", document), ["3.5"]);
        assert_eq!(query("$.n.floor()", document), ["2"]);
        assert_eq!(query("$.s.type()", document), ["\"string\""]);
        assert_eq!(query("$.a[*].b == 5", document), ["true"]);
        assert_eq!(query("$.s starts with \"he\"", document), ["true"]);
        assert_eq!(
            query("$.s like_regex \"^H\" flag \"i\"", document),
            ["true"]
        );
        assert_eq!(query("$.s == 1", document), ["null"]);
        // As PostgreSQL's documentation warns, lax `.**` reaches array elements twice (once through
        // the array's automatic unwrapping).
        assert_eq!(query("$.**.b", document), ["1", "5", "1", "5"]);
        assert_eq!(query("strict $.**.b", document), ["1", "5"]);
        assert!(query("$.missing", document).is_empty());
    }

    #[test]
    fn strict_mode_reports_structural_errors() {
        let path = JsonPath::parse("strict $.a.b").expect("valid path");
        let error = path
            .query(
                &parse(r#"{"a": [1]}"#).expect("json"),
                &Json::Object(Vec::new()),
            )
            .expect_err("not an object");
        assert_eq!(error.code, "2203C");
        assert_eq!(
            JsonPath::parse("$.a +").expect_err("incomplete").message,
            "syntax error at end of jsonpath input"
        );
    }

    #[test]
    fn deep_paths_do_not_overflow_a_small_stack() {
        let worker = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| {
                let path = format!("{}$.a{}", "(".repeat(2000), ")".repeat(2000));
                let parsed = JsonPath::parse(&path).expect("deep path");
                let document = parse(r#"{"a": 1}"#).expect("json");
                let items = parsed
                    .query(&document, &Json::Object(Vec::new()))
                    .expect("query");
                assert_eq!(items, vec![Json::integer(1)]);
            })
            .expect("thread");
        worker.join().expect("no stack overflow");
    }

    #[test]
    fn match_needs_one_boolean() {
        let document = parse(r#"{"a": 1}"#).expect("json");
        let empty = Json::Object(Vec::new());
        let path = JsonPath::parse("$.a == 1").expect("path");
        assert_eq!(path.matches(&document, &empty).expect("match"), Some(true));
        let path = JsonPath::parse("$.a").expect("path");
        assert_eq!(
            path.matches(&document, &empty)
                .expect_err("not boolean")
                .code,
            "22038"
        );
        let variables = parse(r#"{"x": 1}"#).expect("json");
        let path = JsonPath::parse("$.a == $x").expect("path");
        assert_eq!(
            path.exists(&document, &variables).expect("exists"),
            Some(true)
        );
    }
}
