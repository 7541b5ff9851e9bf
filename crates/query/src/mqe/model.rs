//! What an MQE evaluation produces (OAP's `ExpressionResult` / `MQEValues` / `MQEValue`).

use skylark_core::Scope;

/// `ExpressionResultType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultType {
    /// The expression could not be resolved (errors).
    Unknown,
    /// One value per series (after `avg`, `sum`, ... or a scalar).
    SingleValue,
    /// One point per time bucket.
    TimeSeriesValues,
    /// Entities ranked by `top_n`.
    SortedList,
    /// Sampled records ranked by `top_n`.
    RecordList,
}

/// The entity a `top_n` value belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owner {
    /// The metric's scope.
    pub scope: Option<Scope>,
    /// Service id.
    pub service_id: Option<String>,
    /// Service name.
    pub service_name: Option<String>,
    /// Whether the service is normal.
    pub normal: Option<bool>,
    /// Instance id (instance scope).
    pub service_instance_id: Option<String>,
    /// Instance name (instance scope).
    pub service_instance_name: Option<String>,
    /// Endpoint id (endpoint scope).
    pub endpoint_id: Option<String>,
    /// Endpoint name (endpoint scope).
    pub endpoint_name: Option<String>,
}

/// One point.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MqeValue {
    /// Bucket start (epoch ms as text), entity name (top_n), or `None` after aggregation.
    pub id: Option<String>,
    /// The number, `None` when there is no data.
    pub value: Option<f64>,
    /// Trace id of a sampled record.
    pub trace_id: Option<String>,
    /// Owner of a `top_n` value.
    pub owner: Option<Owner>,
}

/// One series: its labels (sorted by key for metric reads) and points.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MqeSeries {
    /// `(key, value)` pairs; empty for unlabeled metrics.
    pub labels: Vec<(String, String)>,
    /// The points.
    pub values: Vec<MqeValue>,
}

/// The result of evaluating an expression.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpressionOutcome {
    /// Result type.
    pub kind: ResultType,
    /// Series.
    pub results: Vec<MqeSeries>,
    /// Error message (evaluation problems are reported here, not as GraphQL errors).
    pub error: Option<String>,
    /// Whether the series carry labels (OAP's `isLabeledResult`, not serialized).
    pub labeled: bool,
}

impl ExpressionOutcome {
    /// `{type: UNKNOWN, results: [], error: message}`.
    pub fn error(message: impl Into<String>) -> Self {
        ExpressionOutcome {
            kind: ResultType::Unknown,
            results: Vec::new(),
            error: Some(message.into()),
            labeled: false,
        }
    }

    pub(crate) fn new(kind: ResultType, results: Vec<MqeSeries>, labeled: bool) -> Self {
        ExpressionOutcome {
            kind,
            results,
            error: None,
            labeled,
        }
    }
}

/// The `Entity` argument of `execExpression`; empty strings already mean "not given".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MqeEntity {
    /// Advisory scope; the metric's own scope is used instead.
    pub scope: Option<Scope>,
    /// Service name.
    pub service_name: Option<String>,
    /// Whether the service is normal.
    pub normal: Option<bool>,
    /// Instance name.
    pub service_instance_name: Option<String>,
    /// Endpoint name.
    pub endpoint_name: Option<String>,
    /// Process name.
    pub process_name: Option<String>,
    /// Destination service name.
    pub dest_service_name: Option<String>,
    /// Whether the destination service is normal.
    pub dest_normal: Option<bool>,
    /// Destination instance name.
    pub dest_service_instance_name: Option<String>,
    /// Destination endpoint name.
    pub dest_endpoint_name: Option<String>,
    /// Destination process name.
    pub dest_process_name: Option<String>,
}

impl MqeEntity {
    /// A service entity (`normal` = true).
    pub fn service(name: &str) -> Self {
        MqeEntity {
            scope: Some(Scope::Service),
            service_name: Some(name.to_string()),
            normal: Some(true),
            ..Default::default()
        }
    }
}
