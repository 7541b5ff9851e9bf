//! GraphQL types, named exactly as in SkyWalking's query-protocol `.graphqls` files.

use crate::mqe;
use async_graphql::{
    Enum, InputObject, InputValueError, InputValueResult, Scalar, ScalarType, SimpleObject, Value,
    ID,
};

/// `scalar Long`: a 64-bit integer sent as a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Long(pub i64);

#[Scalar(name = "Long")]
impl ScalarType for Long {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(n) => n
                .as_i64()
                .map(Long)
                .ok_or_else(|| InputValueError::custom("Long must be a 64-bit integer")),
            Value::String(s) => s
                .parse::<i64>()
                .map(Long)
                .map_err(|_| InputValueError::custom("Long must be a 64-bit integer")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}

/// `enum Step`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "Step")]
pub enum StepEnum {
    /// `DAY`
    Day,
    /// `HOUR`
    Hour,
    /// `MINUTE`
    Minute,
    /// `SECOND`
    Second,
}

impl From<StepEnum> for skylark_core::Step {
    fn from(s: StepEnum) -> Self {
        match s {
            StepEnum::Day => skylark_core::Step::Day,
            StepEnum::Hour => skylark_core::Step::Hour,
            StepEnum::Minute => skylark_core::Step::Minute,
            StepEnum::Second => skylark_core::Step::Second,
        }
    }
}

/// `enum Order`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "Order")]
pub enum OrderEnum {
    /// `ASC`
    Asc,
    /// `DES`
    Des,
}

/// `enum Scope`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "Scope", rename_items = "PascalCase")]
pub enum ScopeEnum {
    /// `All`
    All,
    /// `Service`
    Service,
    /// `ServiceInstance`
    ServiceInstance,
    /// `Endpoint`
    Endpoint,
    /// `Process`
    Process,
    /// `ServiceRelation`
    ServiceRelation,
    /// `ServiceInstanceRelation`
    ServiceInstanceRelation,
    /// `EndpointRelation`
    EndpointRelation,
    /// `ProcessRelation`
    ProcessRelation,
}

impl From<ScopeEnum> for skylark_core::Scope {
    fn from(s: ScopeEnum) -> Self {
        use skylark_core::Scope as S;
        match s {
            ScopeEnum::All => S::All,
            ScopeEnum::Service => S::Service,
            ScopeEnum::ServiceInstance => S::ServiceInstance,
            ScopeEnum::Endpoint => S::Endpoint,
            ScopeEnum::Process => S::Process,
            ScopeEnum::ServiceRelation => S::ServiceRelation,
            ScopeEnum::ServiceInstanceRelation => S::ServiceInstanceRelation,
            ScopeEnum::EndpointRelation => S::EndpointRelation,
            ScopeEnum::ProcessRelation => S::ProcessRelation,
        }
    }
}

impl From<skylark_core::Scope> for ScopeEnum {
    fn from(s: skylark_core::Scope) -> Self {
        use skylark_core::Scope as S;
        match s {
            S::All => ScopeEnum::All,
            S::Service => ScopeEnum::Service,
            S::ServiceInstance => ScopeEnum::ServiceInstance,
            S::Endpoint => ScopeEnum::Endpoint,
            S::Process => ScopeEnum::Process,
            S::ServiceRelation => ScopeEnum::ServiceRelation,
            S::ServiceInstanceRelation => ScopeEnum::ServiceInstanceRelation,
            S::EndpointRelation => ScopeEnum::EndpointRelation,
            S::ProcessRelation => ScopeEnum::ProcessRelation,
        }
    }
}

/// `enum Language`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "Language")]
pub enum LanguageEnum {
    /// `UNKNOWN`
    Unknown,
    /// `JAVA`
    Java,
    /// `DOTNET`
    Dotnet,
    /// `NODEJS`
    Nodejs,
    /// `PYTHON`
    Python,
    /// `RUBY`
    Ruby,
    /// `GO`
    Go,
    /// `LUA`
    Lua,
    /// `PHP`
    Php,
}

/// `input Duration`.
#[derive(InputObject, Debug, Clone)]
#[graphql(name = "Duration")]
pub struct DurationInput {
    /// Start, in the step's format.
    pub start: String,
    /// End (inclusive).
    pub end: String,
    /// Granularity.
    pub step: StepEnum,
    /// BanyanDB cold stage flag (ignored).
    pub cold_stage: Option<bool>,
}

impl DurationInput {
    /// The epoch-ms window this duration covers for record queries (logs, segments).
    pub(crate) fn record_window(&self) -> crate::Result<crate::RecordWindow> {
        crate::RecordWindow::parse(&self.start, &self.end, self.step.into())
    }
}

/// `type KeyValue`.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// Value.
    pub value: Option<String>,
}

