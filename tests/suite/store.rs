//! The store's contract, run against both backends: SQLite in a temp dir and
//! a fresh database on the real PostgreSQL server (see `common/pg.rs`), the
//! latter also over TLS.
//!
//! Each case is written once, against a `Backend` (not yet opened), and
//! instantiated for each by `every_backend!` (`both_stores!` of
//! tests/common, and `postgres_tls`).

use crate::common::{both_stores, Backend};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use okrd::model::{Point, Sample, SeriesKey, Timestamp};
use okrd::scoring::Status;
use okrd::store::{self, no_progress, Change, HistoryRewrite, ScoreRecord, Store};
use sqlx::{Connection, PgConnection};

/// Each case on SQLite, on PostgreSQL, and on PostgreSQL over TLS
/// (`postgres_tls::<case>`: `sslmode=verify-full`, the server's own
/// certificate as `sslrootcert`).
macro_rules! every_backend {
    ($($case:ident),* $(,)?) => {
        both_stores!($($case),*);

        mod postgres_tls {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(backend) = crate::common::Backend::postgres_tls().await {
                        super::$case(backend).await;
                    }
                }
            )*
        }
    };
}

every_backend!(
    round_trip,
    duplicate_in_one_batch_last_wins,
    resent_point_replaces_value,
    label_sets_are_exact,
    unlabelled_series,
    load_series_anchors_at_from,
    load_many_resolves_series_in_bulk_and_keeps_each_range_apart,
    load_many_keeps_every_double_exactly,
    failing_batch_writes_nothing,
    migrations_are_idempotent,
    record_score_keeps_changes_only,
    score_history_is_ordered_and_half_open,
    score_lines_keep_each_spans_last_row_per_kr,
    rewrite_histories_replace_each_kr_from_its_time_on,
    change_feed_reports_other_writers_once,
    change_feed_reports_a_late_commit_of_a_lower_id,
    large_batch_round_trips,
    concurrent_writes_of_the_same_points,
    ping_answers,
    stored_values_outside_their_types_are_errors_naming_them,
);

fn t(secs: i64) -> Timestamp {
    Utc.timestamp_opt(1_790_812_800 + secs, 0).unwrap()
}

fn key(metric: &str, labels: &[(&str, &str)]) -> Arc<SeriesKey> {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(SeriesKey::new(metric, labels))
}

fn point(series: &Arc<SeriesKey>, ts: Timestamp, value: f64) -> Point {
    Point {
        series: series.clone(),
        ts,
        value,
    }
}

fn samples(pairs: &[(Timestamp, f64)]) -> Vec<Sample> {
    pairs.iter().map(|&(ts, v)| Sample::new(ts, v)).collect()
}

async fn write(store: &Arc<dyn Store>, points: &[Point]) -> usize {
    store
        .write_points(points, &no_progress)
        .await
        .expect("write_points")
}

async fn load(
    store: &Arc<dyn Store>,
    key: &SeriesKey,
    from: Timestamp,
    to: Timestamp,
) -> Vec<Sample> {
    store.load_series(key, from, to).await.expect("load_series")
}

/// Everything stored for `key` (no point predates `t(-1_000_000)`).
async fn load_all(store: &Arc<dyn Store>, key: &SeriesKey) -> Vec<Sample> {
    load(store, key, t(-1_000_000), t(1_000_000)).await
}

