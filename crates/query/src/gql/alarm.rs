//! Alarms (alarm.graphqls): `getAlarm`, the tag autocompletes and OAP 11's
//! `queryAlarms(condition)`, answered from the alarm records the evaluator stores.

use super::query::{given, qctx};
use super::types::{
    DurationInput, EntityInput, KeyValue, Long, Metadata, MqeValueObject, MqeValuesObject,
    Pagination, ScopeEnum,
};
use crate::mqe;
use crate::Error;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use skylark_core::{EndpointId, InstanceId, Scope, ServiceId};
use skylark_storage::{AlarmEntityFilter, AlarmQuery, AlarmRecord};

/// Most alarms one page returns: a page holds every alarm's snapshot, so an unbounded
/// `pageSize` could hold the whole alarm store in memory.
pub const MAX_ALARM_PAGE_SIZE: usize = 1000;

/// Most series one stored snapshot metric is read back with (a rule on a labeled metric keeps
/// one series per label value).
const MAX_SNAPSHOT_SERIES: usize = 1000;

/// `input AlarmTag`.
#[derive(InputObject, Debug, Clone)]
pub struct AlarmTag {
    /// Tag key.
    pub key: String,
    /// Tag value; any value when absent.
    pub value: Option<String>,
}

/// `enum EventType`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(rename_items = "PascalCase")]
pub enum EventType {
    /// `Normal`
    Normal,
    /// `Error`
    Error,
}

/// `type Source` (of an event).
#[derive(SimpleObject, Debug, Clone)]
pub struct Source {
    /// Service name.
    pub service: Option<String>,
    /// Instance name.
    pub service_instance: Option<String>,
    /// Endpoint name.
    pub endpoint: Option<String>,
}

/// `type Event`. Skylark receives no events, so an alarm's `events` is always empty (OAP 11
/// no longer turns alarms into events either); the type exists so the UIs' documents validate.
#[derive(SimpleObject, Debug, Clone)]
pub struct Event {
    /// Event id.
    pub uuid: String,
    /// Where it happened.
    pub source: Source,
    /// Name.
    pub name: String,
    /// Kind.
    #[graphql(name = "type")]
    pub kind: EventType,
    /// Message.
    pub message: Option<String>,
    /// Parameters.
    pub parameters: Option<Vec<KeyValue>>,
    /// Start, epoch ms.
    pub start_time: Long,
    /// End, epoch ms.
    pub end_time: Option<Long>,
    /// Layer.
    pub layer: String,
}

/// `type MQEMetric`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "MQEMetric")]
pub struct MqeMetric {
    /// The metric as written in the expression (`m{p='50'}`).
    pub name: String,
    /// Its series over the rule's window when the alarm fired.
    pub results: Vec<MqeValuesObject>,
}

/// `type AlarmSnapshot`.
#[derive(SimpleObject, Debug, Clone)]
pub struct AlarmSnapshot {
    /// The rule's MQE expression.
    pub expression: String,
    /// Metric values when it fired.
    pub metrics: Vec<MqeMetric>,
}

/// `type AlarmMessage`.
#[derive(SimpleObject, Debug, Clone)]
pub struct AlarmMessage {
    /// When it fired, epoch ms.
    pub start_time: Long,
    /// When it recovered, epoch ms; null while firing.
    pub recovery_time: Option<Long>,
    /// The alarmed entity's scope.
    pub scope: Option<ScopeEnum>,
    /// The alarmed entity's id (the source entity for relations).
    pub id: ID,
    /// The alarmed entity's name.
    pub name: String,
    /// The rule's formatted message.
    pub message: String,
    /// Related events (always empty, see [`Event`]).
    pub events: Vec<Event>,
    /// The rule's tags.
    pub tags: Vec<KeyValue>,
    /// The metric values the rule saw when it fired.
    pub snapshot: AlarmSnapshot,
}

/// `type Alarms` (alarm.graphqls declares no `total`).
#[derive(SimpleObject, Debug, Clone, Default)]
pub struct Alarms {
    /// Alarm messages, latest start first.
    pub msgs: Vec<AlarmMessage>,
}