/// `type HealthStatus`.
#[derive(SimpleObject, Debug, Clone)]
pub struct HealthStatus {
    /// 0 = healthy.
    pub score: i32,
    /// Details.
    pub details: Option<String>,
}

/// `type DebuggingSpan` (never produced: `debug` is not implemented).
#[derive(SimpleObject, Debug, Clone)]
pub struct DebuggingSpan {
    /// Span id.
    pub span_id: i32,
    /// Parent span id.
    pub parent_span_id: i32,
    /// Operation.
    pub operation: String,
    /// Start (ms).
    pub start_time: Long,
    /// End (ms).
    pub end_time: Long,
    /// Duration (ms).
    pub duration: Long,
    /// Message.
    pub msg: Option<String>,
    /// Error.
    pub error: Option<String>,
}

/// `type DebuggingTrace` (always null).
#[derive(SimpleObject, Debug, Clone)]
pub struct DebuggingTrace {
    /// Trace id.
    pub trace_id: String,
    /// Condition.
    pub condition: String,
    /// Start (ms).
    pub start_time: Long,
    /// End (ms).
    pub end_time: Long,
    /// Duration (ms).
    pub duration: Long,
    /// Spans.
    pub spans: Vec<DebuggingSpan>,
}

/// `type Service`.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
#[graphql(name = "Service")]
pub struct ServiceObject {
    /// `BASE64(name).1`.
    pub id: ID,
    /// Name.
    pub name: String,
    /// Part before `::`, or "".
    pub group: String,
    /// Part after `::`, or the name.
    pub short_name: String,
    /// Layer names.
    pub layers: Vec<String>,
    /// Normal service.
    pub normal: Option<bool>,
}

/// `type Attribute`.
#[derive(SimpleObject, Debug, Clone)]
pub struct Attribute {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `type ServiceInstance`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "ServiceInstance")]
pub struct ServiceInstanceObject {
    /// `serviceId_BASE64(name)`.
    pub id: ID,
    /// Name.
    pub name: String,
    /// Always empty (no agent properties for mini-programs).
    pub attributes: Vec<Attribute>,
    /// Always UNKNOWN.
    pub language: LanguageEnum,
    /// Same as the id.
    #[graphql(name = "instanceUUID")]
    pub instance_uuid: String,
}

/// `type Endpoint`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Endpoint")]
pub struct EndpointObject {
    /// `serviceId_BASE64(name)`.
    pub id: ID,
    /// Name.
    pub name: String,
}

/// `type EndpointInfo`.
#[derive(SimpleObject, Debug, Clone)]
pub struct EndpointInfo {
    /// Endpoint id.
    pub id: ID,
    /// Endpoint name.
    pub name: String,
    /// Service id.
    pub service_id: ID,
    /// Service name.
    pub service_name: String,
}

/// `type TimeInfo`.
#[derive(SimpleObject, Debug, Clone)]
pub struct TimeInfo {
    /// `+0800` style offset.
    pub timezone: Option<String>,
    /// Epoch ms.
    pub current_timestamp: Option<Long>,
}

/// `type RecordsTTL`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "RecordsTTL")]
pub struct RecordsTtl {
    /// Days.
    pub normal: i32,
    /// Days.
    pub trace: i32,
    /// Days.
    pub zipkin_trace: i32,
    /// Days.
    pub log: i32,
    /// Days.
    pub browser_error_log: i32,
    /// -1: no cold stage.
    pub cold_normal: i32,
    /// -1.
    pub cold_trace: i32,
    /// -1.
    pub cold_zipkin_trace: i32,
    /// -1.
    pub cold_log: i32,
    /// -1.
    pub cold_browser_error_log: i32,
}

/// `type MetricsTTL`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "MetricsTTL")]
pub struct MetricsTtl {
    /// Days.
    pub metadata: i32,
    /// Days.
    pub minute: i32,
    /// Days.
    pub hour: i32,
    /// Days.
    pub day: i32,
    /// -1: no cold stage.
    pub cold_minute: i32,
    /// -1.
    pub cold_hour: i32,
    /// -1.
    pub cold_day: i32,
}

/// `type LayerLevel` (hierarchy.graphqls).
#[derive(SimpleObject, Debug, Clone)]
pub struct LayerLevel {
    /// Layer name.
    pub layer: String,
    /// Level.
    pub level: i32,
}

