//! TODO
use super::*;
/// SQLite store.
pub struct SqliteStore;
impl SqliteStore { pub async fn open(_url: &str) -> Result<Self, StoreError> { todo!() } }
#[async_trait]
impl Store for SqliteStore {
    async fn write_points(&self, _points: &[Point], _progress: Progress<'_>) -> Result<usize, StoreError> { todo!() }
    async fn load_series(&self, _key: &SeriesKey, _from: Timestamp, _to: Timestamp) -> Result<Vec<Sample>, StoreError> { todo!() }
    async fn metrics_with_points(&self) -> Result<BTreeSet<String>, StoreError> { todo!() }
    async fn record_score(&self, _record: &ScoreRecord) -> Result<bool, StoreError> { todo!() }
    async fn score_history(&self, _o: &str, _k: &str, _from: Timestamp, _to: Timestamp) -> Result<Vec<ScoreRecord>, StoreError> { todo!() }
    async fn ping(&self) -> Result<(), StoreError> { todo!() }
}
