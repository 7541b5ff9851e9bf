//! The GraphQL schema (SkyWalking query-protocol names) and its HTTP route.

mod query;
mod types;

pub use query::{BootstrapQuery, MetadataQuery, MetricsQuery, Mutation, Query};
pub use types::*;
