//! Two `okrd serve` instances on one PostgreSQL: each tick of a connector
//! runs on exactly one of them. The fixture's query API records the
//! evaluation time of every run (the tick), so runs are counted per tick.

use std::collections::HashMap;
use std::time::Duration;

use super::fixture::Fixture;
use super::{connector, Deployment};
use crate::common::pg;
use crate::common::wait::eventually;

/// The scheduler's decisions at debug, so that each instance's log says
/// which ticks it ran and which it yielded.
const ENV: [(&str, &str); 1] = [(
    "OKRD_LOG",
    "info,sqlx=warn,okrd::connectors::scheduler=debug",
)];

/// A fresh database, the fixture, and a deployment with one connector
/// `ticks` run every second (with `extra` YAML).
async fn ticks(extra: &str) -> (pg::TestDatabase, Fixture, Deployment) {
    let db = pg::fresh_database().await;
    let f = Fixture::start().await;
    let d = Deployment::new();
    d.connector_file(
        "ticks",
        &format!(
            "name: ticks\ntype: prometheus\nschedule: \"@every 1s\"\n{extra}url: {}\nquery: up\nmetric: fixture_up\n",
            f.base
        ),
    );
    (db, f, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tick_runs_on_exactly_one_of_two_instances() {
    if pg::skip() {
        return;
    }
    let (db, f, d) = ticks("").await;
    let mut a = d.start(None, &[], Some(db.url()), &ENV);
    let mut b = d.start(None, &[], Some(db.url()), &ENV);

    const TICKS: usize = 12;
    eventually(Duration::from_secs(90), "twelve ticks run", || async {
        (f.seen.query_times.lock().unwrap().len() >= TICKS).then_some(())
    })
    .await;
    let state = connector(&a, "ticks").await.unwrap();
    a.stop();
    b.stop();

    let times = f.seen.query_times.lock().unwrap().clone();
    let mut runs_per_tick: HashMap<&str, usize> = HashMap::new();
    for t in &times {
        *runs_per_tick.entry(t.as_str()).or_default() += 1;
    }
    let doubled: Vec<_> = runs_per_tick.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "ticks run more than once: {doubled:?}");
    // Both instances were there, contending for the same ticks: each logged
    // ticks that the other had claimed.
    let (la, lb) = (a.log(), b.log());
    let lost = |log: &str| log.matches("tick claimed by another instance").count();
    let won = |log: &str| log.matches("run started").count();
    println!(
        "{} runs for {} ticks; instance a ran {} and yielded {}, instance b ran {} and yielded {}",
        times.len(),
        runs_per_tick.len(),
        won(&la),
        lost(&la),
        won(&lb),
        lost(&lb)
    );
    // A run interrupted by the stop may be logged without reaching the
    // fixture; no run reaches it unlogged.
    let logged = won(&la) + won(&lb);
    assert!(
        (times.len()..=times.len() + 2).contains(&logged),
        "{logged} runs logged, {} seen",
        times.len()
    );
    assert!(
        lost(&la) + lost(&lb) >= TICKS / 2,
        "the instances contended for the ticks:\n{la}\n{lb}"
    );
    // The shared run state counts every run of both.
    assert!(state["points_ingested"].as_u64().unwrap() >= (TICKS - 2) as u64);
}

/// Failover: the instance running a connector's ticks is killed with
/// SIGKILL (no shutdown, its lease left as it was); the other instance runs
/// the next due tick once the lease expires: at once when the kill fell
/// between runs, at most `timeout` + 60 s after the killed run started
/// otherwise (README, "Several instances").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instances_ticks_run_on_the_other_once_its_lease_expires() {
    if pg::skip() {
        return;
    }
    let (db, f, d) = ticks("timeout: 5s\n").await;
    let a = d.start(None, &[], Some(db.url()), &ENV);
    let runs = || f.seen.query_times.lock().unwrap().len();
    eventually(Duration::from_secs(30), "A runs three ticks", || async {
        (runs() >= 3).then_some(())
    })
    .await;
    let b = d.start(None, &[], Some(db.url()), &ENV);
    crate::common::server::signal(a.pid(), "KILL");
    let killed = std::time::Instant::now();
    let before = runs();
    let b_runs = || b.log().matches("run started").count();
    let b_before = b_runs();
    // The bound: the run's timeout (5 s) plus the lease's 60 s grace, plus
    // a schedule step.
    eventually(
        Duration::from_secs(5 + 60 + 2),
        "B to run the ticks after A was killed",
        || async { (runs() > before && b_runs() > b_before).then_some(()) },
    )
    .await;
    println!(
        "after A's SIGKILL, B ran the next tick within {:?}",
        killed.elapsed()
    );
    // And goes on running them, one per tick.
    let at = runs();
    eventually(Duration::from_secs(10), "B's next ticks", || async {
        (runs() >= at + 3).then_some(())
    })
    .await;
    drop(a);
}
