//! Turning outside data into validated [`Point`]s: JSON point objects
//! (HTTP push, JSON lines) and files for `okrd ingest`.

mod fast;
mod file;
mod point;

pub use fast::FastReader;
pub use file::{read_points_file, FileError, RowError};
pub use point::{point_from_json, Interner, PointError, RejectReason};
