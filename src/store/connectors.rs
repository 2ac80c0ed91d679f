//! Connector state: connectors registered over REST, watermarks of incremental pulls, run leases across instances, and Kafka dead letters.
//!
//! A part of the [`Store`](super::Store), as its own trait implemented for
//! both backends in this file.

use async_trait::async_trait;

use super::{PostgresStore, SqliteStore};

/// Connector state: connectors registered over REST, watermarks of incremental pulls, run leases across instances, and Kafka dead letters.
#[async_trait]
pub trait ConnectorStore: Send + Sync {}

#[async_trait]
impl ConnectorStore for SqliteStore {}

#[async_trait]
impl ConnectorStore for PostgresStore {}
