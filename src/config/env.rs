//! The environment's part in config: `${VAR}` / `${VAR:-fallback}` in any
//! string value, and `OKRD_<PATH>` overrides of service-config scalars.

use super::error::Diagnostics;
use super::yaml::{Kind, Node, Span};
use super::Env;

/// Expands `${VAR}` and `${VAR:-fallback}` in every scalar under `node`
/// (`$${` is a literal `${`). An unset VAR without fallback is an error; a
/// mapping entry whose value expands to nothing is removed, so it counts as
/// absent. With `allowed`, only the variables it lists may be read (a
/// connector registered over the API reads the `http.connector_env`
/// allowlist); the check is on each parsed, decoded value.
pub(super) fn expand(
    node: &mut Node,
    path: &str,
    env: &Env,
    allowed: Option<&[String]>,
    diags: &mut Diagnostics,
) {
    match &mut node.kind {
        Kind::Scalar { text, .. } => {
            if text.contains('$') {
                match substitute(text, env, allowed) {
                    Ok(expanded) => *text = expanded,
                    Err(e) => diags.error(node, path, e),
                }
            }
        }
        Kind::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand(item, &format!("{path}[{i}]"), env, allowed, diags);
            }
        }
        Kind::Map(entries) => {
            entries.retain_mut(|(key, value)| {
                let name = key.as_str().unwrap_or("?");
                let child = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                let had_reference = value.as_str().is_some_and(|t| t.contains("${"));
                expand(value, &child, env, allowed, diags);
                !(had_reference && value.as_str() == Some(""))
            });
        }
        Kind::Null => {}
    }
}

