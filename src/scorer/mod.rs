//! The scorer: reads each key result's series from the store and runs the
//! pure scoring functions over them. The one place scores are computed.
//!
//! [`score_all`] serves `okrd score`; [`run`] is `okrd serve`'s task, which
//! recomputes the KRs whose series got points (promptly, coalescing bursts)
//! and every KR once per `scoring.interval` (time alone moves expected
//! scores and windows), records score history, and re-scores history when
//! late or corrected points arrive.
//!
//! - `cache.rs`: the series scored, kept between recomputes, so that a
//!   recompute reads from the store only the points written since.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{Config, KeyResult, Objective};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::model::{minus, Sample, SeriesKey, Timestamp};
use crate::scorecard::{KeyResultRow, ObjectiveRow, Scorecard};
use crate::scoring::guardrail::{counter_data_from, counter_state};
use crate::scoring::{self, KrScore, Margins};
use crate::store::{ScoreRecord, SeriesRange, Store, StoreError};

mod cache;

use cache::SeriesCache;

/// A KR's evaluation together with the samples it was computed from.
pub struct Evaluation {
    /// The row.
    pub row: KeyResultRow,
    /// The KR's samples, as loaded.
    pub samples: Vec<Sample>,
}

/// The status margins of `config`.
pub fn margins(config: &Config) -> Margins {
    Margins {
        at_risk: config.service.at_risk_margin,
        off_track: config.service.off_track_margin,
    }
}

/// Evaluates one KR at `now`: its score, and each counter metric's state.
pub async fn evaluate(
    store: &dyn Store,
    objective: &Objective,
    kr: &KeyResult,
    now: Timestamp,
    margins: Margins,
) -> Result<Evaluation, StoreError> {
    let loaded = store.load_many(&ranges(objective, kr, now)).await?;
    Ok(evaluate_loaded(objective, kr, now, margins, loaded))
}

/// What [`evaluate_loaded`] needs from the store: the KR's series first,
/// then each counter metric's.
fn ranges(objective: &Objective, kr: &KeyResult, now: Timestamp) -> Vec<SeriesRange> {
    let period = &objective.period;
    let at = scoring::evaluation_time(period, now);
    // The score at t − W (for "the KR moves") needs data one W earlier.
    let longest_w = kr
        .counter_metrics
        .iter()
        .map(|c| c.window)
        .max()
        .unwrap_or_default();
    let from = scoring::data_from(kr, period)
        .min(minus(minus(at, longest_w), kr.window.unwrap_or_default()));
    let mut out = Vec::with_capacity(1 + kr.counter_metrics.len());
    out.push(SeriesRange {
        key: SeriesKey::new(kr.metric.clone(), kr.labels.clone()),
        from,
        to: at,
    });
    for cm in &kr.counter_metrics {
        out.push(SeriesRange {
            key: SeriesKey::new(cm.metric.clone(), cm.labels.clone()),
            from: counter_data_from(cm, at),
            to: at,
        });
    }
    out
}

/// Evaluates one KR from its [`ranges`], loaded.
fn evaluate_loaded(
    objective: &Objective,
    kr: &KeyResult,
    now: Timestamp,
    margins: Margins,
    loaded: Vec<Vec<Sample>>,
) -> Evaluation {
    let period = &objective.period;
    let at = scoring::evaluation_time(period, now);
    let mut loaded = loaded.into_iter();
    let samples = loaded.next().unwrap_or_default();
    let s = scoring::score_key_result(kr, period, &samples, now, margins);

    let mut counters = Vec::with_capacity(kr.counter_metrics.len());
    for (cm, csamples) in kr.counter_metrics.iter().zip(loaded) {
        let then = scoring::score_key_result_without_forecast(
            kr,
            period,
            &samples,
            minus(at, cm.window),
            margins,
        );
        counters.push(counter_state(cm, &csamples, at, s.score, then.score));
    }
    let row = KeyResultRow {
        objective: objective.id.clone(),
        key_result: kr.id.clone(),
        value: s.value,
        baseline: s.baseline,
        target: s.target,
        progress: s.progress,
        score: s.score,
        expected: s.expected,
        status: s.status.as_str(),
        forecast: s.forecast,
        team: objective.team.clone(),
        title: kr.title.clone(),
        period: period.label.clone(),
        detail: s,
        counters,
    };
    Evaluation { row, samples }
}