async fn metrics(store: &Arc<dyn Store>) -> BTreeSet<String> {
    store
        .metrics_with_points()
        .await
        .expect("metrics_with_points")
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn round_trip(target: Backend) {
    let store = target.open().await;
    assert!(metrics(&store).await.is_empty());
    let a = key("activation_rate", &[("plan", "free")]);
    let b = key("tickets", &[]);
    // Sub-second precision is kept to the microsecond.
    let precise = Utc.timestamp_micros(1_790_812_800_123_456).unwrap();
    let n = write(
        &store,
        &[
            point(&a, t(20), 0.5),
            point(&b, t(10), 7.0),
            point(&a, precise, 0.25),
        ],
    )
    .await;
    assert_eq!(n, 3);
    assert_eq!(
        load_all(&store, &a).await,
        samples(&[(precise, 0.25), (t(20), 0.5)])
    );
    assert_eq!(load_all(&store, &b).await, samples(&[(t(10), 7.0)]));
    assert_eq!(metrics(&store).await, set(&["activation_rate", "tickets"]));
    assert!(load_all(&store, &key("unknown", &[])).await.is_empty());
    assert_eq!(write(&store, &[]).await, 0);
}

async fn duplicate_in_one_batch_last_wins(target: Backend) {
    let store = target.open().await;
    let a = key("m", &[("k", "v")]);
    // An equal key in a separate allocation is the same series.
    let a_again = key("m", &[("k", "v")]);
    let nanos = Utc.timestamp_opt(1_790_812_800, 999).unwrap();
    let points = [
        point(&a, t(1), 1.0),
        point(&a, t(2), 2.0),
        point(&a_again, t(1), 3.0),
        point(&a, t(1), 4.0),
        // The same microsecond as t(0), once stored.
        point(&a, t(0), 5.0),
        point(&a, nanos, 6.0),
    ];
    assert_eq!(write(&store, &points).await, 3);
    assert_eq!(
        load_all(&store, &a).await,
        samples(&[(t(0), 6.0), (t(1), 4.0), (t(2), 2.0)])
    );
}

async fn resent_point_replaces_value(target: Backend) {
    let store = target.open().await;
    let a = key("m", &[]);
    assert_eq!(
        write(&store, &[point(&a, t(1), 1.0), point(&a, t(2), 2.0)]).await,
        2
    );
    assert_eq!(write(&store, &[point(&a, t(1), 10.0)]).await, 1);
    // Re-sending an unchanged value is fine too.
    assert_eq!(write(&store, &[point(&a, t(2), 2.0)]).await, 1);
    assert_eq!(
        load_all(&store, &a).await,
        samples(&[(t(1), 10.0), (t(2), 2.0)])
    );
    // A new store, with an empty cache, finds the same series.
    let reopened = target.open().await;
    assert_eq!(write(&reopened, &[point(&a, t(2), 20.0)]).await, 1);
    assert_eq!(
        load_all(&reopened, &a).await,
        samples(&[(t(1), 10.0), (t(2), 20.0)])
    );
}

async fn label_sets_are_exact(target: Backend) {
    let store = target.open().await;
    let free = key("m", &[("plan", "free")]);
    let free_eu = key("m", &[("plan", "free"), ("region", "eu")]);
    let pro = key("m", &[("plan", "pro")]);
    let bare = key("m", &[]);
    let other_metric = key("n", &[("plan", "free")]);
    let all = [&free, &free_eu, &pro, &bare, &other_metric];
    let points: Vec<Point> = all
        .iter()
        .enumerate()
        .map(|(i, k)| point(k, t(0), i as f64))
        .collect();
    assert_eq!(write(&store, &points).await, 5);
    for (i, k) in all.iter().enumerate() {
        assert_eq!(
            load_all(&store, k).await,
            samples(&[(t(0), i as f64)]),
            "{k}"
        );
    }
    assert!(load_all(&store, &key("m", &[("region", "eu")]))
        .await
        .is_empty());
}

async fn unlabelled_series(target: Backend) {
    let store = target.open().await;
    let bare = key("uptime", &[]);
    assert_eq!(write(&store, &[point(&bare, t(5), 0.999)]).await, 1);
    assert_eq!(load_all(&store, &bare).await, samples(&[(t(5), 0.999)]));
    let reopened = target.open().await;
    assert_eq!(load_all(&reopened, &bare).await, samples(&[(t(5), 0.999)]));
    assert_eq!(metrics(&reopened).await, set(&["uptime"]));
}

async fn load_series_anchors_at_from(target: Backend) {
    let store = target.open().await;
    let a = key("m", &[]);
    let other = key("m", &[("x", "y")]);
    let points = [10, 20, 30, 40].map(|s| point(&a, t(s), s as f64));
    write(&store, &points).await;
    write(&store, &[point(&other, t(25), -1.0)]).await;
    let at = |secs: &[i64]| samples(&secs.iter().map(|&s| (t(s), s as f64)).collect::<Vec<_>>());
    // Latest point before `from`, then (from, to].
    assert_eq!(load(&store, &a, t(25), t(40)).await, at(&[20, 30, 40]));
    // A point exactly at `from` is the anchor; `to` is inclusive.
    assert_eq!(load(&store, &a, t(20), t(30)).await, at(&[20, 30]));
    // No point before `from`: just the range.
    assert_eq!(load(&store, &a, t(5), t(15)).await, at(&[10]));
    assert!(load(&store, &a, t(0), t(5)).await.is_empty());
    // Nothing in the range: the anchor alone.
    assert_eq!(load(&store, &a, t(45), t(50)).await, at(&[40]));
    assert_eq!(load(&store, &a, t(22), t(25)).await, at(&[20]));
    // An empty (inverted) range still yields the anchor.
    assert_eq!(load(&store, &a, t(30), t(20)).await, at(&[30]));
}

/// `load_many` from a store that knows no series id yet (a cold start):
/// every range gets its own points, in order, whether its series repeats,
/// is unknown, or was resolved by an earlier call.
async fn load_many_resolves_series_in_bulk_and_keeps_each_range_apart(target: Backend) {
    let writer = target.open().await;
    let (a, b, none) = (key("m", &[]), key("m", &[("x", "y")]), key("nothing", &[]));
    write(&writer, &[10, 20, 30].map(|s| point(&a, t(s), s as f64))).await;
    write(&writer, &[point(&b, t(25), -1.0)]).await;
    let range = |k: &Arc<SeriesKey>, from: i64, to: i64| store::SeriesRange {
        key: (**k).clone(),
        from: t(from),
        to: t(to),
    };
    let ranges = [
        range(&a, 25, 30),
        range(&none, 0, 100),
        range(&b, 0, 100),
        range(&a, 5, 15),
        range(&none, 0, 1),
    ];
    let want = vec![
        samples(&[(t(20), 20.0), (t(30), 30.0)]),
        vec![],
        samples(&[(t(25), -1.0)]),
        samples(&[(t(10), 10.0)]),
        vec![],
    ];
    let reader = target.open().await;
    assert_eq!(reader.load_many(&ranges).await.unwrap(), want, "cold");
    assert_eq!(reader.load_many(&ranges).await.unwrap(), want, "ids cached");
    // A series written after the first call is found by the next.
    write(&writer, &[point(&none, t(0), 7.0)]).await;
    let got = reader.load_many(&ranges[1..2]).await.unwrap();
    assert_eq!(got, vec![samples(&[(t(0), 7.0)])]);
}

/// Every finite double comes back bit for bit, through `load_many` (which
/// SQLite answers as text) and `load_series`: subnormals, the extremes,
/// zeros, and 20,000 random bit patterns.
async fn load_many_keeps_every_double_exactly(target: Backend) {
    let store = target.open().await;
    let a = key("exact", &[]);
    let mut values = vec![
        0.0,
        -0.0,
        0.1,
        1.0 / 3.0,
        -2.0 / 3.0,
        f64::MIN_POSITIVE,
        f64::MIN_POSITIVE / 3.0,
        f64::from_bits(1),
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        123_456_789.123_456_78,
    ];
    // xorshift64*, fixed seed: finite bit patterns only.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    while values.len() < 20_000 {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let v = f64::from_bits(state.wrapping_mul(0x2545_F491_4F6C_DD1D));
        if v.is_finite() {
            values.push(v);
        }
    }
    let points: Vec<Point> = values
        .iter()
        .enumerate()
        .map(|(i, v)| point(&a, t(i as i64), *v))
        .collect();
    write(&store, &points).await;
    let range = store::SeriesRange {
        key: (*a).clone(),
        from: t(0),
        to: t(values.len() as i64),
    };
    let reader = target.open().await;
    let many = reader.load_many(&[range]).await.unwrap().remove(0);
    let one = load_all(&reader, &a).await;
    for (got, how) in [(many, "load_many"), (one, "load_series")] {
        // Bit for bit, except that SQLite keeps an integral REAL as an
        // integer, so negative zero reads back as zero (equal, as numbers).
        let bits = |v: f64| if v == 0.0 { 0 } else { v.to_bits() };
        let bits: Vec<u64> = got.iter().map(|s| bits(s.value)).collect();
        let want: Vec<u64> = values
            .iter()
            .map(|v| if *v == 0.0 { 0 } else { v.to_bits() })
            .collect();
        assert_eq!(bits.len(), want.len(), "{how}");
        let wrong = bits.iter().zip(&want).position(|(g, w)| g != w);
        assert_eq!(
            wrong,
            None,
            "{how}: {:?} came back as {:?}",
            wrong.map(|i| values[i]),
            wrong.map(|i| got[i].value)
        );
        assert_eq!(
            got.iter().map(|s| s.ts).collect::<Vec<_>>(),
            points.iter().map(|p| p.ts).collect::<Vec<_>>(),
            "{how}"
        );
    }
}