fn substitute(text: &str, env: &Env, allowed: Option<&[String]>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated ${{ in {text:?}"))?;
            let inner = &after[..end];
            let (name, fallback) = match inner.split_once(":-") {
                Some((n, f)) => (n, Some(f)),
                None => (inner, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!("invalid variable name {name:?} in {text:?}"));
            }
            if let Some(list) = allowed.filter(|list| !list.iter().any(|v| v == name)) {
                return Err(format!(
                    "${{{name}}}: a connector registered over the API may read only the \
                     environment variables listed in http.connector_env ({}), and {name} is not one",
                    if list.is_empty() { "none are".to_string() } else { list.join(", ") }
                ));
            }
            match (env.get(name), fallback) {
                (Some(v), _) => {
                    crate::secrets::remember(v, &format!("${{{name}}}"));
                    out.push_str(v);
                }
                (None, Some(f)) => out.push_str(f),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (use ${{{name}:-fallback}} for a default)"
                    ))
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Applies `OKRD_A__B__C=value` as `a.b.c: value` for variables whose first
/// segment is one of `sections`. Values are typed like plain YAML scalars;
/// an empty value removes the key.
pub(super) fn apply_overrides(
    root: &mut Node,
    env: &Env,
    sections: &[&str],
    diags: &mut Diagnostics,
) {
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("OKRD_") else {
            continue;
        };
        let segments: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if !sections.contains(&segments[0].as_str()) || segments.iter().any(String::is_empty) {
            continue;
        }
        if let Err(e) = set(root, &segments, value) {
            diags.error_at(Span::default(), "", format!("{var}: {e}"));
        }
    }
}

fn set(root: &mut Node, segments: &[String], value: &str) -> Result<(), String> {
    let env_span = Span::default();
    if root.is_null() {
        root.kind = Kind::Map(Vec::new());
    }
    let (last, parents) = segments.split_last().expect("at least one segment");
    let mut node = root;
    for seg in parents {
        node = child_mut(node, seg, true)?.expect("created");
        if node.is_null() {
            node.kind = Kind::Map(Vec::new());
        }
    }
    match &mut node.kind {
        Kind::Map(entries) => {
            entries.retain(|(k, _)| k.as_str() != Some(last));
            if !value.is_empty() {
                let key = Node::new(
                    Kind::Scalar {
                        text: last.clone(),
                        quoted: true,
                    },
                    env_span,
                );
                let v = Node::new(
                    Kind::Scalar {
                        text: value.to_string(),
                        quoted: false,
                    },
                    env_span,
                );
                entries.push((key, v));
            }
            Ok(())
        }
        Kind::Seq(_) => {
            let slot =
                child_mut(node, last, false)?.ok_or_else(|| format!("no list item {last}"))?;
            *slot = Node::new(
                Kind::Scalar {
                    text: value.to_string(),
                    quoted: false,
                },
                env_span,
            );
            Ok(())
        }
        _ => Err("cannot set a key below a plain value".into()),
    }
}

fn child_mut<'n>(
    node: &'n mut Node,
    seg: &str,
    create: bool,
) -> Result<Option<&'n mut Node>, String> {
    match &mut node.kind {
        Kind::Map(entries) => {
            let pos = entries.iter().position(|(k, _)| k.as_str() == Some(seg));
            let pos = match pos {
                Some(p) => p,
                None if create => {
                    let span = Span::default();
                    entries.push((
                        Node::new(
                            Kind::Scalar {
                                text: seg.to_string(),
                                quoted: true,
                            },
                            span,
                        ),
                        Node::new(Kind::Null, span),
                    ));
                    entries.len() - 1
                }
                None => return Ok(None),
            };
            Ok(Some(&mut entries[pos].1))
        }
        Kind::Seq(items) => {
            let i: usize = seg
                .parse()
                .map_err(|_| format!("{seg:?} is not a list index"))?;
            items
                .get_mut(i)
                .map(Some)
                .ok_or_else(|| format!("no list item {i}"))
        }
        _ => Err("cannot set a key below a plain value".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitution() {
        let e = env(&[("A", "x"), ("EMPTY", "")]);
        assert_eq!(substitute("a${A}b", &e, None).unwrap(), "axb");
        assert_eq!(substitute("${B:-fb}", &e, None).unwrap(), "fb");
        assert_eq!(substitute("${EMPTY:-fb}", &e, None).unwrap(), "");
        assert_eq!(
            substitute("$${A} costs $5", &e, None).unwrap(),
            "${A} costs $5"
        );
        assert!(substitute("${B}", &e, None)
            .unwrap_err()
            .contains("B is not set"));
        assert!(substitute("${A", &e, None).is_err());
        // An allowlist is checked on the variable's name, fallback or not.
        let only_a = ["A".to_string()];
        assert_eq!(substitute("${A}", &e, Some(&only_a)).unwrap(), "x");
        for refused in ["${HOME}", "${HOME:-x}", "a$${A}${PATH}"] {
            let err = substitute(refused, &e, Some(&only_a)).unwrap_err();
            assert!(err.contains("http.connector_env"), "{refused}: {err}");
        }
    }

    #[test]
    fn empty_expansion_removes_the_key() {
        let mut doc = parse("http:\n  token: ${T:-}\n  listen: ${L:-0.0.0.0:1}\n")
            .unwrap()
            .remove(0);
        let mut d = Diagnostics::new();
        expand(&mut doc, "", &env(&[]), None, &mut d);
        let http = doc.get("http").unwrap();
        assert!(http.get("token").is_none());
        assert_eq!(http.get("listen").unwrap().as_str(), Some("0.0.0.0:1"));
    }

    #[test]
    fn unset_variable_is_positioned() {
        let mut doc = parse("a:\n  b: x${NOPE}\n").unwrap().remove(0);
        let mut d = Diagnostics::new();
        d.set_file("f.yaml");
        expand(&mut doc, "", &env(&[]), None, &mut d);
        let out = d.into_sorted();
        assert_eq!(out[0].to_string(), "f.yaml:2:6: error: a.b: environment variable NOPE is not set (use ${NOPE:-fallback} for a default)");
    }

    #[test]
    fn overrides_set_nested_scalars() {
        let mut doc = parse("http:\n  listen: 1.2.3.4:5\n").unwrap().remove(0);
        let mut d = Diagnostics::new();
        let e = env(&[
            ("OKRD_HTTP__LISTEN", "0.0.0.0:9"),
            ("OKRD_DATABASE__URL", "postgres://x/y"),
            ("OKRD_API_TOKEN", "not an override"),
        ]);
        apply_overrides(&mut doc, &e, &["http", "database"], &mut d);
        assert_eq!(d.error_count(), 0);
        assert_eq!(
            doc.get("http").unwrap().get("listen").unwrap().as_str(),
            Some("0.0.0.0:9")
        );
        assert_eq!(
            doc.get("database").unwrap().get("url").unwrap().as_str(),
            Some("postgres://x/y")
        );
        assert!(doc.get("api_token").is_none());
    }
}
