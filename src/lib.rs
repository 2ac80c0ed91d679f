//! okrd scores OKR key results from real data, continuously.
//!
//! Points come in, are stored, are scored, and are exported and alerted on.
//! The map of the code, in that order:
//!
//! - [`config`]: every YAML file (service config, objectives, connectors),
//!   parsed strictly into typed values with file:line:column errors; lints;
//!   the organisation's shape (`aligns_to`, `depends_on`) checked once.
//! - [`ingest`]: outside data (JSON point objects, CSV / JSON-lines files)
//!   into validated [`model::Point`]s.
//! - [`connectors`]: where points come from: pull connectors (`http`,
//!   `prometheus`, `sql`) run by the scheduler, the `kafka` consumer, the
//!   `synthetic` demo series.
//! - [`model`]: series keys, points, samples, timestamps.
//! - [`sink`]: the one ingest path every source's points take: write,
//!   count, record the source's success, mark dirty.
//! - [`store`]: the [`store::Store`] trait over SQLite and PostgreSQL:
//!   idempotent batched point writes, series reads, score history (each
//!   row naming its revision), KR definitions and revisions, check-ins; on
//!   PostgreSQL with TimescaleDB, the points table is a hypertable; the
//!   change feed every write adds to. Rows are `FromRow` types over both
//!   databases: what differs is in the `Encode`/`Decode` of
//!   [`store::StoredTime`] and the stored words.
//! - [`feed`]: follows the change feed, so that points other processes
//!   wrote are scored here within a second.
//! - [`scoring`]: pure functions from a KR, its samples and a time to a
//!   score, status and forecast (SPEC §4).
//! - [`definition`]: a KR's definition (what its score and alerts depend
//!   on), the fields two differ in, whether a change is easier, revisions.
//! - [`scorecard`]: the published scores (a leaf the readers share).
//! - [`scorer`]: reads series from the store and runs [`scoring`]; the only
//!   caller of the scoring functions.
//! - [`alerts`]: counter-metric, stale-data and dependency alerts, decided in the
//!   store with an outbox, delivered by the notifiers.
//! - [`metrics`]: every Prometheus metric okrd exports.
//! - [`api`]: the HTTP API, the status page (the objective tree) and each
//!   KR's page, behind the token, the
//!   byte budget and the server's bounds.
//! - [`app`]: `okrd serve`: start, run the tasks, stop; [`live`]: the
//!   running config and scorecard the tasks share; [`reload`]: hot reload.
//! - [`clock`]: time, injected; [`backoff`]: the one doubling wait.
//! - [`cli`], [`commands`]: the `okrd` command line, one file per command.
//! - [`telemetry`]: logging setup; [`secrets`]: what no log line or
//!   response may show, and the redaction that keeps it so.
//! - [`tls`]: TLS for every client okrd opens (rustls; CA files, libpq's
//!   `sslmode`), and TLS failures in words.
//! - [`bench`]: `okrd bench`, which measures all of the above end to end.

pub mod alerts;
pub mod api;
pub mod app;
pub mod backoff;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod connectors;
pub mod definition;
pub mod feed;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod model;
pub mod reload;
pub mod scorecard;
pub mod scorer;
pub mod scoring;
pub mod secrets;
pub mod sink;
pub mod store;
pub mod telemetry;
pub mod tls;