async fn failing_batch_writes_nothing(target: Backend) {
    let store = target.open().await;
    let kept = key("kept", &[]);
    write(&store, &[point(&kept, t(0), 1.0)]).await;

    // A trigger makes the database reject one poisoned value, so the call
    // fails after earlier statements of its transaction already ran: the
    // batch is sorted by series id, and the poisoned series is created last.
    const POISON: f64 = -13.0;
    if target.is_sqlite() {
        target
            .exec(
                "CREATE TRIGGER poison BEFORE INSERT ON points WHEN NEW.value = -13 \
                 BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
            )
            .await;
    } else {
        target
            .exec(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.value = -13 THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$; \
                 CREATE TRIGGER poison BEFORE INSERT ON points FOR EACH ROW EXECUTE FUNCTION poison();",
            )
            .await;
    }
    // More points than one statement takes, on either backend.
    let doomed: Vec<Arc<SeriesKey>> = (0..50)
        .map(|i| key("doomed", &[("i", &i.to_string())]))
        .collect();
    let mut points: Vec<Point> = doomed
        .iter()
        .flat_map(|k| (0..500).map(move |s| point(k, t(s), s as f64)))
        .collect();
    points.push(point(&kept, t(0), 2.0));
    points.push(point(&key("zzz_poisoned", &[]), t(0), POISON));
    match store.write_points(&points, &no_progress).await {
        Err(e) => assert!(e.to_string().contains("poisoned"), "{e}"),
        Ok(n) => panic!("the poisoned batch wrote {n} points"),
    }

    if target.is_sqlite() {
        target.exec("DROP TRIGGER poison;").await;
    } else {
        target.exec("DROP TRIGGER poison ON points;").await;
    }
    assert_eq!(load_all(&store, &kept).await, samples(&[(t(0), 1.0)]));
    assert!(load_all(&store, &doomed[0]).await.is_empty());
    assert_eq!(metrics(&store).await, set(&["kept"]));

    // The failed call's series ids must not have been cached: writing the
    // series again creates them for real, as a fresh store sees.
    write(&store, &[point(&doomed[7], t(3), 3.0)]).await;
    let fresh = target.open().await;
    assert_eq!(load_all(&fresh, &doomed[7]).await, samples(&[(t(3), 3.0)]));
    assert_eq!(metrics(&fresh).await, set(&["doomed", "kept"]));
}

