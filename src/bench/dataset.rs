//! The points the ingest phases send: `series` series of hourly points,
//! written as SPEC §3 JSON (push bodies, Kafka messages) and as PostgreSQL
//! binary COPY rows, so every phase and the reference store the same rows.

use std::fmt::Write;

/// 2026-01-01T00:00:00Z: the first point's ts.
const START: i64 = 1_767_225_600;

/// `points` points over `series` series, series-major.
#[derive(Debug, Clone, Copy)]
pub struct Dataset {
    /// How many points.
    pub points: usize,
    /// How many series.
    pub series: usize,
}

impl Dataset {
    fn per_series(&self) -> usize {
        self.points.div_ceil(self.series)
    }

    /// Point `k`: (series index, Unix seconds, value).
    pub fn point(&self, k: usize) -> (usize, i64, f64) {
        let per = self.per_series();
        let (s, i) = (k / per, k % per);
        (
            s,
            START + 3600 * i as i64,
            ((s * 7 + i) % 1000) as f64 / 10.0,
        )
    }

    /// Point `k` as a JSON object, appended to `out`.
    pub fn write_json(&self, k: usize, out: &mut String) {
        let (s, ts, value) = self.point(k);
        let _ = write!(
            out,
            r#"{{"metric":"bench_m{}","labels":{{"shard":"s{}"}},"ts":{ts},"value":{value}}}"#,
            s % 10,
            s / 10
        );
    }

    /// `POST /api/v1/points` bodies of `batch` points each.
    pub fn push_bodies(&self, batch: usize) -> Vec<String> {
        (0..self.points)
            .step_by(batch)
            .map(|first| {
                let mut body = String::with_capacity(batch * 90 + 16);
                body.push_str(r#"{"points":["#);
                for k in first..(first + batch).min(self.points) {
                    if k > first {
                        body.push(',');
                    }
                    self.write_json(k, &mut body);
                }
                body.push_str("]}");
                body
            })
            .collect()
    }

    /// The series a Kafka producer keys point `k` by, so that a series'
    /// points stay in order in one partition.
    pub fn series_of(&self, k: usize) -> usize {
        k / self.per_series()
    }

    /// Every point as one `points` row in PostgreSQL's binary COPY format,
    /// series `s` having id `s + 1`.
    pub fn copy_rows(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(19 + self.points * 38 + 2);
        let rows = (0..self.points).map(|k| {
            let (s, ts, value) = self.point(k);
            (s as i64 + 1, ts * 1_000_000, value)
        });
        crate::store::encode_copy_rows(rows, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_is_valid_json_and_series_are_contiguous() {
        let d = Dataset {
            points: 25,
            series: 10,
        };
        let bodies = d.push_bodies(10);
        assert_eq!(bodies.len(), 3);
        let doc: serde_json::Value = serde_json::from_str(&bodies[2]).unwrap();
        assert_eq!(doc["points"].as_array().unwrap().len(), 5);
        assert_eq!(doc["points"][0]["metric"], "bench_m6");
        assert_eq!((d.series_of(2), d.series_of(3)), (0, 1));
        // header 19 + 25 rows of 38 + trailer 2
        assert_eq!(d.copy_rows().len(), 19 + 25 * 38 + 2);
    }
}
