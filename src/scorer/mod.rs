//! The scorer: reads each key result's series from the store and runs the
//! pure scoring functions over them. The one place scores are computed.
//!
//! [`score_all`] serves `okrd score`; [`run`] is `okrd serve`'s task, which
//! recomputes the KRs whose series got points (promptly, coalescing bursts)
//! and every KR once per `scoring.interval` (time alone moves expected
//! scores and windows), records score history, and re-scores history when
//! late or corrected points arrive.
//!
//! Each KR whose history is built keeps its running state (baseline,
//! window, the forecast's sums: `scoring::Running`) in its slot, and a
//! rescore advances it with the points written since: it costs the windows
//! the KR reads, not its period. A state is built again from the KR's whole
//! series, read from the store, after a late point at or before what it
//! holds, a new period, a reload that changes how the KR reads its series,
//! or when the change feed cannot prove the scorer current.
//!
//! - `cache.rs`: the windows scored, kept between recomputes, so that a
//!   recompute reads from the store only the points written since; after
//!   each full rescore it keeps only what each series is read from next.
//! - `dense.rs`: the cache's columns, 4 bytes a timestamp or value where
//!   that holds it exactly.
//! - `slots.rs`: the rows, one slot per KR in config order, and the KRs
//!   that read each metric; a publish shares unchanged rows.
//! - `timeline.rs`: each KR's definitions over time, recorded by the start
//!   or reload that laid the slots out: history is scored under the
//!   definition in force at each instant, and names its revision.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::SubsecRound;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{Config, KeyResult, Objective};
use crate::definition::Definition;
use crate::feed::{self, Follower};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::model::{minus, Sample, SeriesKey, Timestamp};
use crate::scorecard::{KeyResultRow, ObjectiveRow, Scorecard};
use crate::scoring::guardrail::{counter_data_from, counter_state};
use crate::scoring::{self, KrScore, Margins, Running};
use crate::store::{HistoryRewrite, NewDefinition, ScoreRecord, SeriesRange, Store, StoreError};

mod cache;
mod dense;
mod slots;
mod timeline;

use cache::SeriesCache;
use slots::Slots;
use timeline::Timeline;

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
    let loaded = store.load_many(&ranges(objective, kr, now, None)).await?;
    Ok(evaluate_loaded(objective, kr, now, margins, loaded, true).0)
}

