//! A YAML tree that remembers where every node came from.
//!
//! The config layer needs line and column for every error, and it needs them
//! for errors found after parsing (a duplicate id, an unknown team), so it
//! parses YAML into [`Node`]s that carry a [`Span`], applies `${VAR}`
//! expansion and `OKRD_*` overrides on the tree, and only then turns nodes
//! into typed structs (see `de.rs`).

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where a node starts: 1-based line and column. Line 0 marks a value that
/// came from the environment (`OKRD_*` overrides) rather than from a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span {
    /// 1-based line; 0 for values set through the environment.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
}

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub span: Span,
    /// The value.
    pub kind: Kind,
}

/// The shape of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `~`, `null`, or nothing at all.
    Null,
    /// A scalar. `quoted` scalars are always strings; plain ones are typed
    /// by the YAML 1.2 core schema when a number or bool is asked for.
    Scalar {
        /// The scalar's text after unescaping.
        text: String,
        /// Whether it was written quoted or as a block scalar.
        quoted: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys in document order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// A node with no position (values injected by overrides).
    pub fn new(kind: Kind, span: Span) -> Self {
        Self { span, kind }
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The items of a sequence (nothing for other kinds).
    pub fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Seq(items) => items,
            _ => &[],
        }
    }

    /// The text of a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this is a null node.
    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }
}

/// A YAML syntax error, positioned.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub span: Span,
    /// The parser's description.
    pub message: String,
}

/// Parses every document of a YAML stream. An empty stream is one null
/// document.
pub fn parse(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| SyntaxError {
        span: span_of(*e.marker()),
        message: e.info().to_string(),
    })?;
    if let Some(message) = builder.error {
        return Err(message);
    }
    if builder.docs.is_empty() {
        builder
            .docs
            .push(Node::new(Kind::Null, Span { line: 1, col: 1 }));
    }
    Ok(builder.docs)
}

fn span_of(m: Marker) -> Span {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Span {
        line: m.line() as u32,
        col: m.col() as u32 + 1,
    }
}

#[derive(Default)]
struct Builder {
    docs: Vec<Node>,
    /// Open collections; a map's pending key waits as its last odd entry.
    stack: Vec<(Node, Option<Node>)>,
    anchors: Vec<(usize, Node)>,
    anchor_of_open: Vec<usize>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.push((anchor, node.clone()));
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some((parent, pending_key)) => match &mut parent.kind {
                Kind::Seq(items) => items.push(node),
                Kind::Map(entries) => match pending_key.take() {
                    None => *pending_key = Some(node),
                    Some(key) => {
                        if let Some(k) = key.as_str() {
                            if entries.iter().any(|(e, _)| e.as_str() == Some(k))
                                && self.error.is_none()
                            {
                                self.error = Some(SyntaxError {
                                    span: key.span,
                                    message: format!("duplicate key {k:?}"),
                                });
                            }
                        }
                        entries.push((key, node));
                    }
                },
                _ => unreachable!("only collections are pushed on the stack"),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let span = span_of(mark);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let quoted =
                    style != TScalarStyle::Plain || tag.as_ref().is_some_and(|t| t.suffix == "str");
                let is_null =
                    !quoted && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL");
                let kind = if is_null {
                    Kind::Null
                } else {
                    Kind::Scalar { text, quoted }
                };
                self.push_value(Node::new(kind, span), anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.anchor_of_open.push(anchor);
                self.stack
                    .push((Node::new(Kind::Seq(Vec::new()), span), None));
            }
            Event::MappingStart(anchor, _) => {
                self.anchor_of_open.push(anchor);
                self.stack
                    .push((Node::new(Kind::Map(Vec::new()), span), None));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (mut node, _) = self.stack.pop().expect("balanced events");
                // The parser marks a block mapping after its first key; a
                // mapping is where its first key is.
                if let Kind::Map(entries) = &node.kind {
                    if let Some((first_key, _)) = entries.first() {
                        node.span = node.span.min(first_key.span);
                    }
                }
                let anchor = self.anchor_of_open.pop().unwrap_or(0);
                self.push_value(node, anchor);
            }
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| n.clone())
                    .unwrap_or(Node::new(Kind::Null, span));
                self.push_value(node, 0);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_values() {
        let docs = parse("a: 1\nb:\n  - x\n  - 'y'\n").unwrap();
        let root = &docs[0];
        assert_eq!(root.get("a").unwrap().span, Span { line: 1, col: 4 });
        let b = root.get("b").unwrap();
        assert_eq!(b.items()[1].span, Span { line: 4, col: 5 });
        assert_eq!(
            b.items()[1].kind,
            Kind::Scalar {
                text: "y".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn empty_and_null() {
        assert!(parse("").unwrap()[0].is_null());
        assert!(parse("a: ~").unwrap()[0].get("a").unwrap().is_null());
        assert!(parse("a:").unwrap()[0].get("a").unwrap().is_null());
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.span.line, 2);
        assert!(e.message.contains("duplicate key"));
    }

    #[test]
    fn syntax_errors_are_positioned() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.span.line >= 1, "{e:?}");
    }
}
