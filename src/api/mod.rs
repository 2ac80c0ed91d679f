//! The HTTP API.

pub mod status_page;
