//! Turning outside data into validated [`Point`]s: JSON point objects
//! (HTTP push, JSON lines) and files for `okrd ingest`, under one set of
//! limits (`limits.rs`), with repeated keys kept visible (`json.rs`).

mod fast;
mod file;
pub mod json;
pub mod limits;
mod point;

pub use fast::FastReader;
pub use file::{read_points_file, FileError, RowError};
pub use point::{point_from_json, Interner, PointError, RejectReason, REJECT_REASONS};
