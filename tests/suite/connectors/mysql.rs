//! `type: sql` against the real MariaDB as the source (`mysql://`):
//! incremental pulls through the `?` watermark, MySQL's own types (a
//! `DECIMAL` value, a `DATE` ts), the read-only transaction, and TLS
//! (`ssl-mode=VERIFY_IDENTITY` with `ssl-ca`) as a user the server lets in
//! only over TLS, with a wrong CA refused.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use sqlx::Connection;

use super::{connector, stored_values, Deployment};
use crate::common::mysql;
use crate::common::wait::eventually;

fn midnight(day: u32) -> String {
    Utc.with_ymd_and_hms(2026, 11, day, 0, 0, 0)
        .unwrap()
        .to_rfc3339()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_pulls_incrementally_over_tls_and_read_only() {
    let db = mysql::fresh_database().await;
    let cert = mysql::server_certificate().await;
    let certs = crate::common::tls::certs();
    let name = db.name();
    // A user that may log in only over TLS: its pulls prove the
    // connector's connection is encrypted.
    let user = format!("tls_{}", &name[name.len().saturating_sub(20)..]);
    mysql::exec(&format!(
        "CREATE TABLE `{name}`.cohorts (day DATE, plan VARCHAR(10), retained INT, cohort INT);
         INSERT INTO `{name}`.cohorts VALUES ('2026-11-01', 'free', 30, 100), ('2026-11-01', 'pro', 60, 100),
                                             ('2026-11-02', 'free', 31, 100), ('2026-11-02', 'pro', 61, 100),
                                             ('2026-11-03', 'free', 32, 100), ('2026-11-03', 'pro', 62, 100);
         DROP USER IF EXISTS '{user}'@'%';
         CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{user}' REQUIRE SSL;
         GRANT SELECT, DELETE ON `{name}`.* TO '{user}'@'%';"
    ))
    .await;
    let host = mysql::admin_url()
        .replacen("root@", &format!("{user}:pw-{user}@"), 1)
        .replacen("@127.0.0.1", "@localhost", 1);
    let tls = format!(
        "{host}/{name}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
        cert.display()
    );
    let wrong_ca = format!(
        "{host}/{name}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
        certs.ca.display()
    );
    let plain = format!("{host}/{name}?ssl-mode=DISABLED");

    let d = Deployment::new();
    let pull = |name: &str, dsn: &str, query: &str| {
        format!("- name: {name}\n  type: sql\n  schedule: \"@every 1s\"\n  dsn: {dsn}\n  query: \"{query}\"\n  metric: retention_d30\n")
    };
    let incremental =
        "SELECT day AS ts, plan, retained / cohort AS value FROM cohorts WHERE day > ?";
    d.connector_file(
        "shop",
        &[
            pull("shop", &tls, incremental),
            pull("shop-wrong-ca", &wrong_ca, incremental),
            pull("shop-plain", &plain, incremental),
            pull("shop-delete", &tls, "DELETE FROM cohorts WHERE day > ?"),
        ]
        .concat(),
    );
    let mut server = d.start(None, &[], None, &[]);

    let c = eventually(Duration::from_secs(30), "the first pull", || async {
        connector(&server, "shop")
            .await
            .filter(|c| c["watermark"] == midnight(3))
    })
    .await;
    assert_eq!(c["points_ingested"], 6, "{c}");
    assert!(c["last_error"].is_null(), "{c}");

    // Two new days: only they are pulled.
    mysql::exec(&format!(
        "INSERT INTO `{name}`.cohorts VALUES ('2026-11-04', 'free', 33, 100), ('2026-11-04', 'pro', 63, 100)"
    ))
    .await;
    let c = eventually(Duration::from_secs(30), "the incremental pull", || async {
        connector(&server, "shop")
            .await
            .filter(|c| c["watermark"] == midnight(4))
    })
    .await;
    assert_eq!(c["points_ingested"], 8, "only the new rows: {c}");

    // A wrong CA is refused, in words; without TLS the user is refused.
    for (connector_name, words) in [
        ("shop-wrong-ca", "not signed by a trusted CA"),
        ("shop-plain", "Access denied"),
        // Read-only: the DELETE is refused and deletes nothing.
        ("shop-delete", "READ ONLY"),
    ] {
        let c = eventually(Duration::from_secs(30), connector_name, || async {
            connector(&server, connector_name)
                .await
                .filter(|c| c["last_error"].is_string())
        })
        .await;
        let error = c["last_error"].as_str().unwrap();
        assert!(error.contains(words), "{connector_name}: {error}");
        assert!(!error.contains(&format!("pw-{user}")), "{error}");
    }
    let mut admin = sqlx::MySqlConnection::connect(&db.url()).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM cohorts")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(rows, 8, "the read-only transaction deleted nothing");

    // The stored values: DECIMAL read as numbers, per plan.
    let url = server.database_url.clone();
    server.stop();
    let values = stored_values(&url, "retention_d30", &[("plan", "pro")]).await;
    assert_eq!(values, [0.60, 0.61, 0.62, 0.63]);
    mysql::exec(&format!("DROP USER '{user}'@'%'")).await;
}