/// Where evaluations get their samples: the store, or the scorer's cache
/// in front of it.
enum Source<'a> {
    Store(&'a dyn Store),
    Cache(&'a mut SeriesCache, &'a dyn Store),
}

impl Source<'_> {
    async fn load(&mut self, ranges: &[SeriesRange]) -> Result<Vec<Vec<Sample>>, StoreError> {
        match self {
            Source::Store(store) => store.load_many(ranges).await,
            Source::Cache(cache, store) => cache.load(*store, ranges).await,
        }
    }
}

/// Evaluates `krs` (an objective and one of its KRs each, at most
/// [`CHUNK`]), loading their series with one call.
async fn evaluate_many<'a>(
    source: &mut Source<'_>,
    krs: &[(&'a Objective, &'a KeyResult)],
    now: Timestamp,
    margins: Margins,
) -> Result<Vec<(&'a Objective, &'a KeyResult, Evaluation)>, StoreError> {
    let mut all = Vec::new();
    let mut lens = Vec::with_capacity(krs.len());
    for (objective, kr) in krs {
        let r = ranges(objective, kr, now);
        lens.push(r.len());
        all.extend(r);
    }
    let mut loaded = source.load(&all).await?.into_iter();
    Ok(krs
        .iter()
        .zip(lens)
        .map(|((objective, kr), n)| {
            let mine: Vec<Vec<Sample>> = loaded.by_ref().take(n).collect();
            let eval = evaluate_loaded(objective, kr, now, margins, mine);
            (*objective, *kr, eval)
        })
        .collect())
}

/// KRs whose series one store call loads: enough that round trips do not
/// matter, few enough that the samples held at once stay small.
const CHUNK: usize = 200;

fn objective_row(objective: &Objective, rows: &[&KeyResultRow]) -> ObjectiveRow {
    let scores: Vec<KrScore> = rows.iter().map(|r| r.detail.clone()).collect();
    ObjectiveRow {
        id: objective.id.clone(),
        score: scoring::objective_score(objective, &scores),
        team: objective.team.clone(),
    }
}

/// Scores every key result of `objectives` at `now`.
pub async fn score_all(
    store: &dyn Store,
    objectives: &[Objective],
    now: Timestamp,
    margins: Margins,
) -> Result<Scorecard, StoreError> {
    let krs: Vec<(&Objective, &KeyResult)> = objectives
        .iter()
        .flat_map(|o| o.key_results.iter().map(move |kr| (o, kr)))
        .collect();
    let mut card = Scorecard::default();
    let mut source = Source::Store(store);
    for chunk in krs.chunks(CHUNK) {
        for (_, _, eval) in evaluate_many(&mut source, chunk, now, margins).await? {
            card.key_results.push(eval.row);
        }
    }
    card.objectives = objective_rows(objectives, &card.key_results);
    Ok(card)
}

/// Each objective's row, from its KRs' rows (in config order).
fn objective_rows(objectives: &[Objective], rows: &[KeyResultRow]) -> Vec<ObjectiveRow> {
    let mut first = 0;
    objectives
        .iter()
        .map(|objective| {
            let n = objective.key_results.len().min(rows.len() - first);
            let mine: Vec<&KeyResultRow> = rows[first..first + n].iter().collect();
            first += n;
            objective_row(objective, &mine)
        })
        .collect()
}

/// Bursts of writes within this long are scored once.
const DEBOUNCE: Duration = Duration::from_millis(10);

