//! Configuration: service config, objectives and connectors, loaded and
//! validated at the edge.
pub mod de;
pub mod error;
pub mod objective;
pub mod types;
pub mod yaml;