async fn migrations_are_idempotent(target: Backend) {
    // The first run applies every migration of the backend's folder, in
    // version order.
    let applied = store::migrate(&target.url).await.expect("migrate");
    let folder = if target.is_sqlite() {
        "sqlite"
    } else {
        "postgres"
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(folder);
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".sql")
                .to_string()
        })
        .collect();
    files.sort();
    assert_eq!(files.first().map(String::as_str), Some("0001_init"));
    assert_eq!(applied, files, "every migration, in version order");
    assert!(store::migrate(&target.url)
        .await
        .expect("migrate again")
        .is_empty());
    let a = key("m", &[]);
    let first = target.open().await;
    write(&first, &[point(&a, t(1), 1.0)]).await;
    let second = target.open().await;
    assert_eq!(load_all(&second, &a).await, samples(&[(t(1), 1.0)]));
    assert!(store::migrate(&target.url)
        .await
        .expect("migrate after open")
        .is_empty());
}

fn record(at: Timestamp, value: Option<f64>, score: f64, status: Status) -> ScoreRecord {
    ScoreRecord {
        objective: "onboarding".into(),
        key_result: "activation".into(),
        at,
        value,
        progress: value.map(|v| v * 2.0),
        score,
        expected: at.timestamp() as f64 * 1e-12,
        status,
        revision: 0,
    }
}

async fn history(store: &Arc<dyn Store>) -> Vec<ScoreRecord> {
    store
        .score_history("onboarding", "activation", t(-1_000), t(1_000))
        .await
        .expect("score_history")
}

async fn record_score_keeps_changes_only(target: Backend) {
    let store = target.open().await;
    let rec = |r: ScoreRecord| {
        let store = store.clone();
        async move { store.record_scores(&[r]).await.expect("record_scores") == 1 }
    };
    let first = record(t(10), Some(0.4), 0.5, Status::OnTrack);
    assert!(rec(first.clone()).await);
    // Same value, progress, score and status later (expected moved): no row.
    assert!(!rec(record(t(20), Some(0.4), 0.5, Status::OnTrack)).await);
    // A changed score is a row.
    assert!(rec(record(t(30), Some(0.4), 0.6, Status::OnTrack)).await);
    // Same `at`, different status: replaces that row.
    let replaced = record(t(30), Some(0.4), 0.6, Status::AtRisk);
    assert!(rec(replaced.clone()).await);
    // Back to the first row's values: differs from the newest, so a row.
    let back = record(t(40), Some(0.4), 0.5, Status::OnTrack);
    assert!(rec(back.clone()).await);
    // No data: None is a change, and an unchanged None is not.
    let no_data = record(t(50), None, 0.0, Status::NoData);
    assert!(rec(no_data.clone()).await);
    assert!(!rec(record(t(60), None, 0.0, Status::NoData)).await);
    // A late row before all others has nothing to compare with.
    let late = record(t(5), Some(0.4), 0.5, Status::OnTrack);
    assert!(rec(late.clone()).await);
    // A row compares with the newest at or before its `at`, not the newest.
    assert!(!rec(record(t(35), Some(0.4), 0.6, Status::AtRisk)).await);

    assert_eq!(
        history(&store).await,
        vec![late, first, replaced, back, no_data]
    );
}

