//! Typed values parsed once from config strings: durations, tolerances,
//! schedules and periods. Nothing past the config layer sees the raw text.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{de, Deserialize, Deserializer};

use super::error::Diagnostics;
use super::yaml::Node;
use crate::model::Timestamp;

/// A duration written like Prometheus writes them: `30s`, `5m`, `7d`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid duration {text:?}: expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s, 5m, 7d, 1h30m")
        };
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let n: u128 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let millis: u128 = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 7 * 86_400_000,
                "y" => 365 * 86_400_000,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total = total
                .checked_add(n.checked_mul(millis).ok_or_else(bad)?)
                .ok_or_else(bad)?;
        }
        let millis = u64::try_from(total).map_err(|_| bad())?;
        Ok(HumanDuration(Duration::from_millis(millis)))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// Formats a duration the way config writes it (`7d`, `1h30m`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [
        ("w", 7 * 86_400_000u128),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= len {
            out.push_str(&format!("{}{unit}", ms / len));
            ms %= len;
        }
    }
    out
}

/// A size in bytes: a plain number, or with a unit (`512KiB`, `16MiB`, `1MB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: usize = num
            .parse()
            .map_err(|_| format!("invalid size {text:?}: expected bytes, e.g. 16MiB or 1048576"))?;
        let mult: usize = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            u => {
                return Err(format!(
                    "invalid size {text:?}: unknown unit {u:?} (B, KB, KiB, MB, MiB, GB, GiB)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("invalid size {text:?}: too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// How much a counter metric may worsen before it counts as degraded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// A fraction of the reference value (`5%` is 0.05).
    Relative(f64),
    /// An absolute amount in the metric's unit.
    Absolute(f64),
}

impl<'de> Deserialize<'de> for Tolerance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Tolerance;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a percentage like 5% or an absolute number like 0.3")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tolerance, E> {
                if v.is_finite() {
                    Ok(Tolerance::Absolute(v))
                } else {
                    Err(E::custom("tolerance must be a finite number"))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tolerance, E> {
                Ok(Tolerance::Absolute(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tolerance, E> {
                Ok(Tolerance::Absolute(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tolerance, E> {
                let bad = || {
                    E::custom(format!("invalid tolerance {v:?}: expected a percentage like 5% or a number like 0.3"))
                };
                match v.trim().strip_suffix('%') {
                    Some(pct) => {
                        let p: f64 = pct.trim().parse().map_err(|_| bad())?;
                        if p.is_finite() {
                            Ok(Tolerance::Relative(p / 100.0))
                        } else {
                            Err(bad())
                        }
                    }
                    None => v
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| bad())
                        .and_then(|x| self.visit_f64(x)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// When a pull connector runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// A cron expression, normalized to the `cron` crate's 6-field form.
    Cron(Box<cron::Schedule>),
    /// `@every 5m`: a fixed interval.
    Every(Duration),
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("@every") {
            let d: HumanDuration = rest.trim().parse().map_err(|_| {
                format!("invalid schedule {text:?}: @every takes a duration like 30s, 5m, 1h")
            })?;
            if d.0.is_zero() {
                return Err("@every needs an interval longer than zero".into());
            }
            return Ok(Schedule::Every(d.0));
        }
        let expr = if text.starts_with('@') {
            text.to_string()
        } else {
            let mut fields: Vec<String> = text.split_whitespace().map(String::from).collect();
            match fields.len() {
                5 => fields.insert(0, "0".into()),
                6 => {}
                n => {
                    return Err(format!(
                        "invalid schedule {text:?}: a cron expression has 5 fields (or 6 with seconds), found {n}; or use `@every 5m`"
                    ))
                }
            }
            fields[5] = standard_days_of_week(&fields[5]);
            fields.join(" ")
        };
        cron::Schedule::from_str(&expr)
            .map(|s| Schedule::Cron(Box::new(s)))
            .map_err(|e| format!("invalid cron expression {text:?}: {e}"))
    }
}

/// Standard cron numbers days of the week 0–7 with Sunday as 0 and 7; the
/// `cron` crate numbers them 1–7 from Sunday. Numbers become names, which
/// both read the same way.
fn standard_days_of_week(field: &str) -> String {
    const NAMES: [&str; 8] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let name = |tok: &str| match tok.parse::<usize>() {
        Ok(n) if n < 8 => NAMES[n].to_string(),
        _ => tok.to_string(),
    };
    field
        .split(',')
        .map(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            let range = match range.split_once('-') {
                // `5-7` ends on Sunday: split off the wrap-around.
                Some((a, "7")) if a != "0" => format!("{}-Sat,Sun", name(a)),
                Some((a, b)) => format!("{}-{}", name(a), name(b)),
                None => name(range),
            };
            match step {
                Some(s) => format!("{range}/{s}"),
                None => range,
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A half-open UTC interval [start, end) over which KRs are scored, or a
/// recurring one (`current-quarter`, ...), which [`Period::at`] resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// Inclusive start. A recurring period spans all time here (from
    /// 1970): [`Period::at`] gives the one in force at an instant, which is
    /// what everything that scores, explains or shows a period asks for.
    pub start: Timestamp,
    /// Exclusive end (a recurring period's: the year 10000).
    pub end: Timestamp,
    /// As written (`2026-Q4`, `current-quarter`) or `2026-10-01..2027-01-01`.
    pub label: String,
    /// Set for `current-quarter|current-month|current-half|current-year`.
    pub recurrence: Option<Recurrence>,
}

/// The calendar unit of a recurring period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recurrence {
    /// `current-month`.
    Month,
    /// `current-quarter`.
    Quarter,
    /// `current-half`.
    Half,
    /// `current-year`.
    Year,
}

impl Recurrence {
    fn parse(name: &str) -> Option<Recurrence> {
        Some(match name {
            "current-month" => Recurrence::Month,
            "current-quarter" => Recurrence::Quarter,
            "current-half" => Recurrence::Half,
            "current-year" => Recurrence::Year,
            _ => return None,
        })
    }

    /// The concrete name of the calendar period (UTC) containing `t`:
    /// `2027-03`, `2027-Q1`, `2027-H1`, `2027`.
    fn name_at(self, t: Timestamp) -> String {
        let (y, m) = (t.year(), t.month());
        match self {
            Recurrence::Month => format!("{y}-{m:02}"),
            Recurrence::Quarter => format!("{y}-Q{}", (m - 1) / 3 + 1),
            Recurrence::Half => format!("{y}-H{}", (m - 1) / 6 + 1),
            Recurrence::Year => format!("{y}"),
        }
    }
}

impl Period {
    /// The concrete period in force at `t`: a fixed period itself; a
    /// recurring one the calendar period (UTC) that contains `t`, named
    /// as a fixed one would be (`2027-Q1`).
    pub fn at(&self, t: Timestamp) -> std::borrow::Cow<'_, Period> {
        match self.recurrence {
            None => std::borrow::Cow::Borrowed(self),
            Some(r) => std::borrow::Cow::Owned(
                parse_named_period(&r.name_at(t)).expect("a calendar period's name parses"),
            ),
        }
    }

    /// A recurring period as loaded: no clock is read while loading, so it
    /// spans every instant its calendar periods can ([`Period::at`]
    /// resolves it against the injected clock's time).
    fn recurring(r: Recurrence, name: &str) -> Period {
        let day = |y| {
            Utc.from_utc_datetime(
                &NaiveDate::from_ymd_opt(y, 1, 1)
                    .expect("a valid day")
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight exists"),
            )
        };
        Period {
            start: day(1970),
            end: day(10_000),
            label: name.to_string(),
            recurrence: Some(r),
        }
    }
}

/// A period as written in YAML.
#[derive(Debug)]
pub(super) enum RawPeriod {
    Named(String),
    Range(RawRange),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRange {
    start: String,
    end: String,
}

impl RawPeriod {
    /// Reads a period node: a name, or a `{start, end}` mapping.
    pub(super) fn load(node: &Node, path: &str, diags: &mut Diagnostics) -> Option<RawPeriod> {
        match &node.kind {
            super::yaml::Kind::Map(_) => diags.deserialize(node, path).map(RawPeriod::Range),
            _ => diags.deserialize(node, path).map(RawPeriod::Named),
        }
    }

    pub(super) fn resolve(
        &self,
        node: &Node,
        path: &str,
        diags: &mut Diagnostics,
    ) -> Option<Period> {
        let result = match self {
            RawPeriod::Named(name) => match Recurrence::parse(name) {
                Some(r) => Ok(Period::recurring(r, name)),
                None => parse_named_period(name),
            },
            RawPeriod::Range(r) => {
                match (parse_day_or_instant(&r.start), parse_day_or_instant(&r.end)) {
                    (Ok(start), Ok(end)) if start < end => Ok(Period {
                        start,
                        end,
                        label: format!("{}..{}", r.start, r.end),
                        recurrence: None,
                    }),
                    (Ok(_), Ok(_)) => Err(format!(
                        "period end {} is not after its start {}",
                        r.end, r.start
                    )),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }
            }
        };
        match result {
            Ok(p) => Some(p),
            Err(e) => {
                diags.error(node, path, e);
                None
            }
        }
    }
}

fn parse_day_or_instant(text: &str) -> Result<Timestamp, String> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight exists")));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("invalid date {text:?}: expected YYYY-MM-DD or RFC 3339"))
}

/// `2026-Q4`, `2026-H1`, `2026-11` or `2026`.
fn parse_named_period(name: &str) -> Result<Period, String> {
    let bad = || {
        format!("invalid period {name:?}: expected a quarter (2026-Q4), a half (2026-H1), a month (2026-11), a year (2026), current-quarter, current-month, current-half, current-year or {{ start: 2026-10-01, end: 2027-01-01 }}")
    };
    let month_start = |y: i32, m: u32| -> Result<Timestamp, String> {
        let (y, m) = if m > 12 { (y + 1, m - 12) } else { (y, m) };
        NaiveDate::from_ymd_opt(y, m, 1)
            .map(|d| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists")))
            .ok_or_else(bad)
    };
    let (year, rest) = name.split_once('-').unwrap_or((name, ""));
    let year: i32 = year.parse().map_err(|_| bad())?;
    if !(1970..=9999).contains(&year) {
        return Err(bad());
    }
    let (first_month, months) = match rest {
        "" => (1, 12),
        q if q.starts_with('Q') => match q[1..].parse::<u32>() {
            Ok(n @ 1..=4) => (3 * n - 2, 3),
            _ => return Err(bad()),
        },
        h if h.starts_with('H') => match h[1..].parse::<u32>() {
            Ok(n @ 1..=2) => (6 * n - 5, 6),
            _ => return Err(bad()),
        },
        m if m.len() == 2 => match m.parse::<u32>() {
            Ok(n @ 1..=12) => (n, 1),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    let start = month_start(year, first_month)?;
    let end = month_start(year, first_month + months)?;
    debug_assert!(start.year() == year);
    Ok(Period {
        start,
        end,
        label: name.to_string(),
        recurrence: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike, Weekday};

    #[test]
    fn durations() {
        let d = |s: &str| s.parse::<HumanDuration>().map(|d| d.0);
        assert_eq!(d("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(d("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(d("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "7", "d", "7x", "-1d", "1.5h", "7 d"] {
            assert!(d(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
    }

    #[test]
    fn periods() {
        let p = parse_named_period("2026-Q4").unwrap();
        assert_eq!(p.start.to_rfc3339(), "2026-10-01T00:00:00+00:00");
        assert_eq!(p.end.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        let h = parse_named_period("2026-H1").unwrap();
        assert_eq!((h.start.month(), h.end.month()), (1, 7));
        let m = parse_named_period("2026-12").unwrap();
        assert_eq!(m.end.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert_eq!(parse_named_period("2026").unwrap().end.year(), 2027);
        for bad in ["2026-Q5", "2026-Q0", "Q4", "2026-13", "2026-W3"] {
            assert!(parse_named_period(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn recurring_periods_roll_over_at_the_calendar_boundary() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let cases = [
            (
                "current-quarter",
                "2027-03-31T23:59:59.999999Z",
                "2027-Q1",
                "2027-01-01T00:00:00+00:00",
                "2027-04-01T00:00:00+00:00",
            ),
            (
                "current-quarter",
                "2027-04-01T00:00:00Z",
                "2027-Q2",
                "2027-04-01T00:00:00+00:00",
                "2027-07-01T00:00:00+00:00",
            ),
            (
                "current-month",
                "2026-12-31T12:00:00Z",
                "2026-12",
                "2026-12-01T00:00:00+00:00",
                "2027-01-01T00:00:00+00:00",
            ),
            (
                "current-month",
                "2027-01-01T00:00:00Z",
                "2027-01",
                "2027-01-01T00:00:00+00:00",
                "2027-02-01T00:00:00+00:00",
            ),
            (
                "current-half",
                "2027-06-30T23:00:00Z",
                "2027-H1",
                "2027-01-01T00:00:00+00:00",
                "2027-07-01T00:00:00+00:00",
            ),
            (
                "current-half",
                "2027-07-01T00:00:00Z",
                "2027-H2",
                "2027-07-01T00:00:00+00:00",
                "2028-01-01T00:00:00+00:00",
            ),
            (
                "current-year",
                "2027-12-31T23:59:59Z",
                "2027",
                "2027-01-01T00:00:00+00:00",
                "2028-01-01T00:00:00+00:00",
            ),
            (
                "current-year",
                "2028-01-01T00:00:00Z",
                "2028",
                "2028-01-01T00:00:00+00:00",
                "2029-01-01T00:00:00+00:00",
            ),
        ];
        for (name, at, label, start, end) in cases {
            let r = Recurrence::parse(name).unwrap();
            let spec = Period::recurring(r, name);
            assert_eq!(spec.label, name);
            let p = spec.at(t(at));
            assert_eq!(
                (p.label.as_str(), p.start.to_rfc3339(), p.end.to_rfc3339()),
                (label, start.to_string(), end.to_string()),
                "{name} at {at}"
            );
            assert_eq!(p.recurrence, None);
        }
        let fixed = parse_named_period("2026-Q4").unwrap();
        assert_eq!(*fixed.at(t("2030-01-01T00:00:00Z")), fixed);
    }

    #[test]
    fn schedules_use_standard_cron_semantics() {
        let monday_3am: Schedule = "0 3 * * 1".parse().unwrap();
        let Schedule::Cron(s) = monday_3am else {
            panic!()
        };
        let next = s
            .after(&Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap())
            .next()
            .unwrap();
        assert_eq!((next.weekday(), next.hour()), (Weekday::Mon, 3));
        let Schedule::Cron(s) = "0 0 * * 0".parse().unwrap() else {
            panic!()
        };
        let next = s
            .after(&Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap())
            .next()
            .unwrap();
        assert_eq!(next.weekday(), Weekday::Sun);
        let Schedule::Cron(s) = "0 0 * * 5-7".parse().unwrap() else {
            panic!()
        };
        let days: Vec<_> = s
            .after(&Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap())
            .take(3)
            .map(|t| t.weekday())
            .collect();
        assert_eq!(days, [Weekday::Fri, Weekday::Sat, Weekday::Sun]);
        assert!("*/15 * * * *".parse::<Schedule>().is_ok());
        assert!("*/10 * * * * *".parse::<Schedule>().is_ok());
        assert_eq!(
            "@every 5m".parse::<Schedule>(),
            Ok(Schedule::Every(Duration::from_secs(300)))
        );
        assert!("61 * * * *".parse::<Schedule>().is_err());
        assert!("* * *".parse::<Schedule>().is_err());
        assert!("@every soon".parse::<Schedule>().is_err());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!("16MiB".parse::<ByteSize>(), Ok(ByteSize(16 << 20)));
        assert_eq!("1000".parse::<ByteSize>(), Ok(ByteSize(1000)));
        assert_eq!("2 KB".parse::<ByteSize>(), Ok(ByteSize(2000)));
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("5PB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn tolerances() {
        let t = |s: &str| {
            Tolerance::deserialize(
                serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s),
            )
        };
        assert_eq!(t("5%").unwrap(), Tolerance::Relative(0.05));
        assert_eq!(t("0.3").unwrap(), Tolerance::Absolute(0.3));
        assert!(t("lots").is_err());
    }
}
