//! serde over [`Node`]: typed structs from the positioned YAML tree.
//!
//! Every error is stamped with the span and key path of the innermost node
//! that produced it, so `unknown field`, `invalid type` and custom parse
//! errors all point at the exact line and column.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde::Deserialize;

use super::yaml::{Kind, Node, Span};

/// A deserialization error with the position and key path where it arose.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    /// Position of the offending node.
    pub span: Span,
    /// Key path of the offending node.
    pub path: String,
    /// What went wrong.
    pub message: String,
    located: bool,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            span: Span::default(),
            path: String::new(),
            message: msg.to_string(),
            located: false,
        }
    }
}

/// Deserializes `node`, found at `path`, into `T`.
pub fn from_node<T: DeserializeOwned>(node: &Node, path: &str) -> Result<T, DeError> {
    T::deserialize(NodeDe {
        node,
        path: path.to_string(),
    })
}

/// The serde name under which a raw [`Node`] is handed through unchanged.
const NODE_TOKEN: &str = "$okrd::config::yaml::Node";

thread_local! {
    static STASH: RefCell<Option<Node>> = const { RefCell::new(None) };
}

/// A field typed `Node` receives the subtree as is, for the loader to
/// interpret with full position information.
impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a YAML node")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                STASH
                    .with(|s| s.borrow_mut().take())
                    .ok_or_else(|| E::custom("a YAML node can only be read from okrd's YAML tree"))
            }
        }
        d.deserialize_newtype_struct(NODE_TOKEN, V)
    }
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
}

impl<'a> NodeDe<'a> {
    fn locate(&self, mut e: DeError) -> DeError {
        if !e.located {
            e.span = self.node.span;
            e.path = self.path.clone();
            e.located = true;
        }
        e
    }

    fn unexpected(&self) -> de::Unexpected<'_> {
        match &self.node.kind {
            Kind::Null => de::Unexpected::Unit,
            Kind::Scalar { text, quoted: true } => de::Unexpected::Str(text),
            Kind::Scalar {
                text,
                quoted: false,
            } => match plain_scalar(text) {
                Plain::Bool(b) => de::Unexpected::Bool(b),
                Plain::Int(i) => de::Unexpected::Signed(i),
                Plain::Float(f) => de::Unexpected::Float(f),
                Plain::Str => de::Unexpected::Str(text),
            },
            Kind::Seq(_) => de::Unexpected::Seq,
            Kind::Map(_) => de::Unexpected::Map,
        }
    }

    fn invalid(&self, exp: &dyn de::Expected) -> DeError {
        self.locate(de::Error::invalid_type(self.unexpected(), exp))
    }

    fn child(&self, node: &'a Node, segment: Segment<'_>) -> NodeDe<'a> {
        let path = match segment {
            Segment::Key(k) if self.path.is_empty() => k.to_string(),
            Segment::Key(k) => format!("{}.{k}", self.path),
            Segment::Index(i) => format!("{}[{i}]", self.path),
        };
        NodeDe { node, path }
    }
}

enum Segment<'k> {
    Key(&'k str),
    Index(usize),
}

enum Plain {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str,
}

/// Types a plain scalar by the YAML 1.2 core schema.
fn plain_scalar(text: &str) -> Plain {
    match text {
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        _ => {}
    }
    let numeric =
        text.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.');
    if !numeric {
        return Plain::Str;
    }
    if let Ok(i) = text.parse::<i64>() {
        return Plain::Int(i);
    }
    match text.parse::<f64>() {
        // Rust also parses "inf"/"nan"; those were handled above in YAML's spelling.
        Ok(f) if f.is_finite() => Plain::Float(f),
        _ => Plain::Str,
    }
}