async fn score_history_is_ordered_and_half_open(target: Backend) {
    let store = target.open().await;
    for (i, s) in [30, 10, 20, 40].into_iter().enumerate() {
        let written = store
            .record_scores(&[record(
                t(s),
                Some(i as f64),
                0.1 * i as f64,
                Status::OnTrack,
            )])
            .await
            .expect("record_scores");
        assert_eq!(written, 1);
    }
    let got = store
        .score_history("onboarding", "activation", t(10), t(30))
        .await
        .expect("score_history");
    let ats: Vec<Timestamp> = got.iter().map(|r| r.at).collect();
    assert_eq!(ats, vec![t(20), t(30)]);
    assert_eq!(got[0], record(t(20), Some(2.0), 0.2, Status::OnTrack));
    let other_kr = store
        .score_history("onboarding", "latency", t(-1_000), t(1_000))
        .await
        .expect("score_history");
    assert!(other_kr.is_empty());
}

async fn score_lines_keep_each_spans_last_row_per_kr(target: Backend) {
    let store = target.open().await;
    let of = |kr: &str, secs: i64, score: f64| ScoreRecord {
        key_result: kr.into(),
        ..record(t(secs), Some(score), score, Status::OnTrack)
    };
    let mut rows: Vec<ScoreRecord> = (1..=10).map(|i| of("a", i, i as f64 / 10.0)).collect();
    rows.extend([of("b", 3, 0.3), of("b", 7, 0.7), of("c", 5, 0.5)]);
    for r in rows {
        assert_eq!(store.record_scores(&[r]).await.expect("record_scores"), 1);
    }
    let keys = [
        ("onboarding".to_string(), "a".to_string()),
        ("onboarding".to_string(), "b".to_string()),
    ];
    // (t0, t10] in 5 spans of 2 s: [t1], [t2, t3], [t4, t5], [t6, t7],
    // [t8, t9], [t10]; each gives its last row, c is not asked for.
    let got: Vec<(String, Timestamp, f64)> = store
        .score_lines(&keys, t(0), t(10), 5)
        .await
        .expect("score_lines")
        .into_iter()
        .map(|p| (p.key_result, p.at, p.score))
        .collect();
    let want: Vec<(String, Timestamp, f64)> = [1, 3, 5, 7, 9, 10]
        .into_iter()
        .map(|i| ("a".to_string(), t(i), i as f64 / 10.0))
        .chain([("b".to_string(), t(3), 0.3), ("b".to_string(), t(7), 0.7)])
        .collect();
    assert_eq!(got, want);
}

async fn rewrite_histories_replace_each_kr_from_its_time_on(target: Backend) {
    let store = target.open().await;
    let of = |kr: &str, r: ScoreRecord| ScoreRecord {
        key_result: kr.into(),
        ..r
    };
    for s in [10, 20, 30] {
        store
            .record_scores(&[
                record(t(s), Some(s as f64), 0.5, Status::OnTrack),
                of(
                    "latency",
                    record(t(s), Some(s as f64), 0.5, Status::OnTrack),
                ),
                of(
                    "untouched",
                    record(t(s), Some(s as f64), 0.5, Status::OnTrack),
                ),
            ])
            .await
            .expect("record_scores");
    }
    let ids = [
        ("onboarding", "activation"),
        ("onboarding", "latency"),
        ("onboarding", "untouched"),
        ("onboarding", "none"),
    ];
    assert_eq!(
        store.history_ends(&ids).await.expect("history_ends"),
        vec![Some(t(30)), Some(t(30)), Some(t(30)), None]
    );
    let new = vec![
        record(t(20), Some(2.0), 0.2, Status::AtRisk),
        record(t(25), None, 0.0, Status::NoData),
    ];
    store
        .rewrite_histories(&[
            HistoryRewrite {
                objective: "onboarding".into(),
                key_result: "activation".into(),
                from: t(20),
                records: new.clone(),
            },
            HistoryRewrite {
                objective: "onboarding".into(),
                key_result: "latency".into(),
                from: t(0),
                records: vec![of(
                    "latency",
                    record(t(5), Some(1.0), 0.1, Status::OffTrack),
                )],
            },
        ])
        .await
        .expect("rewrite_histories");
    // Rows before `from` stay; the row at 30 is gone; the new rows are in.
    let mut expected = vec![record(t(10), Some(10.0), 0.5, Status::OnTrack)];
    expected.extend(new);
    assert_eq!(history(&store).await, expected);
    let of_kr = |kr: &'static str| {
        let store = store.clone();
        async move {
            store
                .score_history("onboarding", kr, t(-1_000), t(1_000))
                .await
                .expect("score_history")
        }
    };
    assert_eq!(
        of_kr("latency").await,
        vec![of(
            "latency",
            record(t(5), Some(1.0), 0.1, Status::OffTrack)
        )]
    );
    // A KR no rewrite names is untouched.
    assert_eq!(of_kr("untouched").await.len(), 3);
    assert_eq!(
        store.history_ends(&ids).await.expect("history_ends"),
        vec![Some(t(25)), Some(t(5)), Some(t(30)), None]
    );
}

