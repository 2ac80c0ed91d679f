//! Fixed vocabularies stored as TEXT: an alert's kind and state, a
//! delivery's event and status, a score's status. Each is an enum in Rust
//! and its word in the database and in JSON; a stored word the enum does
//! not know is a decode error naming the column and the word, never a
//! panic or a default.
//!
//! [`vocabulary!`] declares such an enum with its words (its `as_str`,
//! `Display`, serde and sqlx impls all read the one list);
//! [`text_column!`] gives an enum declared elsewhere ([`Status`]) the sqlx
//! side only.

use sqlx::error::BoxDynError;

use crate::scoring::Status;

/// A fixed vocabulary: each value and the word stored for it.
pub trait Word: Copy + 'static {
    /// Every value.
    const ALL: &'static [Self];
    /// What the words name, for errors (`alert state`).
    const WHAT: &'static str;
    /// The stored word.
    fn word(self) -> &'static str;
}

/// The value whose word is `text`; an error naming it otherwise.
pub fn parse<W: Word>(text: &str) -> Result<W, BoxDynError> {
    W::ALL
        .iter()
        .copied()
        .find(|w| w.word() == text)
        .ok_or_else(|| format!("unknown {} {text:?}", W::WHAT).into())
}

/// sqlx's `Type`, `Encode` and `Decode` as TEXT on SQLite and PostgreSQL
/// for a [`Word`] type.
macro_rules! text_column {
    ($t:ty) => {
        impl sqlx::Type<sqlx::Sqlite> for $t {
            fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
                <str as sqlx::Type<sqlx::Sqlite>>::type_info()
            }
            fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
                <str as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
            }
        }
        impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Sqlite as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let word = $crate::store::words::Word::word(*self);
                <&str as sqlx::Encode<'q, sqlx::Sqlite>>::encode(word, buf)
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for $t {
            fn decode(
                value: <sqlx::Sqlite as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                $crate::store::words::parse(<&str as sqlx::Decode<'r, sqlx::Sqlite>>::decode(
                    value,
                )?)
            }
        }
        impl sqlx::Type<sqlx::Postgres> for $t {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }
        impl sqlx::postgres::PgHasArrayType for $t {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }
        impl<'q> sqlx::Encode<'q, sqlx::Postgres> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Postgres as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let word = $crate::store::words::Word::word(*self);
                <&str as sqlx::Encode<'q, sqlx::Postgres>>::encode(word, buf)
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $t {
            fn decode(
                value: <sqlx::Postgres as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                $crate::store::words::parse(<&str as sqlx::Decode<'r, sqlx::Postgres>>::decode(
                    value,
                )?)
            }
        }
    };
}
pub(super) use text_column;

/// Declares a `Copy` enum whose values are the given words: `as_str`,
/// [`Word`], `Display`, serde (the word as a JSON string; an unknown one is
/// an error) and the sqlx TEXT column ([`text_column!`]).
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// The word stored, sent and shown for it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $word, )+
                }
            }
        }

        impl $crate::store::words::Word for $name {
            const ALL: &'static [Self] = &[$( Self::$variant ),+];
            const WHAT: &'static str = $what;
            fn word(self) -> &'static str {
                self.as_str()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $crate::store::words::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        $crate::store::words::text_column!($name);
    };
}
pub(super) use vocabulary;

impl Word for Status {
    const ALL: &'static [Self] = &Status::ALL;
    const WHAT: &'static str = "key result status";
    fn word(self) -> &'static str {
        self.as_str()
    }
}

text_column!(Status);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AlertKind, AlertState, DeliveryStatus, EventName};
    use sqlx::{Connection, Row, SqliteConnection};

    fn round_trips<W: Word + PartialEq + std::fmt::Debug>() {
        for &w in W::ALL {
            assert_eq!(parse::<W>(w.word()).unwrap(), w);
        }
        let e = parse::<W>("nonsense").unwrap_err().to_string();
        assert_eq!(e, format!("unknown {} \"nonsense\"", W::WHAT));
    }

    #[test]
    fn every_word_reads_back_as_its_value_and_no_other_word_does() {
        round_trips::<AlertKind>();
        round_trips::<AlertState>();
        round_trips::<EventName>();
        round_trips::<DeliveryStatus>();
        round_trips::<Status>();
    }

    #[test]
    fn json_carries_the_word() {
        assert_eq!(
            serde_json::to_string(&AlertKind::CounterMetric).unwrap(),
            "\"counter_metric\""
        );
        let state: AlertState = serde_json::from_str("\"resolved\"").unwrap();
        assert_eq!(state, AlertState::Resolved);
        let e = serde_json::from_str::<EventName>("\"fired\"").unwrap_err();
        assert!(
            e.to_string().contains("unknown alert event \"fired\""),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_unknown_stored_word_is_an_error_naming_the_column() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let row = sqlx::query("SELECT ?1 AS state, 'paused' AS status")
            .bind(AlertState::Firing)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("state"), "firing");
        assert_eq!(row.get::<AlertState, _>("state"), AlertState::Firing);
        let e = row.try_get::<DeliveryStatus, _>("status").unwrap_err();
        let e = crate::store::StoreError::from(e).to_string();
        assert!(
            e.contains("\"status\"") && e.contains("unknown delivery status \"paused\""),
            "{e}"
        );
    }
}
