//! A fast reader for SPEC point objects written plainly: no JSON tree is
//! built, strings are borrowed from the payload, and every point passes the
//! same checks as [`point_from_json`](super::point_from_json). Anything it
//! does not take (escapes in strings, a bad point, another shape) is `None`,
//! and the caller's general path then decides and explains a rejection.
//! Used by the Kafka connector and `POST /api/v1/points`.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::{limits, Interner};
use crate::model::{parse_timestamp, unix_seconds, Labels, Point, SeriesKey, Timestamp};

/// Reads points, remembering the previous one's series: a batch's points
/// mostly come in runs of one series, whose key is then not built again.
#[derive(Debug, Default)]
pub struct FastReader {
    last: Option<Arc<SeriesKey>>,
}

impl FastReader {
    /// The fast path, for messages that are SPEC's point objects (or an
    /// array of them) written plainly: read without building a JSON tree,
    /// with strings borrowed from the payload, and checked by the same rules
    /// as [`point_from_json`]. `None` for anything else (escapes in
    /// strings, a bad point, another shape): the general path then decides,
    /// and explains a rejection. `out` is left as it was on `None`.
    pub fn read_payload(
        &mut self,
        payload: &[u8],
        interner: &mut Interner,
        out: &mut Vec<Point>,
    ) -> Option<usize> {
        match payload.iter().find(|b| !b.is_ascii_whitespace())? {
            b'{' => {
                let raw: RawPoint<'_> = serde_json::from_slice(payload).ok()?;
                let point = self.point(&raw, interner)?;
                out.push(point);
                Some(1)
            }
            b'[' => {
                let raws: Vec<RawPoint<'_>> = serde_json::from_slice(payload).ok()?;
                let before = out.len();
                out.reserve(raws.len());
                for raw in &raws {
                    match self.point(raw, interner) {
                        Some(p) => out.push(p),
                        None => {
                            out.truncate(before);
                            return None;
                        }
                    }
                }
                Some(raws.len())
            }
            _ => None,
        }
    }

    /// A push body `{"points": [...]}`, every point taken, or `None`.
    pub fn read_push_body(&mut self, body: &[u8], interner: &mut Interner) -> Option<Vec<Point>> {
        let doc: PushBody<'_> = serde_json::from_slice(body).ok()?;
        doc.points
            .iter()
            .map(|raw| self.point(raw, interner))
            .collect()
    }

    /// The point, if `raw` passes every check [`point_from_json`] makes.
    pub fn point(&mut self, raw: &RawPoint<'_>, interner: &mut Interner) -> Option<Point> {
        limits::check_metric(raw.metric).ok()?;
        limits::check_value(raw.value).ok()?;
        let mut labels: Vec<(&str, &str)> =
            raw.labels.as_ref().map_or_else(Vec::new, |l| l.0.clone());
        labels.sort_unstable_by_key(|(k, _)| *k);
        limits::check_label_count(labels.len()).ok()?;
        if labels.windows(2).any(|w| w[0].0 == w[1].0)
            || !labels
                .iter()
                .all(|(k, v)| limits::check_label(k, v).is_ok())
        {
            return None;
        }
        let ts: Timestamp = match raw.ts {
            RawTs::Text(t) => parse_timestamp(t).ok()?,
            RawTs::Seconds(s) => unix_seconds(s).ok()?,
        };
        limits::check_ts(ts).ok()?;
        let same = self.last.as_ref().is_some_and(|k| {
            k.metric == raw.metric
                && k.labels.len() == labels.len()
                && k.labels
                    .iter()
                    .zip(&labels)
                    .all(|((a, b), (c, d))| a == c && b == d)
        });
        if !same {
            let owned: Labels = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            self.last = Some(interner.intern(SeriesKey::new(raw.metric.to_string(), owned)));
        }
        Some(Point {
            series: Arc::clone(self.last.as_ref()?),
            ts,
            value: raw.value,
        })
    }
}

/// `{"points": [...]}` as the fast path reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushBody<'a> {
    #[serde(borrow)]
    points: Vec<RawPoint<'a>>,
}

/// A point object as the fast path reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoint<'a> {
    #[serde(borrow)]
    pub metric: &'a str,
    #[serde(borrow, default)]
    pub labels: Option<RawLabels<'a>>,
    #[serde(borrow)]
    pub ts: RawTs<'a>,
    pub value: f64,
}

/// Labels, in the order written; only plain strings.
pub struct RawLabels<'a>(Vec<(&'a str, &'a str)>);

impl<'de: 'a, 'a> Deserialize<'de> for RawLabels<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawLabels<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(entry) = map.next_entry::<&'de str, &'de str>()? {
                    out.push(entry);
                }
                Ok(RawLabels(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A ts: RFC 3339 text, or Unix seconds.
pub enum RawTs<'a> {
    Text(&'a str),
    Seconds(f64),
}

impl<'de: 'a, 'a> Deserialize<'de> for RawTs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawTs<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 string or Unix seconds")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawTs::Text(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawTs::Seconds(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawTs::Seconds(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(RawTs::Seconds(v))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::point_from_json;

    #[test]
    fn a_push_body_reads_as_the_general_path_reads_it() {
        let body = br#"{"points":[{"metric":"m","labels":{"b":"2","a":"1"},"ts":"2026-10-01T00:00:00Z","value":1.5},{"metric":"m","labels":{"a":"1","b":"2"},"ts":1790812801,"value":-2}]}"#;
        let mut interner = Interner::default();
        let fast = FastReader::default()
            .read_push_body(body, &mut interner)
            .expect("a plain body");
        let doc: serde_json::Value = serde_json::from_slice(body).unwrap();
        let general: Vec<Point> = doc["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| point_from_json(p, &mut interner).unwrap())
            .collect();
        assert_eq!(fast.len(), 2);
        for (a, b) in fast.iter().zip(&general) {
            assert_eq!((&a.series, a.ts, a.value), (&b.series, b.ts, b.value));
        }
        // Each of these goes the general way, which explains or accepts it.
        for other in [
            &br#"{"points":[{"metric":"m","ts":1,"value":1}],"x":1}"#[..],
            br#"{"points":[{"metric":"1m","ts":1,"value":1}]}"#,
            br#"{"points":[{"metric":"m","labels":{"a":"\"q\""},"ts":1,"value":1}]}"#,
            br#"{"points":{}}"#,
            b"not json",
        ] {
            assert!(FastReader::default()
                .read_push_body(other, &mut interner)
                .is_none());
        }
    }
}