/// The change feed: what another store (process) writes is read once, with
/// each metric's earliest ts; a store's own writes are not reported to it;
/// the cursor starts at the end.
async fn change_feed_reports_other_writers_once(target: Backend) {
    let reader = target.open().await;
    let writer = target.open().await;
    let a = key("feed_a", &[("x", "1")]);
    let a2 = key("feed_a", &[("x", "2")]);
    let b = key("feed_b", &[]);
    writer
        .write_points(&[point(&a, t(5), 1.0)], &no_progress)
        .await
        .expect("write");
    // Written before the cursor was taken: not reported.
    let mut cursor = reader.feed_cursor().await.expect("feed_cursor");
    assert_eq!(
        reader.read_changes(&mut cursor).await.expect("read"),
        vec![]
    );
    writer
        .write_points(
            &[
                point(&a, t(50), 1.0),
                point(&a2, t(40), 2.0),
                point(&b, t(7), 3.0),
            ],
            &no_progress,
        )
        .await
        .expect("write");
    reader
        .write_points(&[point(&b, t(1), 4.0)], &no_progress)
        .await
        .expect("own write");
    let changes = reader.read_changes(&mut cursor).await.expect("read");
    assert_eq!(
        changes,
        vec![
            Change {
                metric: "feed_a".into(),
                earliest: t(40)
            },
            Change {
                metric: "feed_b".into(),
                earliest: t(7)
            },
        ]
    );
    // Read once.
    assert_eq!(
        reader.read_changes(&mut cursor).await.expect("read"),
        vec![]
    );
}

/// PostgreSQL hands out ids before commit: a transaction that took a lower
/// id and commits after a higher one was read is still reported, once.
async fn change_feed_reports_a_late_commit_of_a_lower_id(target: Backend) {
    if target.is_sqlite() {
        // One writer at a time: ids are assigned in commit order.
        return;
    }
    let reader = target.open().await;
    let writer = target.open().await;
    let mut cursor = reader.feed_cursor().await.expect("feed_cursor");
    let mut slow = PgConnection::connect(&target.url).await.expect("connect");
    sqlx::raw_sql(
        "BEGIN; INSERT INTO changes (origin, metric, earliest) VALUES (1, 'slow', '2026-10-01T00:00:00Z')",
    )
    .execute(&mut slow)
    .await
    .expect("open a transaction");
    let fast = key("fast", &[]);
    writer
        .write_points(&[point(&fast, t(3), 1.0)], &no_progress)
        .await
        .expect("write");
    let metrics =
        |changes: Vec<Change>| -> Vec<String> { changes.into_iter().map(|c| c.metric).collect() };
    assert_eq!(
        metrics(reader.read_changes(&mut cursor).await.expect("read")),
        vec!["fast"]
    );
    sqlx::raw_sql("COMMIT")
        .execute(&mut slow)
        .await
        .expect("commit");
    assert_eq!(
        metrics(reader.read_changes(&mut cursor).await.expect("read")),
        vec!["slow"]
    );
    assert_eq!(
        metrics(reader.read_changes(&mut cursor).await.expect("read")),
        Vec::<String>::new()
    );
}

async fn large_batch_round_trips(target: Backend) {
    let store = target.open().await;
    let series: Vec<Arc<SeriesKey>> = (0..400)
        .map(|i| key("load", &[("host", &format!("h{i}")), ("dc", "x")]))
        .collect();
    let points: Vec<Point> = (0..300)
        .flat_map(|s| series.iter().map(move |k| point(k, t(s * 60), s as f64)))
        .collect();
    assert_eq!(points.len(), 120_000);
    let seen = Mutex::new(Vec::new());
    let progress = |n: usize| seen.lock().unwrap().push(n);
    assert_eq!(
        store.write_points(&points, &progress).await.expect("write"),
        120_000
    );
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "progress must increase"
    );
    assert_eq!(seen.last(), Some(&120_000));

    let loaded = load_all(&store, &series[123]).await;
    assert_eq!(loaded.len(), 300);
    assert_eq!(loaded[299], Sample::new(t(299 * 60), 299.0));
    // Sending it all again stores nothing twice.
    assert_eq!(write(&store, &points).await, 120_000);
    assert_eq!(load_all(&store, &series[399]).await.len(), 300);
}

