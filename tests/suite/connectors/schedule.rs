//! Scheduling in the real binary: a connector stuck in a slow run neither
//! overlaps itself nor delays another connector, and the ticks it missed
//! collapse into one catch-up run.

use std::time::{Duration, Instant};

use serde_json::json;

use super::fixture::Fixture;
use super::{connector, Deployment};
use crate::common::wait::{eventually, holds_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_connector_never_overlaps_itself_nor_delays_another() {
    let f = Fixture::start().await;
    *f.seen.json.lock().unwrap() = json!({"value": 3});
    let d = Deployment::new();
    d.connector_file(
        "both",
        &format!(
            "- name: slow\n  type: http\n  schedule: \"@every 1s\"\n  timeout: 2m\n  request: {{ url: \"{}\" }}\n  extract: {{ metric: slow_metric, value: /value }}\n\
             - name: fast\n  type: http\n  schedule: \"* * * * * *\"\n  request: {{ url: \"{}\" }}\n  extract: {{ metric: fast_metric, value: /value }}\n",
            f.url("/gate"),
            f.url("/json")
        ),
    );
    let server = d.start(None, &[], None, &[]);

    // The slow connector's first run hangs at the gate; the fast one keeps
    // running every second meanwhile.
    eventually(Duration::from_secs(30), "the slow run to start", || async {
        (f.in_flight() == 1).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(60),
        "fast runs while the slow one hangs",
        || async { (f.hits("/json") >= 3).then_some(()) },
    )
    .await;
    let gate_start = f.arrivals("/gate")[0];
    // Several of the slow connector's ticks pass while it hangs: no second
    // run meanwhile.
    let hung_for = Duration::from_secs(5).saturating_sub(gate_start.elapsed());
    holds_for(hung_for, "one run while the first hangs", || async {
        f.hits("/gate") == 1
    })
    .await;
    let slow = connector(&server, "slow").await.unwrap();
    assert_eq!(slow["running"], true, "{slow}");

    assert!(
        server
            .log()
            .contains("the timeout is longer than the schedule's interval"),
        "a timeout longer than the interval is warned about"
    );

    let released = Instant::now();
    f.open_gate();
    eventually(Duration::from_secs(30), "the catch-up run", || async {
        (f.hits("/gate") >= 2).then_some(())
    })
    .await;
    // Runs since the release, for 2 s: the one catch-up for the five or
    // more missed ticks, then one per tick. A scheduler that piled up
    // missed ticks would have run five or more at once.
    holds_for(
        Duration::from_secs(2),
        "one catch-up, then one run a tick",
        || async {
            let elapsed = released.elapsed().as_secs_f64();
            let after = f
                .arrivals("/gate")
                .iter()
                .filter(|t| **t >= released)
                .count();
            (after as f64) <= elapsed.ceil() + 2.0
        },
    )
    .await;
    assert_eq!(f.max_in_flight(), 1, "runs never overlap");
    let slow = eventually(
        Duration::from_secs(30),
        "the slow connector's success",
        || async {
            connector(&server, "slow")
                .await
                .filter(|c| c["last_success"].is_string())
        },
    )
    .await;
    assert!(slow["points_ingested"].as_u64().unwrap() >= 1);
}
