//! okrd's integration tests, as one test binary (one link instead of
//! eleven; `cargo test --test suite store::` runs one module).
//!
//! - `common`: what the cases share: the stores (`Backend`, `both_stores!`),
//!   the real `okrd serve` (`server`), HTTP (`http`), waiting (`wait`),
//!   PostgreSQL, MariaDB, Kafka, TLS, Chromium and daemons
//! - `alerts`: the alert engine, the outbox and every notifier, end to end
//! - `alignment`: the objective tree, roll-ups, the status page's tree,
//!   filters and KR pages in Chromium, and the dependency alert
//! - `cli`: `okrd check`, `ingest` and `score` as a user runs them
//! - `connectors`: pull connectors against real sources, scheduling, leases
//! - `instances`: several `okrd serve` on one store agree
//! - `kafka`: the Kafka connector against librdkafka's mock cluster
//! - `parsers`: the fast and the general JSON readers agree (proptest)
//! - `revisions`: revisions (one notice per notifier, history kept),
//!   definitions before the period, check-ins
//! - `security`: the open port, as an attacker sees it
//! - `serve`: `okrd serve` end to end: push, API, /metrics, reload, SIGTERM
//! - `stack`: the compose stack's files, and Prometheus reading okrd
//! - `statistics`: Welch's test on counter metrics and the forecast's
//!   probability, against SciPy's figures, on both stores
//! - `status_page`: the status page in Chromium
//! - `store`: the store's contract on SQLite, PostgreSQL and PostgreSQL over TLS

mod common;

mod alerts;
mod alignment;
mod cli;
mod connectors;
mod instances;
mod kafka;
mod parsers;
mod revisions;
mod security;
mod serve;
mod stack;
mod statistics;
mod status_page;
mod store;