/// `input AlarmQueryCondition` (OAP 11, `AlarmQueryCondition.java`): list filters match any of
/// their values, filters match all together; absent or empty filters filter nothing.
#[derive(InputObject, Debug, Clone)]
pub struct AlarmQueryCondition {
    /// Alarms that started in this window.
    pub duration: DurationInput,
    /// The page.
    pub paging: Pagination,
    /// Alarmed entities: a non-relation entity matches either side of an alarm, a relation only
    /// its exact source and destination. The scope is inferred when absent.
    pub entities: Option<Vec<EntityInput>>,
    /// The alarmed entity's (first) layer.
    pub layer: Option<String>,
    /// Rules that fired the alarm.
    pub rule_names: Option<Vec<String>>,
    /// Text the message contains.
    pub keyword: Option<String>,
    /// Tags the alarm carries.
    pub tags: Option<Vec<Option<AlarmTag>>>,
}

/// The `(key, value)` filters of a tag list; null entries are skipped.
fn tag_filters(tags: Option<Vec<Option<AlarmTag>>>) -> Vec<(String, Option<String>)> {
    tags.unwrap_or_default()
        .into_iter()
        .flatten()
        .map(|t| (t.key, given(t.value)))
        .collect()
}

/// `(offset, limit)` of a page, the limit capped at [`MAX_ALARM_PAGE_SIZE`] rather than refused:
/// alarm clients ask for pages of `i32::MAX` and storage never collects more than the cap.
fn page(paging: &Pagination) -> (usize, usize) {
    let (offset, limit) = paging.offset_limit(usize::MAX).unwrap_or((0, 0));
    (offset, limit.min(MAX_ALARM_PAGE_SIZE))
}

/// OAP's `inferScope`: the deepest name given picks the scope.
fn infer_scope(e: &EntityInput) -> Option<ScopeEnum> {
    let has = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    [
        (&e.dest_process_name, ScopeEnum::ProcessRelation),
        (&e.dest_endpoint_name, ScopeEnum::EndpointRelation),
        (
            &e.dest_service_instance_name,
            ScopeEnum::ServiceInstanceRelation,
        ),
        (&e.dest_service_name, ScopeEnum::ServiceRelation),
        (&e.process_name, ScopeEnum::Process),
        (&e.endpoint_name, ScopeEnum::Endpoint),
        (&e.service_instance_name, ScopeEnum::ServiceInstance),
        (&e.service_name, ScopeEnum::Service),
    ]
    .into_iter()
    .find(|(name, _)| has(name))
    .map(|(_, scope)| scope)
}

/// OAP's `resolveEntityFilters` for one entity: `None` for `All` (no filter). A populated entity
/// missing a name its scope needs is an error rather than silently matching every alarm.
fn entity_filter(e: &EntityInput) -> std::result::Result<Option<AlarmEntityFilter>, String> {
    let scope = e.scope.or_else(|| infer_scope(e));
    let Some(scope) = scope else {
        return Err("queryAlarms entity is invalid: no scope and no name given".into());
    };
    let need = |field: &str, value: &Option<String>| -> std::result::Result<String, String> {
        value.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
            format!("queryAlarms entity is invalid (scope={scope:?}): `{field}` is required")
        })
    };
    let service = || -> std::result::Result<ServiceId, String> {
        Ok(ServiceId::new(
            &need("serviceName", &e.service_name)?,
            e.normal.unwrap_or(true),
        ))
    };
    let dest_service = || -> std::result::Result<ServiceId, String> {
        Ok(ServiceId::new(
            &need("destServiceName", &e.dest_service_name)?,
            e.dest_normal.unwrap_or(true),
        ))
    };
    let either = |id: String| AlarmEntityFilter { id0: id, id1: None };
    let exact = |id0: String, id1: String| AlarmEntityFilter {
        id0,
        id1: Some(id1),
    };
    Ok(Some(match scope {
        ScopeEnum::All => return Ok(None),
        ScopeEnum::Service => either(service()?.into_string()),
        ScopeEnum::ServiceInstance => either(
            InstanceId::new(
                &service()?,
                &need("serviceInstanceName", &e.service_instance_name)?,
            )
            .into_string(),
        ),
        ScopeEnum::Endpoint => either(
            EndpointId::new(&service()?, &need("endpointName", &e.endpoint_name)?).into_string(),
        ),
        ScopeEnum::ServiceRelation => {
            exact(service()?.into_string(), dest_service()?.into_string())
        }
        ScopeEnum::ServiceInstanceRelation => exact(
            InstanceId::new(
                &service()?,
                &need("serviceInstanceName", &e.service_instance_name)?,
            )
            .into_string(),
            InstanceId::new(
                &dest_service()?,
                &need("destServiceInstanceName", &e.dest_service_instance_name)?,
            )
            .into_string(),
        ),
        ScopeEnum::EndpointRelation => exact(
            EndpointId::new(&service()?, &need("endpointName", &e.endpoint_name)?).into_string(),
            EndpointId::new(
                &dest_service()?,
                &need("destEndpointName", &e.dest_endpoint_name)?,
            )
            .into_string(),
        ),
        // Skylark has no processes, so no alarm can be on one.
        ScopeEnum::Process | ScopeEnum::ProcessRelation => {
            return Err(format!(
                "queryAlarms entity scope {scope:?} is not supported: Skylark has no processes"
            ))
        }
    }))
}

