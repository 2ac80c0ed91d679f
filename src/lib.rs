//! okrd scores OKR key results from real data, continuously.
pub mod clock;
pub mod config;
pub mod model;
pub mod scoring;
pub mod store;