/// `input Entity` (metrics-v3.graphqls).
#[derive(InputObject, Debug, Clone, Default)]
#[graphql(name = "Entity")]
pub struct EntityInput {
    /// Advisory; the metric's scope wins.
    pub scope: Option<ScopeEnum>,
    /// Service name.
    pub service_name: Option<String>,
    /// Normal service.
    pub normal: Option<bool>,
    /// Instance name.
    pub service_instance_name: Option<String>,
    /// Endpoint name.
    pub endpoint_name: Option<String>,
    /// Process name.
    pub process_name: Option<String>,
    /// Destination service.
    pub dest_service_name: Option<String>,
    /// Destination normal.
    pub dest_normal: Option<bool>,
    /// Destination instance.
    pub dest_service_instance_name: Option<String>,
    /// Destination endpoint.
    pub dest_endpoint_name: Option<String>,
    /// Destination process.
    pub dest_process_name: Option<String>,
}

fn given(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl From<EntityInput> for mqe::MqeEntity {
    fn from(e: EntityInput) -> Self {
        mqe::MqeEntity {
            scope: e.scope.map(Into::into),
            service_name: given(e.service_name),
            normal: e.normal,
            service_instance_name: given(e.service_instance_name),
            endpoint_name: given(e.endpoint_name),
            process_name: given(e.process_name),
            dest_service_name: given(e.dest_service_name),
            dest_normal: e.dest_normal,
            dest_service_instance_name: given(e.dest_service_instance_name),
            dest_endpoint_name: given(e.dest_endpoint_name),
            dest_process_name: given(e.dest_process_name),
        }
    }
}

/// `enum ExpressionResultType`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "ExpressionResultType")]
pub enum ExpressionResultTypeEnum {
    /// `UNKNOWN`
    Unknown,
    /// `SINGLE_VALUE`
    SingleValue,
    /// `TIME_SERIES_VALUES`
    TimeSeriesValues,
    /// `SORTED_LIST`
    SortedList,
    /// `RECORD_LIST`
    RecordList,
}

impl From<mqe::ResultType> for ExpressionResultTypeEnum {
    fn from(t: mqe::ResultType) -> Self {
        match t {
            mqe::ResultType::Unknown => ExpressionResultTypeEnum::Unknown,
            mqe::ResultType::SingleValue => ExpressionResultTypeEnum::SingleValue,
            mqe::ResultType::TimeSeriesValues => ExpressionResultTypeEnum::TimeSeriesValues,
            mqe::ResultType::SortedList => ExpressionResultTypeEnum::SortedList,
            mqe::ResultType::RecordList => ExpressionResultTypeEnum::RecordList,
        }
    }
}

/// `type Owner`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Owner")]
pub struct OwnerObject {
    /// Scope.
    pub scope: Option<ScopeEnum>,
    /// Service id.
    #[graphql(name = "serviceID")]
    pub service_id: Option<ID>,
    /// Service name.
    pub service_name: Option<String>,
    /// Normal.
    pub normal: Option<bool>,
    /// Instance id.
    #[graphql(name = "serviceInstanceID")]
    pub service_instance_id: Option<ID>,
    /// Instance name.
    pub service_instance_name: Option<String>,
    /// Endpoint id.
    #[graphql(name = "endpointID")]
    pub endpoint_id: Option<ID>,
    /// Endpoint name.
    pub endpoint_name: Option<String>,
}

impl From<mqe::Owner> for OwnerObject {
    fn from(o: mqe::Owner) -> Self {
        OwnerObject {
            scope: o.scope.map(Into::into),
            service_id: o.service_id.map(ID),
            service_name: o.service_name,
            normal: o.normal,
            service_instance_id: o.service_instance_id.map(ID),
            service_instance_name: o.service_instance_name,
            endpoint_id: o.endpoint_id.map(ID),
            endpoint_name: o.endpoint_name,
        }
    }
}

/// `type MQEValue`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "MQEValue")]
pub struct MqeValueObject {
    /// Bucket start (epoch ms), entity name, or null.
    pub id: Option<ID>,
    /// Owner of a top_n value.
    pub owner: Option<OwnerObject>,
    /// Formatted number or null.
    pub value: Option<String>,
    /// Trace id of a sampled record.
    #[graphql(name = "traceID")]
    pub trace_id: Option<ID>,
}

/// `type Metadata`.
#[derive(SimpleObject, Debug, Clone)]
pub struct Metadata {
    /// Labels, sorted by key.
    pub labels: Vec<KeyValue>,
}

/// `type MQEValues`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "MQEValues")]
pub struct MqeValuesObject {
    /// Series labels.
    pub metric: Metadata,
    /// Points.
    pub values: Vec<MqeValueObject>,
}

/// `type ExpressionResult`.
#[derive(SimpleObject, Debug, Clone)]
pub struct ExpressionResult {
    /// Result type.
    #[graphql(name = "type")]
    pub kind: ExpressionResultTypeEnum,
    /// Series.
    pub results: Vec<MqeValuesObject>,
    /// MQE error message.
    pub error: Option<String>,
    /// Always null.
    pub debugging_trace: Option<DebuggingTrace>,
}

impl From<mqe::ExpressionOutcome> for ExpressionResult {
    fn from(o: mqe::ExpressionOutcome) -> Self {
        ExpressionResult {
            kind: o.kind.into(),
            results: o
                .results
                .into_iter()
                .map(|s| MqeValuesObject {
                    metric: Metadata {
                        labels: s
                            .labels
                            .into_iter()
                            .map(|(key, value)| KeyValue {
                                key,
                                value: Some(value),
                            })
                            .collect(),
                    },
                    values: s
                        .values
                        .into_iter()
                        .map(|v| MqeValueObject {
                            id: v.id.map(ID),
                            owner: v.owner.map(Into::into),
                            value: v.value.map(mqe::format_value),
                            trace_id: v.trace_id.map(ID),
                        })
                        .collect(),
                })
                .collect(),
            error: o.error,
            debugging_trace: None,
        }
    }
}

/// `enum MetricsType` (metrics-v2.graphqls).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "MetricsType")]
pub enum MetricsTypeEnum {
    /// `UNKNOWN`
    Unknown,
    /// `REGULAR_VALUE`
    RegularValue,
    /// `LABELED_VALUE`
    LabeledValue,
    /// `HEATMAP`
    Heatmap,
    /// `SAMPLED_RECORD`
    SampledRecord,
}

/// `type MetricDefinition` (metrics-v2.graphqls).
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "MetricDefinition")]
pub struct MetricDefinitionObject {
    /// Metric name.
    pub name: String,
    /// Value type.
    #[graphql(name = "type")]
    pub kind: MetricsTypeEnum,
    /// Scope catalog (`SERVICE`, `SERVICE_INSTANCE`, `ENDPOINT`, ...).
    pub catalog: Option<String>,
}