/// One stored snapshot metric (`[{"metric":{"labels":[..]},"values":[{"id","doubleValue",
/// "isEmptyValue"}]}]`) as MQE series; values formatted as OAP's `DecimalFormat` does, empty
/// ones null. Text that does not parse gives no series (it is logged).
fn snapshot_series(name: &str, text: &str) -> Vec<MqeValuesObject> {
    let parsed: Vec<serde_json::Value> = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(error) => {
            tracing::warn!(%error, metric = name, "stored alarm snapshot unreadable");
            return Vec::new();
        }
    };
    parsed
        .iter()
        .take(MAX_SNAPSHOT_SERIES)
        .map(|series| {
            let labels = series["metric"]["labels"]
                .as_array()
                .map(|ls| {
                    ls.iter()
                        .map(|l| KeyValue {
                            key: l["key"].as_str().unwrap_or_default().to_string(),
                            value: l["value"].as_str().map(str::to_string),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let values = series["values"]
                .as_array()
                .map(|vs| {
                    vs.iter()
                        .map(|v| {
                            let empty = v["isEmptyValue"].as_bool().unwrap_or(false);
                            MqeValueObject {
                                id: v["id"].as_str().map(|s| ID(s.to_string())),
                                owner: None,
                                value: v["doubleValue"]
                                    .as_f64()
                                    .filter(|_| !empty)
                                    .map(mqe::format_value),
                                trace_id: None,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            MqeValuesObject {
                metric: Metadata { labels },
                values,
            }
        })
        .collect()
}

impl From<AlarmRecord> for AlarmMessage {
    fn from(r: AlarmRecord) -> Self {
        let metrics = r
            .snapshot
            .iter()
            .map(|(name, text)| MqeMetric {
                name: name.clone(),
                results: snapshot_series(name, text),
            })
            .collect();
        AlarmMessage {
            start_time: Long(r.start_time_ms),
            recovery_time: r.recovery_time_ms.map(Long),
            scope: Some(r.scope.into()),
            id: ID(r.id0),
            name: r.name,
            message: r.message,
            events: Vec::new(),
            tags: r
                .tags
                .into_iter()
                .map(|(key, value)| KeyValue {
                    key,
                    value: Some(value),
                })
                .collect(),
            snapshot: AlarmSnapshot {
                expression: r.expression,
                metrics,
            },
        }
    }
}

fn run(ctx: &Context<'_>, query: &AlarmQuery) -> Result<Alarms> {
    let records = qctx(ctx)?
        .storage
        .query_alarms(query)
        .map_err(Error::from)?;
    Ok(Alarms {
        msgs: records.into_iter().map(AlarmMessage::from).collect(),
    })
}

/// The alarm root fields.
#[derive(Default)]
pub struct AlarmQueryRoot;

#[Object]
impl AlarmQueryRoot {
    /// Alarms that started in the duration, latest first, filtered by scope (`All` or none:
    /// every scope), message keyword and tags.
    async fn get_alarm(
        &self,
        ctx: &Context<'_>,
        duration: DurationInput,
        scope: Option<ScopeEnum>,
        keyword: Option<String>,
        paging: Pagination,
        tags: Option<Vec<Option<AlarmTag>>>,
    ) -> Result<Option<Alarms>> {
        let window = duration.record_window()?;
        let (offset, limit) = page(&paging);
        let query = AlarmQuery {
            start_ms: Some(window.start_ms),
            end_ms: Some(window.end_ms),
            scope: scope.filter(|s| *s != ScopeEnum::All).map(Scope::from),
            keyword: given(keyword),
            tags: tag_filters(tags),
            offset,
            limit,
            ..AlarmQuery::default()
        };
        run(ctx, &query).map(Some)
    }

    /// OAP 11's alarm query: `getAlarm`'s filters plus entities, layer and rule names.
    async fn query_alarms(
        &self,
        ctx: &Context<'_>,
        condition: AlarmQueryCondition,
    ) -> Result<Option<Alarms>> {
        let window = condition.duration.record_window()?;
        let (offset, limit) = page(&condition.paging);
        let mut entities = Vec::new();
        for e in condition.entities.iter().flatten() {
            if let Some(filter) = entity_filter(e).map_err(async_graphql::Error::new)? {
                entities.push(filter);
            }
        }
        let query = AlarmQuery {
            start_ms: Some(window.start_ms),
            end_ms: Some(window.end_ms),
            scope: None,
            keyword: given(condition.keyword),
            tags: tag_filters(condition.tags),
            entities,
            rule_names: condition
                .rule_names
                .unwrap_or_default()
                .into_iter()
                .filter(|r| !r.is_empty())
                .collect(),
            layer: given(condition.layer),
            offset,
            limit,
        };
        run(ctx, &query).map(Some)
    }

    /// Alarm tag keys seen in the duration.
    async fn query_alarm_tag_autocomplete_keys(
        &self,
        ctx: &Context<'_>,
        duration: DurationInput,
    ) -> Result<Option<Vec<String>>> {
        let w = duration.record_window()?;
        let keys = qctx(ctx)?
            .storage
            .alarm_tag_keys(w.start_ms, w.end_ms)
            .map_err(Error::from)?;
        Ok(Some(keys))
    }

    /// Values of alarm tag `tagKey` seen in the duration.
    async fn query_alarm_tag_autocomplete_values(
        &self,
        ctx: &Context<'_>,
        tag_key: String,
        duration: DurationInput,
    ) -> Result<Option<Vec<String>>> {
        let w = duration.record_window()?;
        let values = qctx(ctx)?
            .storage
            .alarm_tag_values(&tag_key, w.start_ms, w.end_ms)
            .map_err(Error::from)?;
        Ok(Some(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(scope: Option<ScopeEnum>, service: &str) -> EntityInput {
        EntityInput {
            scope,
            service_name: Some(service.into()),
            ..EntityInput::default()
        }
    }

    #[test]
    fn entities_resolve_as_oap_does() {
        let svc = ServiceId::new("svc", true).into_string();
        // The scope is inferred and `normal` defaults to true; either side matches.
        assert_eq!(
            entity_filter(&entity(None, "svc")).unwrap(),
            Some(AlarmEntityFilter {
                id0: svc.clone(),
                id1: None
            })
        );
        let mut relation = entity(None, "svc");
        relation.dest_service_name = Some("db".into());
        relation.dest_normal = Some(false);
        assert_eq!(
            entity_filter(&relation).unwrap(),
            Some(AlarmEntityFilter {
                id0: svc,
                id1: Some(ServiceId::new("db", false).into_string())
            })
        );
        let mut instance = entity(Some(ScopeEnum::ServiceInstance), "svc");
        instance.service_instance_name = Some("i1".into());
        assert_eq!(
            entity_filter(&instance).unwrap().unwrap().id0,
            InstanceId::new(&ServiceId::new("svc", true), "i1").into_string()
        );
        assert_eq!(
            entity_filter(&entity(Some(ScopeEnum::All), "svc")).unwrap(),
            None
        );
    }

    #[test]
    fn an_entity_missing_its_names_is_refused_not_widened() {
        let err = entity_filter(&entity(Some(ScopeEnum::Endpoint), "svc")).unwrap_err();
        assert!(err.contains("endpointName"), "{err}");
        assert!(entity_filter(&EntityInput::default()).is_err());
    }

    #[test]
    fn snapshots_read_back_with_oap_value_format() {
        let text = r#"[{"metric":{"labels":[{"key":"p","value":"50"}]},"values":[{"id":"202605011200","doubleValue":1438.25,"isEmptyValue":false},{"id":"202605011201","doubleValue":0.0,"isEmptyValue":true}]}]"#;
        let series = snapshot_series("m{p='50'}", text);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].metric.labels[0].value.as_deref(), Some("50"));
        let values: Vec<Option<String>> =
            series[0].values.iter().map(|v| v.value.clone()).collect();
        assert_eq!(values, [Some("1438.25".to_string()), None]);
        assert!(snapshot_series("m", "not json").is_empty());
    }
}
