//! Backfill files for `okrd ingest`: CSV (a header row with `metric`, `ts`,
//! `value`; every other column is a label, an empty cell means absent) or
//! JSON lines (one point object a line). A file is read whole and rejected
//! whole: every bad row is reported, and nothing is written.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::point::{point_from_json, Interner};
use super::{json, limits};
use crate::model::{is_valid_metric_name, parse_timestamp, Labels, Point, SeriesKey};

/// A bad row of an ingest file.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    /// 1-based line number in the file.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// Why a file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The header row lacks a required column or names a bad label.
    #[error("{path}:1: {reason}")]
    Header {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Some rows are invalid; nothing was written.
    #[error("{path}: {} bad rows; nothing was written", rows.len())]
    Rows {
        /// The file.
        path: String,
        /// Every bad row.
        rows: Vec<RowError>,
    },
}

/// The format of an ingest file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    JsonLines,
}

/// Reads every point of `path`. `on_bytes` is told how many bytes have been
/// read so far (for a progress bar). Returns the points and the number of
/// distinct series.
pub fn read_points_file(
    path: &Path,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<(Vec<Point>, usize), FileError> {
    let name = path.display().to_string();
    let io = |source| FileError::Io {
        path: name.clone(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "ndjson" | "json") => Format::JsonLines,
        _ => Format::Csv,
    };
    let reader = BufReader::with_capacity(
        1 << 20,
        Counting {
            inner: file,
            read: 0,
            on_bytes,
        },
    );
    let mut interner = Interner::default();
    let (points, rows) = match format {
        Format::Csv => read_csv(reader, &name, &mut interner)?,
        Format::JsonLines => read_json_lines(reader, &mut interner).map_err(io)?,
    };
    if rows.is_empty() {
        Ok((points, interner.len()))
    } else {
        Err(FileError::Rows { path: name, rows })
    }
}

struct Counting<'a, R> {
    inner: R,
    read: u64,
    on_bytes: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.on_bytes)(self.read);
        Ok(n)
    }
}

fn read_csv<R: Read>(
    reader: R,
    name: &str,
    interner: &mut Interner,
) -> Result<(Vec<Point>, Vec<RowError>), FileError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(reader);
    let header = |reason: String| FileError::Header {
        path: name.to_string(),
        reason,
    };
    let headers = csv.headers().map_err(|e| header(e.to_string()))?.clone();
    let col = |n: &str| headers.iter().position(|h| h.trim() == n);
    let (Some(metric_col), Some(ts_col), Some(value_col)) =
        (col("metric"), col("ts"), col("value"))
    else {
        return Err(header(
            "the header row needs columns metric, ts and value".into(),
        ));
    };
    let mut label_cols = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        if i == metric_col || i == ts_col || i == value_col {
            continue;
        }
        let h = h.trim();
        if let Err(e) = limits::check_label(h, "") {
            return Err(header(format!("column {h:?}: {e}")));
        }
        if label_cols.iter().any(|(_, name)| name == h) {
            return Err(header(format!("column {h:?} appears twice")));
        }
        label_cols.push((i, h.to_string()));
    }

    let mut points = Vec::new();
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = csv.position().line();
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                rows.push(RowError {
                    line,
                    reason: e.to_string(),
                });
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        let metric = &record[metric_col];
        let parsed = (|| {
            if !is_valid_metric_name(metric) {
                return Err(format!(
                    "invalid metric name {metric:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"
                ));
            }
            let ts = parse_timestamp(&record[ts_col])?;
            let raw = record[value_col].trim();
            let value: f64 = raw
                .parse()
                .map_err(|_| format!("value {raw:?} is not a number"))?;
            if !value.is_finite() {
                return Err(format!("value {raw:?} is not a finite number"));
            }
            let labels: Labels = label_cols
                .iter()
                .filter(|(i, _)| !record[*i].is_empty())
                .map(|(i, name)| (name.clone(), record[*i].to_string()))
                .collect();
            limits::check_point(metric, &labels, ts, value).map_err(|e| e.message)?;
            Ok((ts, value, labels))
        })();
        match parsed {
            Ok((ts, value, labels)) if rows.is_empty() => points.push(Point {
                series: interner.intern(SeriesKey::new(metric, labels)),
                ts,
                value,
            }),
            Ok(_) => {}
            Err(reason) => rows.push(RowError { line, reason }),
        }
    }
    Ok((points, rows))
}

fn read_json_lines<R: BufRead>(
    reader: R,
    interner: &mut Interner,
) -> std::io::Result<(Vec<Point>, Vec<RowError>)> {
    let mut points = Vec::new();
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        let number = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = json::parse(line.as_bytes())
            .map_err(|e| format!("invalid JSON: {e}"))
            .and_then(|v| point_from_json(&v, interner).map_err(|e| e.message));
        match parsed {
            Ok(p) if rows.is_empty() => points.push(p),
            Ok(_) => {}
            Err(reason) => rows.push(RowError {
                line: number,
                reason,
            }),
        }
    }
    Ok((points, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read(name: &str, text: &str) -> Result<(Vec<Point>, usize), FileError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        read_points_file(&path, &mut |_| {})
    }

    #[test]
    fn csv_columns_become_labels_and_empty_cells_are_absent() {
        let (points, series) = read(
            "p.csv",
            "metric,ts,value,plan,region\nm,2026-10-01T00:00:00Z,1,free,eu\nm,2026-10-02T00:00:00Z,2,free,\n",
        )
        .unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(series, 2);
        assert_eq!(points[0].series.labels.len(), 2);
        assert_eq!(points[1].series.labels.len(), 1);
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let e = read(
            "p.csv",
            "metric,ts,value\nm,1,1\nm,soon,1\nm,2,NaN\n9m,3,1\nm,4,x\n",
        )
        .unwrap_err();
        let FileError::Rows { rows, .. } = e else {
            panic!("{e}")
        };
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 5, 6]);
        assert!(rows[0].reason.contains("invalid timestamp"));
        assert!(rows[1].reason.contains("finite"));
    }

    #[test]
    fn csv_header_must_name_the_columns() {
        assert!(matches!(
            read("p.csv", "name,ts,value\n"),
            Err(FileError::Header { .. })
        ));
        assert!(matches!(
            read("p.csv", "metric,ts,value,bad-label\n"),
            Err(FileError::Header { .. })
        ));
    }

    #[test]
    fn json_lines() {
        let (points, _) = read("p.jsonl", "{\"metric\":\"m\",\"ts\":1,\"value\":2}\n\n{\"metric\":\"m\",\"ts\":2,\"value\":3,\"labels\":{\"a\":\"b\"}}\n").unwrap();
        assert_eq!(points.len(), 2);
        let e = read(
            "p.jsonl",
            "{\"metric\":\"m\",\"ts\":1,\"value\":2}\n{oops}\n",
        )
        .unwrap_err();
        let FileError::Rows { rows, .. } = e else {
            panic!()
        };
        assert_eq!(rows[0].line, 2);
    }
}
