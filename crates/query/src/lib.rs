//! Skylark's query side: SkyWalking's GraphQL API (the subset swctl, booster-ui and Horizon use)
//! and MQE, answered from [`skylark_storage::Storage`].
//!
//! Names of types, fields, arguments and enum values follow SkyWalking's `.graphqls` files
//! exactly, so existing clients work unchanged. MQE problems are reported in the result's
//! `error` field with HTTP 200, as OAP does; GraphQL errors are kept for malformed requests and
//! bad durations.
#![warn(missing_docs, unreachable_pub)]

mod always_data;
mod duration;
mod error;
mod gql;
pub mod mqe;
mod serve;
mod ui_templates;

pub use always_data::AlwaysData;
pub use duration::{QueryDuration, RecordWindow, MAX_DURATION_POINTS};
pub use error::{Error, Result};
pub use gql::*;
pub use serve::QueryLimits;
pub use ui_templates::{
    parse_menu, parse_template_file, schema_with_issues, schema_with_ui, template_expressions,
    ConfigurationFields, MenuEntry, TemplateLoadError, UiContext, UiTemplate, UiTemplates,
    MENU_FILE,
};

use async_graphql::{EmptySubscription, Schema};
use skylark_core::MetricCatalog;
use skylark_storage::Storage;
use std::sync::Arc;

/// What resolvers read: storage, the metric catalog and server facts.
#[derive(Clone)]
pub struct QueryContext {
    /// Metric rows and entities.
    pub storage: Arc<dyn Storage>,
    /// Metric scopes and functions (from the loaded rules).
    pub catalog: Arc<MetricCatalog>,
    /// Reported by `version`, e.g. `10.3.0` (swctl needs `major.minor`).
    pub version: String,
    /// Metric retention in days (`getMetricsTTL`).
    pub metrics_ttl_days: u32,
    /// Record retention in days (`getRecordsTTL`).
    pub records_ttl_days: u32,
    /// Bounds on the work of one `execExpression`.
    pub mqe_limits: mqe::MqeLimits,
}

/// The executable schema.
pub type SkylarkSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema (introspection enabled: Horizon probes `__type(name: "Query")`) without UI
/// templates: an empty menu, no dashboards, template edits refused. See [`schema_with_ui`].
pub fn schema(ctx: QueryContext) -> SkylarkSchema {
    schema_with_ui(ctx, UiContext::default())
}

/// `POST /graphql` (single or batched JSON requests, run on query threads of their own within
/// `limits`) and `GET /graphql` (a playground page). Build the schema with the same limits
/// ([`schema_with_limits`]) so resolvers enforce the page size. Fails only when the query
/// threads cannot be started.
pub fn router(schema: SkylarkSchema, limits: QueryLimits) -> std::io::Result<axum::Router> {
    serve::router_with_limits(schema, limits)
}

/// [`schema_with_ui`] with the per-query limits: depth and complexity (fields, aliases counted)
/// checked when a document is validated, and the largest page size resolvers accept.
pub fn schema_with_limits(ctx: QueryContext, ui: UiContext, limits: &QueryLimits) -> SkylarkSchema {
    schema_full(ctx, ui, IssuesContext::default(), limits)
}

/// The schema the server runs: UI templates from `ui`, issues and source maps from `issues`, and
/// the request limits of `limits`.
pub fn schema_full(
    ctx: QueryContext,
    ui: UiContext,
    issues: IssuesContext,
    limits: &QueryLimits,
) -> SkylarkSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .data(ctx)
        .data(ui)
        .data(issues)
        .data(limits.clone())
        .extension(AlwaysData)
        .limit_complexity(limits.max_complexity)
        .limit_depth(limits.max_depth)
        .limit_recursive_depth(serve::MAX_NESTING)
        .finish()
}
