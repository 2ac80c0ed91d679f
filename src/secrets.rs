//! What okrd must never show: the values `${VAR}` read from the
//! environment, the API token, and the passwords in URLs. Every log line
//! passes through [`RedactingWriter`], and every connector error okrd
//! records or answers passes through [`redact`], which replaces each known
//! secret (raw or percent-encoded) with its placeholder (`${VAR}`) and any
//! URL's password with `***`.
//!
//! The set of secrets is process-wide: it grows as configs and API
//! connectors are loaded (config loading [`remember`]s each value it
//! substitutes), and is never shrunk, so a value once secret stays hidden.

use std::io::{self, Write};
use std::sync::{Arc, LazyLock, RwLock};

use tracing_subscriber::fmt::MakeWriter;

/// Values shorter than this are not treated as secrets: replacing every
/// occurrence of a two-letter value would garble messages, and a secret
/// that short protects nothing.
pub const MIN_SECRET_BYTES: usize = 4;

/// Known secrets, longest first, each with its placeholder.
#[derive(Debug, Default)]
struct Known {
    pairs: Vec<(String, String)>,
}

static KNOWN: LazyLock<RwLock<Arc<Known>>> = LazyLock::new(Default::default);

/// Remembers `value` as a secret shown as `placeholder`.
pub fn remember(value: &str, placeholder: &str) {
    if value.len() < MIN_SECRET_BYTES {
        return;
    }
    let encoded = percent_encode(value);
    let known = KNOWN.read().unwrap_or_else(|e| e.into_inner()).clone();
    if known.pairs.iter().any(|(v, _)| v == value) {
        return;
    }
    let mut pairs = known.pairs.clone();
    pairs.push((value.to_string(), placeholder.to_string()));
    if encoded != value {
        pairs.push((encoded, placeholder.to_string()));
    }
    pairs.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    *KNOWN.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Known { pairs });
}

/// `text` with every known secret replaced by its placeholder and every
/// URL's password by `***`.
pub fn redact(text: &str) -> String {
    let known = KNOWN.read().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out = hide_url_passwords(text);
    for (value, placeholder) in &known.pairs {
        if out.contains(value.as_str()) {
            out = out.replace(value.as_str(), placeholder);
        }
    }
    out
}

/// Replaces the password of each `scheme://user:password@host` in `text`.
fn hide_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '>') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `value` as it appears percent-encoded in a URL (RFC 3986 unreserved
/// characters kept).
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A log writer that redacts each line before it reaches `W` (stderr).
/// `tracing`'s formatter writes an event in one call, so a secret is never
/// split across two writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingWriter;

impl<'a> MakeWriter<'a> for RedactingWriter {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

/// One event's bytes, redacted and written to stderr when dropped.
pub struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = io::stderr().lock().write_all(redact(&text).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_url_passwords_are_replaced() {
        remember("s3cr3t/value", "${TEST_SECRET}");
        remember("ab", "${SHORT}");
        let text = "GET https://api.example.com/x?key=s3cr3t%2Fvalue failed; \
                    postgres://okrd:hunter22@db:5432/okrd; raw s3cr3t/value; ab";
        assert_eq!(
            redact(text),
            "GET https://api.example.com/x?key=${TEST_SECRET} failed; \
             postgres://okrd:***@db:5432/okrd; raw ${TEST_SECRET}; ab"
        );
        assert_eq!(redact("http://user@host/"), "http://user@host/");
    }
}