macro_rules! forward_to_any {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            self.deserialize_any(v)
        })*
    };
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.kind {
            Kind::Null => v.visit_unit(),
            Kind::Scalar { text, quoted: true } => v.visit_str(text),
            Kind::Scalar {
                text,
                quoted: false,
            } => match plain_scalar(text) {
                Plain::Bool(b) => v.visit_bool(b),
                Plain::Int(i) => v.visit_i64(i),
                Plain::Float(f) => v.visit_f64(f),
                Plain::Str => v.visit_str(text),
            },
            Kind::Seq(items) => v.visit_seq(Seq {
                de: &self,
                items,
                next: 0,
            }),
            Kind::Map(entries) => v.visit_map(Map {
                de: &self,
                entries,
                next: 0,
                value: None,
            }),
        };
        r.map_err(|e| self.locate(e))
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            // Plain scalars read as strings are taken as written: `code: 404`
            // is the label value "404".
            Kind::Scalar { text, .. } => v.visit_str(text).map_err(|e| self.locate(e)),
            _ => Err(self.invalid(&v)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            v.visit_none()
        } else {
            let span = self.node.span;
            let path = self.path.clone();
            v.visit_some(self).map_err(|mut e| {
                if !e.located {
                    e.span = span;
                    e.path = path;
                    e.located = true;
                }
                e
            })
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        if name == NODE_TOKEN {
            STASH.with(|s| *s.borrow_mut() = Some(self.node.clone()));
            return v.visit_unit();
        }
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Seq(_) => self.deserialize_any(v),
            _ => Err(self.invalid(&v)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Map(_) => self.deserialize_any(v),
            _ => Err(self.invalid(&v)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Scalar { text, .. } => {
                let unit: de::value::StrDeserializer<'_, DeError> =
                    text.as_str().into_deserializer();
                v.visit_enum(unit).map_err(|e| self.locate(e))
            }
            _ => Err(self.invalid(&v)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }

    forward_to_any! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_bytes
        deserialize_byte_buf deserialize_unit
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(v)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }
}

struct Seq<'d, 'a> {
    de: &'d NodeDe<'a>,
    items: &'a [Node],
    next: usize,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.get(self.next) else {
            return Ok(None);
        };
        let child = self.de.child(item, Segment::Index(self.next));
        self.next += 1;
        let (span, path) = (child.node.span, child.path.clone());
        seed.deserialize(child)
            .map(Some)
            .map_err(|e| relocate(e, span, path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.next)
    }
}

struct Map<'d, 'a> {
    de: &'d NodeDe<'a>,
    entries: &'a [(Node, Node)],
    next: usize,
    value: Option<NodeDe<'a>>,
}

impl<'de> de::MapAccess<'de> for Map<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        let name = key.as_str().unwrap_or("?");
        let key_de = self.de.child(key, Segment::Key(name));
        let (span, path) = (key.span, key_de.path.clone());
        self.value = Some(self.de.child(value, Segment::Key(name)));
        seed.deserialize(key_de)
            .map(Some)
            .map_err(|e| relocate(e, span, path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let value = self.value.take().expect("next_value after next_key");
        let (span, path) = (value.node.span, value.path.clone());
        seed.deserialize(value).map_err(|e| relocate(e, span, path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.next)
    }
}

fn relocate(mut e: DeError, span: Span, path: String) -> DeError {
    if !e.located {
        e.span = span;
        e.path = path;
        e.located = true;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        x: f64,
        #[serde(default)]
        tags: BTreeMap<String, String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        items: Vec<Inner>,
        #[serde(default)]
        flag: Option<bool>,
    }

    fn load(text: &str) -> Result<Outer, DeError> {
        from_node(&parse(text).unwrap()[0], "")
    }

    #[test]
    fn reads_typed_values() {
        let o = load("name: a\nitems:\n  - x: 1\n    tags: {code: 404}\n  - x: 2.5\nflag: true\n")
            .unwrap();
        assert_eq!(o.items[0].x, 1.0);
        assert_eq!(o.items[0].tags["code"], "404");
        assert_eq!(o.flag, Some(true));
    }

    #[test]
    fn unknown_field_points_at_the_key() {
        let e = load("name: a\nitems:\n  - x: 1\n    colour: red\n").unwrap_err();
        assert_eq!((e.span.line, e.span.col), (4, 5));
        assert_eq!(e.path, "items[0].colour");
        assert!(
            e.message.contains("unknown field `colour`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let e = load("name: a\nitems:\n  - x: 1\n  - x: lots\n").unwrap_err();
        assert_eq!(
            (e.span.line, e.span.col, e.path.as_str()),
            (4, 8, "items[1].x")
        );
        assert!(e.message.contains("expected f64"), "{}", e.message);
    }

    #[test]
    fn quoted_numbers_are_strings() {
        let e = load("name: a\nitems:\n  - x: '1'\n").unwrap_err();
        assert_eq!(e.path, "items[0].x");
    }

    #[test]
    fn missing_field_points_at_the_mapping() {
        let e = load("name: a\nitems:\n  - tags: {}\n").unwrap_err();
        assert_eq!((e.span.line, e.path.as_str()), (3, "items[0]"));
        assert!(e.message.contains("missing field `x`"));
    }

    #[test]
    fn nodes_pass_through() {
        #[derive(Deserialize)]
        struct Raw {
            rest: Vec<Node>,
        }
        let doc = &parse("rest:\n  - a: 1\n  - [2]\n").unwrap()[0];
        let raw: Raw = from_node(doc, "").unwrap();
        assert_eq!(raw.rest[1].span.line, 3);
        assert!(raw.rest[0].get("a").is_some());
    }
}