/// The most instants one history rebuild evaluates; beyond it, evenly
/// spaced points stand for the rest.
const MAX_HISTORY_EVALUATIONS: usize = 5_000;

/// Runs until `shutdown`: recomputes dirty KRs promptly and all KRs every
/// `scoring.interval`, publishing the scorecard to `live`.
pub async fn run(
    live: Arc<Live>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut scorer = Scorer {
        store,
        clock,
        rows: HashMap::new(),
        history_ready: HashSet::new(),
        cache: SeriesCache::default(),
    };
    let mut next_full = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = live.changed() => tokio::time::sleep(DEBOUNCE).await,
            _ = tokio::time::sleep_until(next_full) => {
                live.mark_all();
                next_full = tokio::time::Instant::now() + live.config().service.scoring_interval;
            }
        }
        let started = std::time::Instant::now();
        match scorer.recompute(&live).await {
            Ok(()) => {
                metrics
                    .recompute_duration
                    .observe(started.elapsed().as_secs_f64());
            }
            Err(e) => {
                tracing::error!(error = %e, "recompute failed; retrying on the next change or tick");
                live.mark_all();
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

type KrKey = (String, String);

struct Scorer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rows: HashMap<KrKey, KeyResultRow>,
    /// KRs whose stored history has been checked (and built if missing)
    /// since this process started.
    history_ready: HashSet<KrKey>,
    /// The series scored, as last loaded.
    cache: SeriesCache,
}

impl Scorer {
    async fn recompute(&mut self, live: &Live) -> Result<(), StoreError> {
        let config = live.config();
        let dirty = live.take_dirty();
        let now = self.clock.now();
        let margins = margins(&config);
        self.cache.expire();
        self.cache.written(&dirty.metrics);
        let mut touched = Vec::new();
        for objective in &config.objectives {
            for kr in &objective.key_results {
                let is_touched = dirty.all
                    || dirty.metrics.contains_key(&kr.metric)
                    || kr
                        .counter_metrics
                        .iter()
                        .any(|c| dirty.metrics.contains_key(&c.metric))
                    || !self
                        .rows
                        .contains_key(&(objective.id.clone(), kr.id.clone()));
                if is_touched {
                    touched.push((objective, kr));
                }
            }
        }
        // A config change marks everything dirty: only then can KRs have
        // gone, and their rows, history marks and series be forgotten.
        if dirty.all {
            let kept: HashSet<(&str, &str)> = touched
                .iter()
                .map(|(o, kr)| (o.id.as_str(), kr.id.as_str()))
                .collect();
            self.rows
                .retain(|(o, kr), _| kept.contains(&(o.as_str(), kr.as_str())));
            self.history_ready
                .retain(|(o, kr)| kept.contains(&(o.as_str(), kr.as_str())));
            let keys: Vec<SeriesKey> = touched
                .iter()
                .flat_map(|(o, kr)| ranges(o, kr, now))
                .map(|r| r.key)
                .collect();
            self.cache.retain(&keys.iter().collect());
        }

        for chunk in touched.chunks(CHUNK) {
            if let Err(e) = self.rescore(chunk, &dirty.metrics, now, margins).await {
                // Put the work back, so nothing is lost if the store is
                // briefly away.
                live.mark_all();
                return Err(e);
            }
        }

        let mut card = Scorecard::default();
        for objective in &config.objectives {
            for kr in &objective.key_results {
                let key = (objective.id.clone(), kr.id.clone());
                card.key_results.push(self.rows[&key].clone());
            }
        }
        card.objectives = objective_rows(&config.objectives, &card.key_results);
        live.set_card(card);
        Ok(())
    }

    /// Evaluates `krs` and records their score history: a row for each
    /// change (in one transaction), or a rebuild for a KR seen for the
    /// first time or with late points. The rows the scorecard is built from
    /// change only once that is written.
    async fn rescore(
        &mut self,
        krs: &[(&Objective, &KeyResult)],
        late: &HashMap<String, Timestamp>,
        now: Timestamp,
        margins: Margins,
    ) -> Result<(), StoreError> {
        let mut source = Source::Cache(&mut self.cache, self.store.as_ref());
        let evaluations = evaluate_many(&mut source, krs, now, margins).await?;
        let mut records = Vec::new();
        for (objective, kr, eval) in &evaluations {
            let key = (objective.id.clone(), kr.id.clone());
            let at = eval.row.detail.at;
            // Points are late when they fall before the last instant this
            // KR's history was recorded at: only then is a recorded row
            // wrong. Points since then (live data) need only the new row.
            let recorded = self.rows.get(&key).map_or(at, |prev| prev.detail.at);
            let late_from = late.get(&kr.metric).copied().filter(|ts| *ts < recorded);
            let rebuild_from = if self.history_ready.contains(&key) {
                late_from
            } else {
                let period = &objective.period;
                let existing = self
                    .store
                    .score_history(
                        &objective.id,
                        &kr.id,
                        minus(period.start, Duration::from_micros(1)),
                        at,
                    )
                    .await?;
                if existing.is_empty() {
                    Some(period.start)
                } else {
                    late_from
                }
            };
            match rebuild_from {
                Some(from) => {
                    let from = from.max(objective.period.start);
                    let rows = history(objective, kr, &eval.samples, from, at, margins);
                    self.store
                        .replace_score_history(&objective.id, &kr.id, from, &rows)
                        .await?;
                }
                // What the newest recorded row already says is not written
                // again: a full recompute of unchanged data writes nothing.
                None if self
                    .rows
                    .get(&key)
                    .is_some_and(|prev| same_record(&prev.detail, &eval.row.detail)) => {}
                None => records.push(record(objective, kr, &eval.row.detail)),
            }
            self.history_ready.insert(key);
        }
        self.store.record_scores(&records).await?;
        for (objective, kr, eval) in evaluations {
            self.rows
                .insert((objective.id.clone(), kr.id.clone()), eval.row);
        }
        Ok(())
    }
}

/// Whether two evaluations make the same score-history row (SPEC's
/// history keeps a row per change of value, progress, score or status).
fn same_record(a: &KrScore, b: &KrScore) -> bool {
    a.value == b.value && a.progress == b.progress && a.score == b.score && a.status == b.status
}

fn record(objective: &Objective, kr: &KeyResult, s: &KrScore) -> ScoreRecord {
    ScoreRecord {
        objective: objective.id.clone(),
        key_result: kr.id.clone(),
        at: s.at,
        value: s.value,
        progress: s.progress,
        score: s.score,
        expected: s.expected,
        status: s.status,
    }
}

/// The KR's history in [from, at]: evaluated at each point's ts (the
/// instants its data changed) and at `at`, keeping only changes.
fn history(
    objective: &Objective,
    kr: &KeyResult,
    samples: &[Sample],
    from: Timestamp,
    at: Timestamp,
    margins: Margins,
) -> Vec<ScoreRecord> {
    let mut times: Vec<Timestamp> = samples
        .iter()
        .map(|s| s.ts)
        .filter(|ts| *ts >= from && *ts <= at)
        .collect();
    if times.len() > MAX_HISTORY_EVALUATIONS {
        let step = times.len().div_ceil(MAX_HISTORY_EVALUATIONS);
        times = times.into_iter().step_by(step).collect();
    }
    if times.last() != Some(&at) {
        times.push(at);
    }
    let mut out: Vec<ScoreRecord> = Vec::with_capacity(times.len());
    for t in times {
        let s =
            scoring::score_key_result_without_forecast(kr, &objective.period, samples, t, margins);
        let r = record(objective, kr, &s);
        let same = out.last().is_some_and(|p| {
            p.value == r.value
                && p.progress == r.progress
                && p.score == r.score
                && p.status == r.status
        });
        if !same {
            out.push(r);
        }
    }
    out
}
