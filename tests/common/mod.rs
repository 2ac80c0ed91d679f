//! Helpers shared by the integration tests (`mod common;` in a test file).

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod browser;
pub mod kafka;
pub mod mysql;
pub mod pg;
pub mod process;
pub mod server;
pub mod tls;

/// Runs each named `async fn case(database_url: Option<String>)` twice: on
/// SQLite (`None`) and on a fresh PostgreSQL database (skipped, and said
/// so, with `OKRD_TEST_SKIP_POSTGRES=1`).
#[allow(unused_macros)]
macro_rules! both_stores {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(None).await;
                }
            )*
        }
        mod postgres {
            use crate::common::pg;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if pg::skip() {
                        return;
                    }
                    let db = pg::fresh_database().await;
                    super::$case(Some(db.url().to_string())).await;
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_stores;