async fn concurrent_writes_of_the_same_points(target: Backend) {
    let store = target.open().await;
    let series: Vec<Arc<SeriesKey>> = (0..20)
        .map(|i| key("race", &[("i", &i.to_string())]))
        .collect();
    // Known series, so that the two calls race on the points themselves.
    let known: Vec<Point> = series.iter().map(|k| point(k, t(-1), 0.0)).collect();
    write(&store, &known).await;
    let batch = |value: f64| -> Vec<Point> {
        series
            .iter()
            .flat_map(|k| (0..1_500).map(move |s| point(k, t(s), value)))
            .collect()
    };
    let (ones, twos) = (batch(1.0), batch(2.0));
    // Both calls find the points new; whichever commits second must still
    // succeed, replacing the first one's values.
    let (first, second) = tokio::join!(
        store.write_points(&ones, &no_progress),
        store.write_points(&twos, &no_progress),
    );
    assert_eq!(first.expect("first writer"), 30_000);
    assert_eq!(second.expect("second writer"), 30_000);
    let stored = load(&store, &series[19], t(0), t(1_500)).await;
    assert_eq!(stored.len(), 1_500);
    assert!(stored.iter().all(|s| s.value == 1.0 || s.value == 2.0));
}

async fn ping_answers(target: Backend) {
    target.open().await.ping().await.expect("ping");
}

/// The message of `result`'s error, which must be one.
fn error_of<T: std::fmt::Debug>(result: Result<T, store::StoreError>) -> String {
    result
        .expect_err("a stored value outside its type")
        .to_string()
}

/// A word outside its vocabulary, or (SQLite) microseconds that are no
/// instant, fail the read naming the column and the value: no panic, no
/// default, no substitute time.
async fn stored_values_outside_their_types_are_errors_naming_them(target: Backend) {
    let store = target.open().await;
    let at = if target.is_sqlite() {
        "1790812800000000"
    } else {
        "'2026-10-01T00:00:00Z'"
    };
    target
        .exec(&format!(
            "INSERT INTO alerts (objective, key_result, subject, kind, team, state, episode, \
               fired_at, last_sent_at, repeats, details) \
             VALUES ('o', 'k', '', 'stale', 't', 'firing', 1, {at}, {at}, 0, '{{}}'); \
             INSERT INTO deliveries (objective, key_result, subject, episode, event, seq, notifier, \
               payload, status, attempts, next_attempt_at, created_at) \
             VALUES ('o', 'k', '', 1, 'firing', 0, 'hook', '{{}}', 'paused', 0, {at}, {at})"
        ))
        .await;
    let e = error_of(store.alerts(t(0)).await);
    assert!(
        e.contains("\"kind\"") && e.contains("unknown alert kind \"stale\""),
        "{e}"
    );
    let key = store::AlertKey {
        objective: "o".into(),
        key_result: "k".into(),
        subject: String::new(),
    };
    let e = error_of(store.deliveries(&key).await);
    assert!(
        e.contains("\"status\"") && e.contains("unknown delivery status \"paused\""),
        "{e}"
    );
    if target.is_sqlite() {
        let never = i64::MAX;
        target
            .exec(&format!(
                "UPDATE alerts SET kind = 'stale_data', fired_at = {never}; \
                 INSERT INTO connector_state (name, last_tick) VALUES ('c', {never})"
            ))
            .await;
        let e = error_of(store.alerts(t(0)).await);
        assert!(
            e.contains("\"fired_at\"") && e.contains(&never.to_string()),
            "{e}"
        );
        let e = error_of(store.connector_states().await);
        assert!(
            e.contains("\"last_tick\"") && e.contains(&never.to_string()),
            "{e}"
        );
    }
}

