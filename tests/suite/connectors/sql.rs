//! `type: sql` against the real PostgreSQL as the source: incremental pulls
//! through the `$1` watermark, across a restart; a query error passed on;
//! a connector registered over REST.

use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::json;
use sqlx::{Connection, PgConnection};

use super::{connector, get_text, metric, register, stored_values, Deployment, TOKEN};
use crate::common::pg;
use crate::common::wait::eventually;

async fn exec(url: &str, sql: &str) {
    let mut c = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    c.close().await.unwrap();
}

fn day(d: u32) -> String {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_pulls_incrementally_across_a_restart() {
    if pg::skip() {
        return;
    }
    let source = pg::fresh_database().await;
    exec(
        source.url(),
        &format!(
            "CREATE TABLE cohorts (day date, plan text, retained int, cohort int);
             INSERT INTO cohorts VALUES ('{}', 'free', 30, 100), ('{}', 'pro', 60, 100),
                                        ('{}', 'free', 31, 100), ('{}', 'pro', 61, 100),
                                        ('{}', 'free', 32, 100), ('{}', 'pro', 62, 100);",
            day(1),
            day(1),
            day(2),
            day(2),
            day(3),
            day(3)
        ),
    )
    .await;
    let d = Deployment::new();
    d.connector_file(
        "warehouse",
        "- name: warehouse\n  type: sql\n  schedule: \"@every 1s\"\n  dsn: ${WAREHOUSE_URL}\n  query: SELECT day AS ts, plan, retained::float8 / cohort AS value FROM cohorts WHERE day > $1\n  metric: retention_d30\n\
         - name: typo\n  type: sql\n  schedule: \"@every 1s\"\n  dsn: ${WAREHOUSE_URL}\n  query: SELECT day AS ts, 1.0::float8 AS value FROM cohort\n  metric: typo\n",
    );
    let env = [("WAREHOUSE_URL", source.url())];
    let mut server = d.start(Some(TOKEN), &[], None, &env);

    let watermark = |d: u32| {
        Utc.from_utc_datetime(
            &NaiveDate::from_ymd_opt(2026, 11, d)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        )
        .to_rfc3339()
    };
    let c = eventually(Duration::from_secs(30), "the first pull", || async {
        connector(&server, "warehouse")
            .await
            .filter(|c| c["watermark"] == watermark(3))
    })
    .await;
    assert_eq!(c["points_ingested"], 6);
    assert!(c["last_error"].is_null(), "{c}");

    // A query the source refuses: its message is passed on, others go on.
    let typo = eventually(Duration::from_secs(30), "the typo's error", || async {
        connector(&server, "typo")
            .await
            .filter(|c| c["last_error"].is_string())
    })
    .await;
    assert!(
        typo["last_error"]
            .as_str()
            .unwrap()
            .contains("relation \"cohort\" does not exist"),
        "{typo}"
    );
    let text = get_text(&server.url("/metrics")).await;
    assert!(
        metric(
            &text,
            "okrd_connector_errors_total{connector=\"typo\",reason=\"query\"}"
        )
        .unwrap()
            >= 1.0
    );

    server.stop();
    // While okrd is down: a row already pulled changes (the watermark keeps
    // it from being pulled again), and two days arrive.
    exec(
        source.url(),
        &format!(
            "UPDATE cohorts SET retained = 99 WHERE day = '{}';
             INSERT INTO cohorts VALUES ('{}', 'free', 33, 100), ('{}', 'pro', 63, 100),
                                        ('{}', 'free', 34, 100), ('{}', 'pro', 64, 100);",
            day(2),
            day(4),
            day(4),
            day(5),
            day(5)
        ),
    )
    .await;
    let mut server = server.restart(&env);
    let c = eventually(
        Duration::from_secs(30),
        "the pull after the restart",
        || async {
            connector(&server, "warehouse")
                .await
                .filter(|c| c["watermark"] == watermark(5))
        },
    )
    .await;
    assert_eq!(c["points_ingested"], 10, "only the new rows: {c}");
    // Later runs find nothing new.
    let last_run = c["last_run"].clone();
    let c = eventually(Duration::from_secs(30), "two more runs", || async {
        connector(&server, "warehouse")
            .await
            .filter(|c| c["last_run"] != last_run)
    })
    .await;
    assert_eq!(c["points_ingested"], 10);

    // A SQL connector registered over REST.
    let body = json!({
        "name": "warehouse-rest",
        "type": "sql",
        "schedule": "@every 1s",
        "dsn": "${WAREHOUSE_URL}",
        "query": "SELECT day AS ts, 'retention_' || plan AS metric, retained AS value FROM cohorts WHERE day > $1 AND day <= '2026-11-02'"
    });
    assert_eq!(register(&server, &body).await.status, 201);
    let c = eventually(
        Duration::from_secs(30),
        "the REST connector's pull",
        || async {
            connector(&server, "warehouse-rest")
                .await
                .filter(|c| c["points_ingested"].as_u64() == Some(4))
        },
    )
    .await;
    assert_eq!(c["watermark"], watermark(2));

    // The stored values: day 2 kept what the first pull read.
    let url = server.database_url.clone();
    server.stop();
    let values = stored_values(&url, "retention_d30", &[("plan", "free")]).await;
    assert_eq!(values, [0.30, 0.31, 0.32, 0.33, 0.34]);
    let values = stored_values(&url, "retention_free", &[]).await;
    assert_eq!(
        values,
        [30.0, 99.0],
        "the REST connector read the updated row"
    );
}

/// A PostgreSQL source over TLS (`sslmode=verify-full`): the pull works,
/// and the connection the connector keeps to the source is encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_pulls_from_postgres_over_tls() {
    if pg::skip() {
        return;
    }
    let source = pg::fresh_database().await;
    exec(
        source.url(),
        "CREATE TABLE daily (day date, value float8);
         INSERT INTO daily VALUES ('2026-11-01', 1.5), ('2026-11-02', 2.5);",
    )
    .await;
    let dsn = pg::tls_url(source.url()).await;
    let d = Deployment::new();
    d.connector_file(
        "tls",
        &format!("- name: tls\n  type: sql\n  schedule: \"@every 1s\"\n  dsn: {dsn}\n  query: SELECT day AS ts, value FROM daily WHERE day > $1\n  metric: daily\n"),
    );
    let server = d.start(None, &[], None, &[]);
    let c = eventually(Duration::from_secs(30), "the pull", || async {
        connector(&server, "tls")
            .await
            .filter(|c| c["points_ingested"] == 2)
    })
    .await;
    assert!(c["last_error"].is_null(), "{c}");
    let (connections, encrypted) = pg::connections_encrypted(source.name()).await;
    assert_eq!(connections, 1, "the connector keeps one connection");
    assert_eq!(encrypted, 1);
}
