//! Alert state and the notification outbox: transitions decided in one transaction, deliveries stored until sent.
//!
//! A part of the [`Store`](super::Store), as its own trait implemented for
//! both backends in this file.

use async_trait::async_trait;

use super::{PostgresStore, SqliteStore};

/// Alert state and the notification outbox: transitions decided in one transaction, deliveries stored until sent.
#[async_trait]
pub trait AlertStore: Send + Sync {}

#[async_trait]
impl AlertStore for SqliteStore {}

#[async_trait]
impl AlertStore for PostgresStore {}
