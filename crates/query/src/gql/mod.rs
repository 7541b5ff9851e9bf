//! The GraphQL schema (SkyWalking query-protocol names) and its HTTP route.

mod alarm;
mod issues;
mod logs;
mod query;
mod rum;
mod topology;
mod traces;
mod types;
mod ui;

pub use alarm::*;
pub use issues::*;
pub use logs::*;
pub use query::{BootstrapQuery, MetadataQuery, MetricsQuery, Mutation, Query, VersionMutation};
pub use rum::*;
pub use topology::*;
pub use traces::*;
pub use types::*;
pub use ui::*;