#[tokio::test]
async fn sqlite_creates_directory_and_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested/deeper/okrd.db");
    let url = format!("sqlite://{}", path.display());
    assert!(url.starts_with("sqlite:///"));
    let store = store::open(&url).await.expect("open");
    assert!(path.is_file());
    let a = key("m", &[]);
    write(&store, &[point(&a, t(0), 1.0)]).await;
    assert_eq!(load_all(&store, &a).await, samples(&[(t(0), 1.0)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_is_one_database() {
    let store = store::open("sqlite::memory:").await.expect("open");
    let a = key("m", &[]);
    // Concurrent calls would reach different databases if the pool held
    // more than one connection.
    let writes: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let p = point(&a, t(i), i as f64);
            tokio::spawn(async move { store.write_points(&[p], &no_progress).await })
        })
        .collect();
    for write in writes {
        write.await.expect("join").expect("write");
    }
    assert_eq!(load_all(&store, &a).await.len(), 8);
    assert_eq!(metrics(&store).await, set(&["m"]));
}

#[tokio::test]
async fn unsupported_url_is_rejected() {
    assert!(matches!(
        store::open("mysql://localhost/okrd").await,
        Err(store::StoreError::UnsupportedUrl(_))
    ));
}

/// On a server without TimescaleDB (the test machine's PostgreSQL), opening
/// keeps `points` a plain table, says why, and the store works as before;
/// opening again changes nothing.
#[tokio::test]
async fn postgres_without_timescaledb_keeps_a_plain_points_table() {
    if crate::common::pg::skip() {
        return;
    }
    let db = crate::common::pg::fresh_database().await;
    let mut conn = PgConnection::connect(db.url()).await.expect("connect");
    let available: Option<String> = sqlx::query_scalar(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'",
    )
    .fetch_optional(&mut conn)
    .await
    .expect("query extensions");
    if let Some(v) = available {
        // This test is about the fallback; a server that has the extension
        // takes the other path.
        eprintln!("timescaledb {v} is available here: skipping the plain-table test");
        return;
    }
    for _ in 0..2 {
        let pg = store::PostgresStore::open(db.url()).await.expect("open");
        assert_eq!(
            pg.points_layout(),
            &store::PointsLayout::Plain {
                reason: "the timescaledb extension is not available".into()
            }
        );
        let a = key("m", &[]);
        pg.write_points(&[point(&a, t(0), 1.0)], &no_progress)
            .await
            .expect("write");
        pg.close().await;
    }
    let relkind: i8 =
        sqlx::query_scalar("SELECT relkind FROM pg_class WHERE oid = 'points'::regclass")
            .fetch_one(&mut conn)
            .await
            .expect("relkind");
    assert_eq!(relkind as u8, b'r', "points is an ordinary table");
    let installed: Option<String> =
        sqlx::query_scalar("SELECT extname::text FROM pg_extension WHERE extname = 'timescaledb'")
            .fetch_optional(&mut conn)
            .await
            .expect("query pg_extension");
    assert_eq!(installed, None, "no extension was created");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM points")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(count, 1);
    conn.close().await.expect("close");
}

/// okrd's connections to a PostgreSQL URL with `sslmode=verify-full` are
/// encrypted, as the server itself reports (`pg_stat_ssl`); with
/// `sslmode=disable` they are not, so the count can tell the difference.
#[tokio::test]
async fn postgres_over_tls_is_encrypted() {
    if crate::common::pg::skip() {
        return;
    }
    for (tls, expect_encrypted) in [(true, true), (false, false)] {
        let db = crate::common::pg::fresh_database().await;
        let url = if tls {
            crate::common::pg::tls_url(db.url()).await
        } else {
            format!("{}?sslmode=disable", db.url())
        };
        let store = store::open(&url).await.expect("open");
        let s = key("m", &[]);
        store
            .write_points(&[point(&s, t(0), 1.0)], &no_progress)
            .await
            .expect("write");
        let (connections, encrypted) = crate::common::pg::connections_encrypted(db.name()).await;
        assert!(connections >= 1, "the store holds a connection");
        let expected = if expect_encrypted { connections } else { 0 };
        assert_eq!(
            encrypted, expected,
            "{url}: {encrypted} of {connections} encrypted"
        );
    }
}

/// A TLS failure says what failed, and never the password: a CA that did
/// not sign the server's certificate, a host name the certificate does not
/// name, a server that does not speak TLS.
#[tokio::test]
async fn postgres_tls_failures_are_named_without_the_password() {
    if crate::common::pg::skip() {
        return;
    }
    let db = crate::common::pg::fresh_database().await;
    let certs = crate::common::tls::certs();
    // Trust auth ignores the password; it is there to be kept out of messages.
    let with_password = db.url().replacen("postgres@", "postgres:s3cret-pw@", 1);
    let tls = crate::common::pg::tls_url(&with_password).await;
    assert!(tls.contains("@localhost"), "{tls}");
    let wrong_ca = tls.replace(
        &crate::common::pg::server_certificate()
            .await
            .display()
            .to_string(),
        &certs.ca.display().to_string(),
    );
    let wrong_host = tls.replacen("@localhost", "@127.0.0.1", 1);
    // A server that answers "no TLS" to the SSLRequest.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = plain.accept().await {
            let mut request = [0u8; 8];
            let _ = socket.read_exact(&mut request).await;
            let _ = socket.write_all(b"N").await;
        }
    });
    let no_tls = format!("postgres://postgres:s3cret-pw@127.0.0.1:{plain_port}/x?sslmode=require");
    for (url, words) in [
        (&wrong_ca, "not signed by a trusted CA"),
        (&wrong_host, "not valid for the host name"),
        (&no_tls, "does not speak TLS"),
    ] {
        let message = match store::open(url).await {
            Ok(_) => panic!("{url} opened"),
            Err(e) => e.to_string(),
        };
        assert!(message.contains(words), "{url}: {message}");
        assert!(!message.contains("s3cret-pw"), "{message}");
        assert!(message.contains("postgres:***@"), "{message}");
    }
}
