//! Connectors: where points come from.

pub mod synthetic;
