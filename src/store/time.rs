//! A timestamp as a column: INTEGER microseconds since the Unix epoch on
//! SQLite (which has no timestamp type; integers sort and compare exactly),
//! `timestamptz` on PostgreSQL. Its `Encode` and `Decode` are where the two
//! databases' timestamps differ, so that one `FromRow` type reads a row
//! from either, and [`from_micros`] is the one way back from microseconds.
//!
//! A stored value that is no instant (out of chrono's range) is a decode
//! error naming its column, never a substitute time.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgTypeInfo, Postgres};
use sqlx::sqlite::{Sqlite, SqliteTypeInfo};
use sqlx::{Database, Decode, Encode, Type};

use crate::model::Timestamp;

/// A stored instant (a NOT NULL column). Fields of row types read it
/// through `#[sqlx(try_from = "StoredTime")]` and stay [`Timestamp`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoredTime(pub Timestamp);

/// A stored instant that may be NULL: `#[sqlx(try_from = "NullableTime")]`
/// on an `Option<Timestamp>` field. (Binding one needs no type of its own:
/// bind `Option<StoredTime>`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NullableTime(pub Option<Timestamp>);

/// The instant `micros` µs after the Unix epoch, or an error naming the
/// value when it lies outside chrono's range. The one converter from
/// stored microseconds.
pub fn from_micros(micros: i64) -> Result<Timestamp, BoxDynError> {
    Timestamp::from_timestamp_micros(micros).ok_or_else(|| {
        format!("{micros} µs since the Unix epoch is not a representable timestamp").into()
    })
}

impl From<StoredTime> for Timestamp {
    fn from(t: StoredTime) -> Self {
        t.0
    }
}

impl From<NullableTime> for Option<Timestamp> {
    fn from(t: NullableTime) -> Self {
        t.0
    }
}

// SQLite: an i64 of microseconds.

impl Type<Sqlite> for StoredTime {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for StoredTime {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'q, Sqlite>>::encode(self.0.timestamp_micros(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for StoredTime {
    fn decode(value: <Sqlite as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let micros = <i64 as Decode<'r, Sqlite>>::decode(value)?;
        Ok(StoredTime(from_micros(micros)?))
    }
}

// PostgreSQL: timestamptz, as chrono's own mapping.

impl Type<Postgres> for StoredTime {
    fn type_info() -> PgTypeInfo {
        <Timestamp as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <Timestamp as Type<Postgres>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Postgres> for StoredTime {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <Timestamp as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for StoredTime {
    fn decode(value: <Postgres as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(StoredTime(<Timestamp as Decode<'r, Postgres>>::decode(
            value,
        )?))
    }
}

// NULL or a StoredTime, on either database.

impl<DB: Database> Type<DB> for NullableTime
where
    StoredTime: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <StoredTime as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <StoredTime as Type<DB>>::compatible(ty)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for NullableTime
where
    StoredTime: Decode<'r, DB>,
{
    fn decode(value: DB::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let t = <Option<StoredTime> as Decode<'r, DB>>::decode(value)?;
        Ok(NullableTime(t.map(Timestamp::from)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection, Row, SqliteConnection};

    #[test]
    fn microseconds_outside_chrono_s_range_are_an_error_naming_them() {
        assert_eq!(
            from_micros(1_790_812_800_000_001).unwrap().to_rfc3339(),
            "2026-10-01T00:00:00.000001+00:00"
        );
        let e = from_micros(i64::MAX).unwrap_err().to_string();
        assert!(e.contains(&i64::MAX.to_string()), "{e}");
    }

    #[tokio::test]
    async fn sqlite_round_trips_microseconds_and_refuses_what_is_no_instant() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let t = from_micros(1_790_812_800_123_456).unwrap();
        let row = sqlx::query("SELECT ?1 AS a, ?1 + 0 AS micros, NULL AS b, ?2 AS c")
            .bind(StoredTime(t))
            .bind(i64::MAX)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(row.get::<StoredTime, _>("a"), StoredTime(t));
        assert_eq!(row.get::<i64, _>("micros"), 1_790_812_800_123_456);
        assert_eq!(row.get::<NullableTime, _>("b"), NullableTime(None));
        assert_eq!(row.get::<NullableTime, _>("a"), NullableTime(Some(t)));
        let e = row.try_get::<StoredTime, _>("c").unwrap_err().to_string();
        assert!(
            e.contains("\"c\"") && e.contains(&i64::MAX.to_string()),
            "{e}"
        );
    }
}
