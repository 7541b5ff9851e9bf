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
mod ui_templates;

pub use always_data::AlwaysData;
pub use duration::{QueryDuration, RecordWindow, MAX_DURATION_POINTS};
pub use error::{Error, Result};
pub use gql::*;
pub use ui_templates::{
    parse_menu, parse_template_file, schema_with_issues, schema_with_ui, template_expressions,
    ConfigurationFields, MenuEntry, TemplateLoadError, UiContext, UiTemplate, UiTemplates,
    MENU_FILE,
};

use async_graphql::{EmptySubscription, Schema};
use async_graphql_axum::GraphQL;
use axum::response::Html;
use axum::routing::{get, post_service};
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
}

/// The executable schema.
pub type SkylarkSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema (introspection enabled: Horizon probes `__type(name: "Query")`) without UI
/// templates: an empty menu, no dashboards, template edits refused. See [`schema_with_ui`].
pub fn schema(ctx: QueryContext) -> SkylarkSchema {
    schema_with_ui(ctx, UiContext::default())
}

/// `POST /graphql` (single or batched JSON requests) and `GET /graphql` (a playground page).
pub fn router(schema: SkylarkSchema) -> axum::Router {
    axum::Router::new().route(
        "/graphql",
        get(playground).merge(post_service(GraphQL::new(schema))),
    )
}

async fn playground() -> Html<String> {
    Html(async_graphql::http::playground_source(
        async_graphql::http::GraphQLPlaygroundConfig::new("/graphql"),
    ))
}