/// What [`evaluate_loaded`] needs from the store: the KR's series first,
/// then each counter metric's. With `since` (a running state's
/// [`Running::through`]), what advancing that state needs instead: the
/// KR's series only from the windows read at the evaluation time, and
/// every point after `since`.
fn ranges(
    objective: &Objective,
    kr: &KeyResult,
    now: Timestamp,
    since: Option<Timestamp>,
) -> Vec<SeriesRange> {
    let period = &*objective.period.at(now);
    let at = scoring::evaluation_time(period, now);
    // The score at t − W (for "the KR moves") needs data one W earlier.
    let longest_w = kr
        .counter_metrics
        .iter()
        .map(|c| c.window)
        .max()
        .unwrap_or_default();
    let windows = minus(minus(at, longest_w), kr.window.unwrap_or_default());
    let from = match since {
        None => scoring::data_from(kr, period).min(windows),
        Some(since) => windows.min(since),
    };
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

/// What a plain evaluation of a KR at `now` reads, as two lists: the KR's
/// own series at the instants it is evaluated at (the period start, for
/// the baseline; `at`; and `at` - W for each counter metric's "the KR
/// moves"), each the latest point at or before the instant plus, for a
/// windowed aggregate, the window before it; then each counter metric's
/// range, as [`ranges`] has it.
fn sparse_ranges(
    objective: &Objective,
    kr: &KeyResult,
    now: Timestamp,
) -> (Vec<SeriesRange>, Vec<SeriesRange>) {
    let period = &*objective.period.at(now);
    let at = scoring::evaluation_time(period, now);
    let key = SeriesKey::new(kr.metric.clone(), kr.labels.clone());
    let instants = [period.start, at]
        .into_iter()
        .chain(kr.counter_metrics.iter().map(|c| minus(at, c.window)));
    let own = instants
        .map(|t| SeriesRange {
            key: key.clone(),
            from: kr.window.map_or(t, |w| minus(t, w)),
            to: t,
        })
        .collect();
    let mut all = ranges(objective, kr, now, None);
    all.remove(0);
    (own, all)
}

/// Evaluates one KR from its [`ranges`], loaded: its row, and its running
/// state through the evaluation time.
fn evaluate_loaded(
    objective: &Objective,
    kr: &KeyResult,
    now: Timestamp,
    margins: Margins,
    loaded: Vec<Vec<Sample>>,
    with_forecast: bool,
) -> (Evaluation, Running) {
    let period = &*objective.period.at(now);
    let at = scoring::evaluation_time(period, now);
    let mut loaded = loaded.into_iter();
    let samples = loaded.next().unwrap_or_default();
    let running = Running::new(kr, period, &samples, at);
    let row = row_of(
        objective,
        kr,
        now,
        margins,
        &running,
        &samples,
        loaded,
        with_forecast,
    );
    (Evaluation { row, samples }, running)
}

/// Advances `running` with one KR's [`ranges`] since its
/// [`Running::through`], loaded, and evaluates the KR.
fn evaluate_advanced(
    objective: &Objective,
    kr: &KeyResult,
    now: Timestamp,
    margins: Margins,
    running: &mut Running,
    loaded: Vec<Vec<Sample>>,
) -> Evaluation {
    let period = &*objective.period.at(now);
    let at = scoring::evaluation_time(period, now);
    let mut loaded = loaded.into_iter();
    let samples = loaded.next().unwrap_or_default();
    running.advance(&samples, at);
    let row = row_of(objective, kr, now, margins, running, &samples, loaded, true);
    Evaluation { row, samples }
}

/// The KR's row from its running state through the evaluation time, its
/// own samples (at least the windows read then) and each counter metric's.
#[allow(clippy::too_many_arguments)]
fn row_of(
    objective: &Objective,
    kr: &KeyResult,
    now: Timestamp,
    margins: Margins,
    running: &Running,
    samples: &[Sample],
    counter_samples: impl Iterator<Item = Vec<Sample>>,
    with_forecast: bool,
) -> KeyResultRow {
    let period = &*objective.period.at(now);
    let at = scoring::evaluation_time(period, now);
    let s = scoring::score_running(kr, period, running, samples, now, margins, with_forecast);
    let mut counters = Vec::with_capacity(kr.counter_metrics.len());
    for (cm, csamples) in kr.counter_metrics.iter().zip(counter_samples) {
        let then = scoring::score_running(
            kr,
            period,
            running,
            samples,
            minus(at, cm.window),
            margins,
            false,
        );
        counters.push(counter_state(cm, &csamples, at, s.score, then.score));
    }
    KeyResultRow {
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
        forecast_probability: s.forecast_probability,
        team: objective.team.clone(),
        title: kr.title.clone(),
        period: period.label.clone(),
        detail: s,
        counters,
        history_building: false,
        revision: 0,
        revisions: Default::default(),
    }
}

/// Evaluates `krs` (an objective and one of its KRs each, at most
/// [`CHUNK`]) from their whole series, loaded with one store call: each
/// one's row and running state.
async fn evaluate_many<'a>(
    store: &dyn Store,
    krs: &[(&'a Objective, &'a KeyResult)],
    now: Timestamp,
    margins: Margins,
) -> Result<Vec<(Evaluation, Running)>, StoreError> {
    let mut all = Vec::new();
    let mut lens = Vec::with_capacity(krs.len());
    for (objective, kr) in krs {
        let r = ranges(objective, kr, now, None);
        lens.push(r.len());
        all.extend(r);
    }
    let mut loaded = store.load_many(&all).await?.into_iter();
    Ok(krs
        .iter()
        .zip(lens)
        .map(|((objective, kr), n)| {
            let mine: Vec<Vec<Sample>> = loaded.by_ref().take(n).collect();
            evaluate_loaded(objective, kr, now, margins, mine, true)
        })
        .collect())
}

/// KRs whose series one store call loads: enough that round trips do not
/// matter, few enough that the samples held at once stay small.
const CHUNK: usize = 200;

/// Scores every key result of `config` at `now`.
pub async fn score_all(
    store: &dyn Store,
    config: &Config,
    now: Timestamp,
    margins: Margins,
) -> Result<Scorecard, StoreError> {
    let krs: Vec<(&Objective, &KeyResult)> = config
        .objectives
        .iter()
        .flat_map(|o| o.key_results.iter().map(move |kr| (o, kr)))
        .collect();
    let mut card = Scorecard::default();
    for chunk in krs.chunks(CHUNK) {
        for (eval, _) in evaluate_many(store, chunk, now, margins).await? {
            card.key_results.push(Arc::new(eval.row));
        }
    }
    card.objectives = objective_rows(config, &card.key_results);
    Ok(card)
}

