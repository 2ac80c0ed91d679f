//! JSON for point objects, read so that a key written twice is not lost:
//! serde_json's own tree keeps the last copy silently. An object with a
//! repeated key gets the entry [`DUPLICATE`] listing the repeated keys, and
//! [`point_from_json`](super::point_from_json) rejects it with its reason
//! (`invalid_labels` for a label written twice).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The key under which an object lists its repeated keys. No JSON point
/// field or label name can be this (it is not a valid name).
pub const DUPLICATE: &str = "\u{0}duplicate";

/// Parses JSON as `serde_json::from_slice` does, except that repeated
/// keys are listed under [`DUPLICATE`] instead of dropped.
pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Tree.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// The keys `object` had twice, if any.
pub fn duplicates(object: &Map<String, Value>) -> Option<Vec<&str>> {
    let list = object.get(DUPLICATE)?.as_array()?;
    Some(list.iter().filter_map(Value::as_str).collect())
}

struct Tree;

impl<'de> DeserializeSeed<'de> for Tree {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tree {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element_seed(Tree)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        let mut repeated = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Tree)?;
            if object.insert(key.clone(), value).is_some() {
                repeated.push(Value::String(key));
            }
        }
        if !repeated.is_empty() {
            object.insert(DUPLICATE.to_string(), Value::Array(repeated));
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_serde_json_but_lists_repeated_keys() {
        let text = br#"{"a": [1, -2, 2.5, "x", null, true], "b": {"c": {}}}"#;
        assert_eq!(
            parse(text).unwrap(),
            serde_json::from_slice::<Value>(text).unwrap()
        );
        let v = parse(br#"{"l": {"k": "1", "k": "2", "j": "3"}}"#).unwrap();
        let labels = v["l"].as_object().unwrap();
        assert_eq!(duplicates(labels), Some(vec!["k"]));
        assert_eq!(labels["k"], "2");
        assert!(parse(b"{} x").is_err());
    }
}
