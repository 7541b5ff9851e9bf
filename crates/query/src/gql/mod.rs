//! The GraphQL schema (SkyWalking query-protocol names) and its HTTP route.

mod issues;
mod logs;
mod query;
mod topology;
mod traces;
mod types;
mod ui;

pub use issues::*;
pub use logs::*;
pub use query::{BootstrapQuery, MetadataQuery, MetricsQuery, Mutation, Query, VersionMutation};
pub use topology::*;
pub use traces::*;
pub use types::*;
pub use ui::*;