/// Each objective's row, from its KRs' rows (in config order), with its
/// roll-up.
fn objective_rows(config: &Config, rows: &[Arc<KeyResultRow>]) -> Vec<ObjectiveRow> {
    let objectives = &config.objectives;
    let mut first = 0;
    let mut scores: Vec<f64> = objectives
        .iter()
        .map(|objective| {
            let n = objective.key_results.len().min(rows.len() - first);
            let mine = &rows[first..first + n];
            first += n;
            scoring::objective_score(objective, mine.iter().map(|r| &r.detail))
        })
        .collect();
    let rollups = scoring::rollups(objectives, config.alignment(), &mut scores);
    objectives
        .iter()
        .zip(scores.into_iter().zip(rollups))
        .map(|(objective, (score, rollup))| ObjectiveRow {
            id: objective.id.clone(),
            score,
            rollup,
            team: objective.team.clone(),
        })
        .collect()
}

/// KRs whose definitions one store call records.
const DEFINITION_CHUNK: usize = 1_000;

/// Bursts of writes within this long are scored once.
const DEBOUNCE: Duration = Duration::from_millis(10);

/// The most instants one history rebuild evaluates; beyond it, evenly
/// spaced points stand for the rest.
const MAX_HISTORY_EVALUATIONS: usize = 5_000;

/// Runs until `shutdown`: recomputes dirty KRs promptly and all KRs every
/// `scoring.interval`, publishing the scorecard to `live`.
///
/// A start (or a reload that adds KRs) publishes a scorecard from one plain
/// evaluation of every KR first; the KRs' score history is built after
/// that, [`CHUNK`] KRs at a time, with new points, interval ticks and
/// reloads served between chunks.
///
/// Before each recompute, and at least every [`feed::POLL`], it reads the
/// change feed (`follower`), so that points other processes wrote are
/// scored too; the position read up to is the scorecard's view.
pub async fn run(
    live: Arc<Live>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    mut follower: Follower,
    shutdown: CancellationToken,
) {
    let mut scorer = Scorer::new(store, clock, follower.view());
    let mut next_full = tokio::time::Instant::now();
    let mut building = false;
    loop {
        if building {
            // History is pending: recompute only what is dirty, then go on
            // with the next chunk, without waiting.
            tokio::task::yield_now().await;
            if shutdown.is_cancelled() {
                return;
            }
            if tokio::time::Instant::now() >= next_full {
                live.mark_all();
                next_full = tokio::time::Instant::now() + live.config().service.scoring_interval;
            }
        } else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = live.changed() => tokio::time::sleep(DEBOUNCE).await,
                _ = tokio::time::sleep_until(next_full) => {
                    live.mark_all();
                    next_full = tokio::time::Instant::now() + live.config().service.scoring_interval;
                }
                _ = tokio::time::sleep(feed::POLL) => {}
            }
        }
        // Every change below the view is marked before the dirty set is
        // taken, so the scorecard holds it.
        follower.read(scorer.store.as_ref(), &live).await;
        scorer.view = follower.view();
        if !building && !live.is_dirty() {
            continue;
        }
        let step = async {
            if !building || live.is_dirty() {
                let started = std::time::Instant::now();
                scorer.recompute(&live).await?;
                // The pending count first: a reader that sees a recompute
                // counted also sees how many histories it left to build.
                metrics.history_pending.set(scorer.pending as i64);
                metrics
                    .recompute_duration
                    .observe(started.elapsed().as_secs_f64());
            }
            scorer.build_history(&live).await
        };
        let stepped = step.await;
        metrics.history_pending.set(scorer.pending as i64);
        match stepped {
            Ok(pending) => building = pending,
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

struct Scorer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Every KR's row and history mark, and the KRs each metric feeds.
    slots: Slots,
    /// The series scored, as last loaded.
    cache: SeriesCache,
    /// The change-feed position the next scorecard is published at.
    view: i64,
    /// KRs of the last published scorecard whose history is being built.
    pending: usize,
    /// The chunk of history being written, if any.
    writing: Option<Writing>,
}

/// A chunk of KRs with their history evaluated.
struct Built {
    /// Its slots, ascending.
    slots: Vec<usize>,
    /// Each slot's row as built, the row the slot had then, and its
    /// running state.
    rows: Vec<(KeyResultRow, Option<Arc<KeyResultRow>>, Running)>,
}

/// A chunk of KRs whose history is being written, in a task of its own.
struct Writing {
    /// The chunk.
    built: Built,
    /// The metrics its KRs read that got points since it was evaluated,
    /// each with the earliest ts.
    touched: HashMap<String, Timestamp>,
    /// The write.
    task: tokio::task::JoinHandle<Result<(), StoreError>>,
}

