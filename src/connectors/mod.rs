//! Connectors: where points come from.

pub mod runner;
pub mod synthetic;