/// `input Pagination`: 1-based pages, no total.
#[derive(InputObject, Debug, Clone)]
pub struct Pagination {
    /// Page number, 1 when absent.
    pub page_num: Option<i32>,
    /// Rows per page.
    pub page_size: i32,
}

impl Pagination {
    /// `(offset, limit)`: `pageSize * (pageNum - 1)` and `pageSize`; nonsense values page
    /// nothing rather than everything, and a page larger than `max_page_size` is refused (it
    /// would make storage collect that many rows).
    pub fn offset_limit(&self, max_page_size: usize) -> crate::Result<(usize, usize)> {
        let size = self.page_size.max(0) as usize;
        if size > max_page_size {
            return Err(crate::Error::PageTooLarge {
                size,
                max: max_page_size,
            });
        }
        let page = self.page_num.unwrap_or(1).max(1) as usize;
        Ok((size.saturating_mul(page - 1), size))
    }
}

/// The largest page the schema's [`crate::QueryLimits`] allow (the default when built without).
pub(crate) fn max_page_size(ctx: &async_graphql::Context<'_>) -> usize {
    ctx.data_opt::<crate::QueryLimits>().map_or_else(
        || crate::QueryLimits::default().max_page_size,
        |l| l.max_page_size,
    )
}

/// `input ServiceCondition`: a service by name (virtual layers make it a non-normal one).
#[derive(InputObject, Debug, Clone)]
pub struct ServiceCondition {
    /// Service name.
    pub service_name: String,
    /// Layer name, only needed for virtual services.
    pub layer: Option<String>,
}

/// `input InstanceCondition`.
#[derive(InputObject, Debug, Clone)]
pub struct InstanceCondition {
    /// Service name.
    pub service_name: String,
    /// Instance name.
    pub instance_name: String,
    /// Layer name, only needed for virtual services.
    pub layer: Option<String>,
}

/// `input EndpointCondition`.
#[derive(InputObject, Debug, Clone)]
pub struct EndpointCondition {
    /// Service name.
    pub service_name: String,
    /// Endpoint name.
    pub endpoint_name: String,
    /// Layer name, only needed for virtual services.
    pub layer: Option<String>,
}

/// The id of the service a `*Condition` names: normal unless its layer is a virtual one.
pub(crate) fn condition_service_id(name: &str, layer: Option<&str>) -> skylark_core::ServiceId {
    let normal = layer
        .filter(|l| !l.is_empty())
        .and_then(skylark_core::Layer::from_name)
        .is_none_or(|l| l.is_normal());
    skylark_core::ServiceId::new(name, normal)
}

/// `type KeyNumericValue`.
#[derive(SimpleObject, Debug, Clone)]
pub struct KeyNumericValue {
    /// Key.
    pub key: String,
    /// Value.
    pub value: Long,
}
