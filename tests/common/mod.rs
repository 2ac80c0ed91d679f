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