impl Writing {
    /// Notes the metrics of `written` that any of its KRs reads.
    fn note(&mut self, slots: &Slots, written: &HashMap<String, Timestamp>) {
        for (metric, ts) in written {
            let readers = slots.readers_of(std::iter::once(metric));
            if readers
                .iter()
                .any(|i| self.built.slots.binary_search(i).is_ok())
            {
                let earliest = self.touched.entry(metric.clone()).or_insert(*ts);
                *earliest = (*earliest).min(*ts);
            }
        }
    }
}

impl Scorer {
    /// A scorer with nothing scored yet, publishing at change-feed
    /// position `view` first.
    fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, view: i64) -> Self {
        Scorer {
            store,
            clock,
            slots: Slots::default(),
            cache: SeriesCache::default(),
            view,
            pending: 0,
            writing: None,
        }
    }

    async fn recompute(&mut self, live: &Live) -> Result<(), StoreError> {
        let config = live.config();
        let dirty = live.take_dirty();
        let now = self.clock.now();
        let margins = margins(&config);
        // A chunk of history being written was evaluated from what the
        // scorer held: after a reload it is built again; otherwise what
        // was written since is scored into it once it is in.
        if dirty.reload || !self.slots.laid_out_for(&config) {
            let _ = self.finish_writing(live, false).await;
        } else if let Some(writing) = &mut self.writing {
            writing.note(&self.slots, &dirty.metrics);
        }
        if dirty.reload {
            // Neither the cache nor a running state can be proven current.
            self.cache.clear();
            for slot in self.slots.iter_mut() {
                slot.running = None;
            }
        }
        self.cache.written(&dirty.metrics);
        // A config change lays the slots out again (forgetting KRs that
        // went) and rescores everything; a write rescores only the KRs that
        // read what it wrote. An interval tick rescores every KR whose
        // history is built: one still waiting for it keeps its plain row
        // until its history comes (seconds), unless its data changed (or it
        // has no row yet: a failed recompute is retried this way), so that
        // ticks do not slow the build down by evaluating it again.
        // A start or reload records the KRs' definitions first (a change
        // while a KR's period runs is a revision) and takes their timelines,
        // so every row scored under this config names its revision.
        let timelines = if self.slots.laid_out_for(&config) {
            None
        } else {
            match self.timelines(&config, now).await {
                Ok(t) => Some(t),
                Err(e) => {
                    live.mark_all();
                    return Err(e);
                }
            }
        };
        let relaid = self.slots.lay_out(&config);
        if let Some(timelines) = timelines {
            for (i, timeline) in timelines.into_iter().enumerate() {
                self.slots.get_mut(i).timeline = timeline;
            }
        }
        let written = self.slots.readers_of(dirty.metrics.keys());
        let touched: Vec<usize> = if relaid {
            (0..self.slots.len()).collect()
        } else if dirty.all {
            (0..self.slots.len())
                .filter(|&i| {
                    let slot = self.slots.get(i);
                    slot.ready || slot.row.is_none() || written.binary_search(&i).is_ok()
                })
                .collect()
        } else {
            written
        };
        if relaid {
            // A KR kept by the new layout keeps its state unless it reads
            // its series differently now.
            for i in 0..self.slots.len() {
                let (_, kr) = self.slots.kr(&config, i);
                let slot = self.slots.get_mut(i);
                if slot.running.as_ref().is_some_and(|r| !r.built_for(kr)) {
                    slot.running = None;
                }
            }
        }

        // KRs whose history is not built yet get a plain evaluation from the
        // few points it needs, so that neither a start nor a recompute waits
        // for their whole series; the rest are rescored from the cache.
        let started = std::time::Instant::now();
        let (plain, known): (Vec<usize>, Vec<usize>) =
            touched.into_iter().partition(|i| !self.slots.get(*i).ready);
        for chunk in plain.chunks(CHUNK) {
            if let Err(e) = self.plain_rows(&config, chunk, now, margins).await {
                live.mark_all();
                return Err(e);
            }
        }
        // When every KR whose history is built is rescored, what each reads
        // next is known: the cache keeps only that.
        let mut floors = (relaid || dirty.all).then(HashMap::new);
        for chunk in known.chunks(CHUNK) {
            if let Err(e) = self
                .rescore(
                    &config,
                    chunk,
                    &dirty.metrics,
                    now,
                    margins,
                    floors.as_mut(),
                )
                .await
            {
                // Put the work back, so nothing is lost if the store is
                // briefly away.
                live.mark_all();
                return Err(e);
            }
        }

        if let Some(floors) = floors {
            self.cache.trim(&floors);
        }
        let scored = started.elapsed();
        self.publish(live);
        tracing::debug!(
            plain = plain.len(),
            rescored = known.len(),
            scored_ms = scored.as_secs_f64() * 1e3,
            published_ms = (started.elapsed() - scored).as_secs_f64() * 1e3,
            "recomputed"
        );
        Ok(())
    }

    /// Records every KR's definition of `config` at `now` and returns each
    /// KR's timeline, in config order. [`DEFINITION_CHUNK`] KRs a call, so
    /// that a reload holds one chunk's definitions beside the two configs,
    /// not every KR's.
    async fn timelines(
        &self,
        config: &Config,
        now: Timestamp,
    ) -> Result<Vec<Timeline>, StoreError> {
        let krs: Vec<(&Objective, &KeyResult)> = config
            .objectives
            .iter()
            .flat_map(|o| o.key_results.iter().map(move |kr| (o, kr)))
            .collect();
        let mut out = Vec::with_capacity(krs.len());
        for chunk in krs.chunks(DEFINITION_CHUNK) {
            let defs: Vec<NewDefinition> = chunk
                .iter()
                .map(|(o, kr)| {
                    let period = o.period.at(now);
                    NewDefinition {
                        objective: o.id.clone(),
                        key_result: kr.id.clone(),
                        definition: Definition::of(o, kr),
                        running: period.start <= now && now < period.end,
                    }
                })
                .collect();
            let stored = self.store.record_definitions(&defs, now).await?;
            out.extend(
                chunk
                    .iter()
                    .zip(&defs)
                    .zip(stored)
                    .map(|(((_, kr), d), rows)| Timeline::new(&rows, kr, &d.definition)),
            );
        }
        Ok(out)
    }

    /// Publishes the scorecard of every KR's latest row: the rows are
    /// shared with the slots (an `Arc` each), not copied. Nothing is
    /// published while a KR of the layout has no row yet.
    fn publish(&mut self, live: &Live) {
        let Some(config) = self.slots.config().cloned() else {
            return;
        };
        let mut card = Scorecard {
            key_results: Vec::with_capacity(self.slots.len()),
            ..Scorecard::default()
        };
        let mut pending = 0;
        for slot in self.slots.iter_mut() {
            let Some(row) = slot.row.as_mut() else {
                return;
            };
            if row.history_building == slot.ready {
                Arc::make_mut(row).history_building = !slot.ready;
            }
            pending += usize::from(!slot.ready);
            card.key_results.push(Arc::clone(row));
        }
        self.pending = pending;
        card.objectives = objective_rows(&config, &card.key_results);
        card.view = self.view;
        live.set_card(card);
    }

    /// Builds the score history of up to [`CHUNK`] KRs whose history is not
    /// known to be complete since this process started, in config order.
    /// Returns whether more are pending.
    ///
    /// A chunk's rows are written in a task of their own while the next
    /// chunk is evaluated, so that the database's work and the scorer's
    /// overlap: each call evaluates the next chunk, then waits for the
    /// chunk before it to be written (its KRs are then ready, and the
    /// scorecard is published again), then starts writing its own.
    ///
    /// A KR without stored history gets it from its period start; one with
    /// history (a restart) gets it from just after its newest row, so that
    /// the time the process was down is filled in.
    async fn build_history(&mut self, live: &Live) -> Result<bool, StoreError> {
        // The config the slots are laid out for: a reload since is laid out
        // by the next recompute, which it marked due.
        let Some(config) = self.slots.config().cloned() else {
            return Ok(false);
        };
        let busy = self
            .writing
            .as_ref()
            .map_or(&[][..], |w| &w.built.slots[..]);
        let chunk: Vec<usize> = self
            .slots
            .not_ready()
            .filter(|i| busy.binary_search(i).is_err())
            .take(CHUNK)
            .collect();
        let next = if chunk.is_empty() {
            None
        } else {
            Some(self.history_chunk(&config, chunk).await?)
        };
        self.finish_writing(live, true).await?;
        let Some((built, rewrites)) = next else {
            return Ok(false);
        };
        let store = Arc::clone(&self.store);
        self.writing = Some(Writing {
            built,
            touched: HashMap::new(),
            task: tokio::spawn(async move { store.rewrite_histories(&rewrites).await }),
        });
        Ok(true)
    }

    /// Evaluates the KRs of `slots` (ascending), and their history since
    /// the newest row each has stored, which [`Scorer::build_history`]
    /// writes.
    async fn history_chunk(
        &mut self,
        config: &Config,
        slots: Vec<usize>,
    ) -> Result<(Built, Vec<HistoryRewrite>), StoreError> {
        let krs = self.slots.krs(config, &slots);
        let now = self.clock.now();
        let margins = margins(config);
        let ids: Vec<(&str, &str)> = krs
            .iter()
            .map(|(o, kr)| (o.id.as_str(), kr.id.as_str()))
            .collect();
        let ends = self.store.history_ends(&ids).await?;
        let evaluations = evaluate_many(self.store.as_ref(), &krs, now, margins).await?;
        let mut rewrites = Vec::with_capacity(slots.len());
        let mut rows = Vec::with_capacity(slots.len());
        for (((i, (objective, kr)), (eval, running)), end) in
            slots.iter().zip(&krs).zip(evaluations).zip(ends)
        {
            let start = objective.period.at(now).start;
            let from = match end {
                Some(end) => end + chrono::TimeDelta::microseconds(1),
                None => start,
            }
            .max(start);
            let at = eval.row.detail.at;
            let slot = self.slots.get(*i);
            let timeline = &slot.timeline;
            let from = timeline.rescorable_since(kr).map_or(from, |t| from.max(t));
            rewrites.push(HistoryRewrite {
                objective: objective.id.clone(),
                key_result: kr.id.clone(),
                from,
                records: history(
                    objective,
                    kr,
                    timeline,
                    &running,
                    &eval.samples,
                    from,
                    at,
                    margins,
                ),
            });
            rows.push((eval.row, slot.row.clone(), running));
        }
        Ok((Built { slots, rows }, rewrites))
    }

    /// Waits for the chunk of history being written, if any. Written and
    /// `apply`: its KRs are ready, each with the row it was built with
    /// (unless a recompute scored it since: that row is newer), and the
    /// metrics written since it was evaluated are marked again, so that
    /// the next recompute scores their points into its history. Not
    /// `apply` (a reload): its KRs stay as they are, not ready, and build
    /// again from the end of what was written.
    async fn finish_writing(&mut self, live: &Live, apply: bool) -> Result<(), StoreError> {
        let Some(writing) = self.writing.take() else {
            return Ok(());
        };
        let written = match writing.task.await {
            Ok(written) => written,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only at the runtime's shutdown: nothing more is published.
            Err(_) => return Ok(()),
        };
        if !apply {
            return Ok(());
        }
        written?;
        let Built { slots, rows } = writing.built;
        for (&i, (row, before, running)) in slots.iter().zip(rows) {
            let slot = self.slots.get_mut(i);
            slot.ready = true;
            slot.running = Some(running);
            let rescored = match (&slot.row, &before) {
                (Some(now), Some(before)) => !Arc::ptr_eq(now, before),
                (now, _) => now.is_some(),
            };
            if !rescored {
                slot.row = Some(Arc::new(stamped(row, &slot.timeline)));
            }
        }
        if !writing.touched.is_empty() {
            live.metrics_written(writing.touched.iter().map(|(m, ts)| (m.as_str(), *ts)));
        }
        self.publish(live);
        Ok(())
    }

    /// The rows of `krs`, whose history is not built yet: one plain
    /// evaluation (no forecast, no history) from only the points it needs,
    /// read straight from the store (see [`sparse_ranges`]), so that a start
    /// publishes scores long before every series is read. The forecast
    /// comes with the KR's history ([`Scorer::build_history`]). A KR whose
    /// baseline would be its earliest point in the period (no point at or
    /// before the start) is evaluated from its whole series instead.
    async fn plain_rows(
        &mut self,
        config: &Config,
        slots: &[usize],
        now: Timestamp,
        margins: Margins,
    ) -> Result<(), StoreError> {
        let krs = self.slots.krs(config, slots);
        let mut all = Vec::new();
        let mut shapes = Vec::with_capacity(krs.len());
        for (objective, kr) in &krs {
            let (own, rest) = sparse_ranges(objective, kr, now);
            shapes.push((own.len(), rest.len()));
            all.extend(own);
            all.extend(rest);
        }
        let mut loaded = self.store.load_many(&all).await?.into_iter();
        let mut whole = Vec::new();
        for ((&i, (objective, kr)), (own, rest)) in slots.iter().zip(&krs).zip(shapes) {
            let mut samples: Vec<Sample> = loaded.by_ref().take(own).flatten().collect();
            samples.sort_by_key(|s| s.ts);
            samples.dedup_by_key(|s| s.ts);
            let mut series = vec![samples];
            series.extend(loaded.by_ref().take(rest));
            let (eval, _) = evaluate_loaded(objective, kr, now, margins, series, false);
            // Without a point at or before the period start, the baseline is
            // the earliest point in the period, which only the whole series
            // tells.
            let d = &eval.row.detail;
            let baseline_from_earliest = match d.baseline_source {
                scoring::BaselineSource::EarliestInPeriod(_) => true,
                scoring::BaselineSource::Unavailable => d.newest_point.is_some(),
                _ => false,
            };
            if baseline_from_earliest {
                whole.push(i);
                continue;
            }
            let slot = self.slots.get_mut(i);
            slot.row = Some(Arc::new(stamped(eval.row, &slot.timeline)));
        }
        if !whole.is_empty() {
            let krs = self.slots.krs(config, &whole);
            let evaluations = evaluate_many(self.store.as_ref(), &krs, now, margins).await?;
            for (i, (eval, _)) in whole.iter().zip(evaluations) {
                let slot = self.slots.get_mut(*i);
                slot.row = Some(Arc::new(stamped(eval.row, &slot.timeline)));
            }
        }
        Ok(())
    }

    /// Evaluates `krs`, whose history is built, and records it: a row for
    /// each change (in one transaction), or a rewrite from the earliest late
    /// point. (KRs whose history is not built yet go to
    /// [`Scorer::plain_rows`].) The rows the scorecard is built from change
    /// only once that is written.
    async fn rescore(
        &mut self,
        config: &Config,
        slots: &[usize],
        late: &HashMap<String, Timestamp>,
        now: Timestamp,
        margins: Margins,
        mut floors: Option<&mut HashMap<SeriesKey, Timestamp>>,
    ) -> Result<(), StoreError> {
        let krs = self.slots.krs(config, slots);
        let evaluations = self.evaluate_known(slots, &krs, late, now, margins).await?;
        let mut records = Vec::new();
        let mut rewrites = Vec::new();
        for ((&i, (objective, kr)), (eval, running)) in slots.iter().zip(&krs).zip(&evaluations) {
            let previous = self.slots.get(i).row.as_deref();
            let timeline = &self.slots.get(i).timeline;
            let revision = timeline.revision();
            let at = eval.row.detail.at;
            // Points are late when they fall before the last instant this
            // KR's history was recorded at: only then is a recorded row
            // wrong. Points since then (live data) need only the new row.
            let recorded = previous.map_or(at, |prev| prev.detail.at);
            let late_from = late.get(&kr.metric).copied().filter(|ts| *ts < recorded);
            match late_from {
                Some(from) => {
                    let from = from.max(objective.period.at(now).start);
                    let from = timeline.rescorable_since(kr).map_or(from, |t| from.max(t));
                    rewrites.push(HistoryRewrite {
                        objective: objective.id.clone(),
                        key_result: kr.id.clone(),
                        from,
                        records: history(
                            objective,
                            kr,
                            timeline,
                            running,
                            &eval.samples,
                            from,
                            at,
                            margins,
                        ),
                    });
                }
                // What the newest recorded row already says is not written
                // again: a full recompute of unchanged data writes nothing
                // (a revision is a change: the row after it names it).
                None if previous.is_some_and(|prev| {
                    prev.revision == revision && same_record(&prev.detail, &eval.row.detail)
                }) => {}
                None => records.push(record(objective, kr, &eval.row.detail, revision)),
            }
        }
        if !rewrites.is_empty() {
            self.store.rewrite_histories(&rewrites).await?;
        }
        self.store.record_scores(&records).await?;
        for ((&i, (objective, kr)), (eval, running)) in slots.iter().zip(&krs).zip(evaluations) {
            if let Some(floors) = floors.as_deref_mut() {
                for r in ranges(objective, kr, now, Some(running.reads_from())) {
                    let floor = floors.entry(r.key).or_insert(r.from);
                    *floor = (*floor).min(r.from);
                }
            }
            let slot = self.slots.get_mut(i);
            slot.row = Some(Arc::new(stamped(eval.row, &slot.timeline)));
            slot.running = Some(running);
        }
        Ok(())
    }

    /// Evaluates `krs` (of `slots`), whose history is built. A KR whose
    /// running state is current advances it with the points its cached
    /// series got since; the rest (no state, a new period, a point written
    /// at or before the newest the state holds, or under an earlier
    /// definition) are evaluated from their whole series, read from the
    /// store, which gives them a state again.
    async fn evaluate_known(
        &mut self,
        slots: &[usize],
        krs: &[(&Objective, &KeyResult)],
        late: &HashMap<String, Timestamp>,
        now: Timestamp,
        margins: Margins,
    ) -> Result<Vec<(Evaluation, Running)>, StoreError> {
        let mut whole = Vec::new();
        // Each with its state, taken from its slot (a failed load leaves the
        // slot without one, to be built again).
        let mut advancing = Vec::new();
        for (j, (&i, (objective, kr))) in slots.iter().zip(krs).enumerate() {
            let slot = self.slots.get(i);
            let period = objective.period.at(now);
            // A point written since that the state can take (after every
            // point it holds) is folded in, also when it is before the
            // instant the history was last recorded at: the rows from there
            // are scored again from the cached window and the state's
            // baseline, if the KR as configured now was in force then. The
            // store keeps whole microseconds: a point written at `ts` is
            // stored at `ts` truncated.
            let late = late.get(&kr.metric).map(|ts| ts.trunc_subsecs(6));
            let in_force = slot.timeline.current_since();
            let current = slot.running.as_ref().is_some_and(|r| {
                r.advances(&period)
                    && late.is_none_or(|ts| r.takes(ts) && in_force.is_none_or(|since| ts >= since))
            });
            match self.slots.get_mut(i).running.take() {
                Some(running) if current => advancing.push((j, running)),
                _ => whole.push(j),
            }
        }
        tracing::trace!(
            whole = whole.len(),
            advancing = advancing.len(),
            "evaluating"
        );
        let mut out: Vec<Option<(Evaluation, Running)>> = (0..slots.len()).map(|_| None).collect();
        if !whole.is_empty() {
            let picked: Vec<_> = whole.iter().map(|&j| krs[j]).collect();
            let evaluations = evaluate_many(self.store.as_ref(), &picked, now, margins).await?;
            for (&j, evaluation) in whole.iter().zip(evaluations) {
                out[j] = Some(evaluation);
            }
        }
        if !advancing.is_empty() {
            let mut all = Vec::new();
            let mut lens = Vec::with_capacity(advancing.len());
            for (j, running) in &advancing {
                let (objective, kr) = krs[*j];
                let r = ranges(objective, kr, now, Some(running.reads_from()));
                lens.push(r.len());
                all.extend(r);
            }
            let mut loaded = self
                .cache
                .load(self.store.as_ref(), &all)
                .await?
                .into_iter();
            for ((j, mut running), n) in advancing.into_iter().zip(lens) {
                let (objective, kr) = krs[j];
                let mine: Vec<Vec<Sample>> = loaded.by_ref().take(n).collect();
                let eval = evaluate_advanced(objective, kr, now, margins, &mut running, mine);
                out[j] = Some((eval, running));
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

/// Whether two evaluations make the same score-history row (SPEC's
/// history keeps a row per change of value, progress, score or status).
fn same_record(a: &KrScore, b: &KrScore) -> bool {
    a.value == b.value && a.progress == b.progress && a.score == b.score && a.status == b.status
}

/// `row` with the revision in force now and the KR's revisions.
fn stamped(mut row: KeyResultRow, timeline: &Timeline) -> KeyResultRow {
    row.revision = timeline.revision();
    row.revisions = Arc::clone(&timeline.revisions);
    row
}

fn record(objective: &Objective, kr: &KeyResult, s: &KrScore, revision: i64) -> ScoreRecord {
    ScoreRecord {
        objective: objective.id.clone(),
        key_result: kr.id.clone(),
        at: s.at,
        value: s.value,
        progress: s.progress,
        score: s.score,
        expected: s.expected,
        status: s.status,
        revision,
    }
}

/// The KR's history in [from, at]: evaluated at each point's ts (the
/// instants its data changed) and at `at`, each under the definition in
/// force then (`timeline`), keeping only changes. Under the KR as
/// configured now, the baseline is `running`'s (the KR's state through
/// `at`), so `samples` need only hold the points from a window before
/// `from` on; under an earlier definition, they hold the whole series.
#[allow(clippy::too_many_arguments)]
fn history(
    objective: &Objective,
    kr: &KeyResult,
    timeline: &Timeline,
    running: &Running,
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
    let period = objective.period.at(at);
    let mut kept: Vec<(KrScore, i64)> = Vec::with_capacity(times.len());
    for (revision, under, run) in timeline.split(kr, &times) {
        let scores = if std::ptr::eq(under, kr) {
            scoring::score_history_running(under, &period, running, samples, run, margins)
        } else {
            scoring::score_history(under, &period, samples, run, margins)
        };
        for s in scores {
            if !kept
                .last()
                .is_some_and(|(p, r)| *r == revision && same_record(p, &s))
            {
                kept.push((s, revision));
            }
        }
    }
    kept.iter()
        .map(|(s, revision)| record(objective, kr, s, *revision))
        .collect()
}

#[cfg(test)]
mod tests;
