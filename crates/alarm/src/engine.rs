//! The minute tick (OAP's `AlarmCore` + `RunningRule`): for each rule, every entity with data
//! in the rule's window is checked with the MQE evaluator, its state machine advanced, alarm
//! records stored and hooks notified. State is written to storage after each check, so a
//! restart keeps silence and pending recoveries.
use crate::error::Result;
use crate::hooks::{self, Dispatcher};
use crate::message::{AlarmMessage, Tag};
use crate::settings::{AlarmRule, AlarmSettings};
use crate::state::{State, StateMachine};
use skylark_core::telemetry::{Telemetry, ALARM_HOOK_FAILURES_TOTAL, ALARM_MESSAGES_TOTAL};
use skylark_core::{EndpointId, InstanceId, MetricCatalog, Scope, ServiceId, Step, TimeBucket};
use skylark_query::mqe::{self, MqeContext, MqeEntity, ResultType};
use skylark_storage::{AlarmRecord, Storage};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Most entities one rule checks per minute; the rest wait (a warning is logged).
pub const MAX_ENTITIES_PER_RULE: usize = 10_000;

/// A source of "now" in epoch milliseconds (injectable for tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The alarmed entity, as OAP's `AlarmEntity`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlarmEntity {
    /// Scope.
    pub scope: Scope,
    /// Name (`svc`, `inst of svc`, `ep in svc`).
    pub name: String,
    /// Entity id.
    pub id0: String,
    /// Destination id for relations, else empty.
    pub id1: String,
}

/// What is kept per (rule, entity) between checks, and across restarts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EntityState {
    /// The entity.
    pub entity: AlarmEntity,
    /// Silence and recovery countdowns.
    pub machine: StateMachine,
    /// The alarm being silenced or observed, for its recovery message.
    pub last_alarm: Option<AlarmMessage>,
    /// The metric values the last check saw (metric as written → JSON text).
    #[serde(default)]
    pub snapshot: serde_json::Map<String, serde_json::Value>,
    /// The minute bucket (`yyyyMMddHHmm`) of the last check.
    #[serde(default)]
    pub end_bucket: i64,
}

/// OAP's scope id and name for a scope.
pub fn oap_scope(scope: Scope) -> (i32, &'static str) {
    match scope {
        Scope::Service => (1, "SERVICE"),
        Scope::ServiceInstance => (2, "SERVICE_INSTANCE"),
        Scope::Endpoint => (3, "ENDPOINT"),
        Scope::ServiceRelation => (4, "SERVICE_RELATION"),
        Scope::ServiceInstanceRelation => (5, "SERVICE_INSTANCE_RELATION"),
        Scope::EndpointRelation => (6, "ENDPOINT_RELATION"),
        Scope::All => (0, "ALL"),
        Scope::Process => (11, "PROCESS"),
        Scope::ProcessRelation => (12, "PROCESS_RELATION"),
    }
}

/// The checked rules and where alarms go.
pub struct AlarmEngine {
    settings: AlarmSettings,
    storage: Arc<dyn Storage>,
    catalog: Arc<MetricCatalog>,
    telemetry: Arc<Telemetry>,
    dispatcher: Option<Dispatcher>,
    clock: Clock,
    inner: parking_lot::Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// `(rule, entity id)` → state.
    states: BTreeMap<(String, String), EntityState>,
    /// The last minute checked (epoch minutes).
    last_minute: Option<i64>,
}

impl AlarmEngine {
    /// An engine over `settings`, with the state stored by a previous run loaded (state of
    /// rules no longer configured is dropped).
    pub fn new(
        settings: AlarmSettings,
        storage: Arc<dyn Storage>,
        catalog: Arc<MetricCatalog>,
        telemetry: Arc<Telemetry>,
        dispatcher: Option<Dispatcher>,
        clock: Clock,
    ) -> Result<AlarmEngine> {
        let mut inner = Inner::default();
        let mut stale = Vec::new();
        for (rule, entity, text) in storage.alarm_states()? {
            let known = settings.rules.iter().any(|r| r.name == rule);
            match serde_json::from_str::<EntityState>(&text) {
                Ok(state) if known => {
                    inner.states.insert((rule, entity), state);
                }
                Ok(_) => stale.push((rule, entity, None)),
                Err(error) => {
                    tracing::warn!(%error, rule, entity, "unreadable alarm state dropped");
                    stale.push((rule, entity, None));
                }
            }
        }
        storage.put_alarm_states(stale)?;
        Ok(AlarmEngine {
            settings,
            storage,
            catalog,
            telemetry,
            dispatcher,
            clock,
            inner: parking_lot::Mutex::new(inner),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &AlarmSettings {
        &self.settings
    }

    /// States of one rule's entities, by entity id.
    pub fn states_of(&self, rule: &str) -> Vec<EntityState> {
        self.inner
            .lock()
            .states
            .iter()
            .filter(|((r, _), _)| r == rule)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Runs the check for the current minute unless it already ran; OAP skips the first 15
    /// seconds of a minute so that the minute's first metrics have arrived. Returns the
    /// messages produced (firing and recovery).
    pub fn tick(&self) -> Result<Vec<AlarmMessage>> {
        let now_ms = (self.clock)();
        let minute = now_ms.div_euclid(60_000);
        if now_ms.rem_euclid(60_000) <= 15_000 {
            return Ok(Vec::new());
        }
        {
            let mut inner = self.inner.lock();
            if inner.last_minute.is_some_and(|m| m >= minute) {
                return Ok(Vec::new());
            }
            inner.last_minute = Some(minute);
        }
        self.check(now_ms)
    }

    /// Checks every rule at `now_ms` (the window ends with its minute), stores what changed
    /// and notifies hooks.
    pub fn check(&self, now_ms: i64) -> Result<Vec<AlarmMessage>> {
        let Ok(end) = TimeBucket::from_epoch_ms(now_ms, Step::Minute) else {
            tracing::warn!(now_ms, "alarm check skipped: the clock is out of range");
            return Ok(Vec::new());
        };
        let started = std::time::Instant::now();
        let mut messages = Vec::new();
        let mut records = Vec::new();
        let mut writes = Vec::new();
        for rule in &self.settings.rules {
            self.check_rule(rule, end, now_ms, &mut messages, &mut records, &mut writes)?;
        }
        tracing::debug!(
            rules = self.settings.rules.len(),
            alarms = messages.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "alarm rules checked"
        );
        // Records and state first: a hook call must never be for an alarm that is not stored.
        self.storage.write_alarm_records(records)?;
        self.storage.put_alarm_states(writes)?;
        self.notify(&messages, now_ms);
        Ok(messages)
    }

    fn entity_of(&self, scope: Scope, id: &str) -> Option<(AlarmEntity, MqeEntity)> {
        let (service, child) = match scope {
            Scope::Service => (ServiceId::from_raw(id), None),
            Scope::ServiceInstance => {
                let (sid, name) = InstanceId::from_raw(id).decode()?;
                (sid, Some(name))
            }
            Scope::Endpoint => {
                let (sid, name) = EndpointId::from_raw(id).decode()?;
                (sid, Some(name))
            }
            _ => return None,
        };
        let (service_name, normal) = service.decode()?;
        let mut mqe_entity = MqeEntity::service(&service_name);
        mqe_entity.normal = Some(normal);
        mqe_entity.scope = Some(scope);
        let name = match (scope, &child) {
            (Scope::ServiceInstance, Some(c)) => {
                mqe_entity.service_instance_name = Some(c.clone());
                format!("{c} of {service_name}")
            }
            (Scope::Endpoint, Some(c)) => {
                mqe_entity.endpoint_name = Some(c.clone());
                format!("{c} in {service_name}")
            }
            _ => service_name,
        };
        Some((
            AlarmEntity {
                scope,
                name,
                id0: id.to_string(),
                id1: String::new(),
            },
            mqe_entity,
        ))
    }

    fn layers_of(&self, entity: &AlarmEntity) -> Vec<String> {
        let service = match entity.scope {
            Scope::Service => ServiceId::from_raw(entity.id0.as_str()),
            _ => match skylark_core::split_child_id(&entity.id0) {
                Some((sid, _)) => sid,
                None => return Vec::new(),
            },
        };
        match self.storage.get_service(&service) {
            Ok(Some(s)) => s.layers.iter().map(|l| l.name().to_string()).collect(),
            _ => Vec::new(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_rule(
        &self,
        rule: &AlarmRule,
        end: TimeBucket,
        now_ms: i64,
        messages: &mut Vec<AlarmMessage>,
        records: &mut Vec<AlarmRecord>,
        writes: &mut Vec<(String, String, Option<String>)>,
    ) -> Result<()> {
        // OAP's window is `period + additionalPeriod` minutes: an entity stays checked while
        // any of them holds data, and the snapshot shows all of them. The expression itself
        // sees the last `period` minutes; `increase`/`rate` read their earlier values on their
        // own.
        let buckets = window(end, rule.period);
        let full_window = window(end, rule.period + rule.additional_period);
        let mut ids = BTreeSet::new();
        for def in &rule.metrics {
            ids.extend(self.storage.metric_entities(def, &full_window)?);
        }
        if ids.len() > MAX_ENTITIES_PER_RULE {
            tracing::warn!(rule = %rule.name, entities = ids.len(), "alarm rule has too many entities; checking the first {MAX_ENTITIES_PER_RULE}");
        }
        let mut seen = BTreeSet::new();
        for id in ids.into_iter().take(MAX_ENTITIES_PER_RULE) {
            let Some((entity, mqe_entity)) = self.entity_of(rule.scope, &id) else {
                continue;
            };
            if !rule.accepts(&entity.name) {
                continue;
            }
            seen.insert(id.clone());
            let key = (rule.name.clone(), id.clone());
            // A minute checked before a restart is not checked again: that would count one
            // more minute of silence or observation than really passed.
            if self
                .inner
                .lock()
                .states
                .get(&key)
                .is_some_and(|s| s.end_bucket >= end.value)
            {
                continue;
            }
            let ctx = MqeContext {
                storage: self.storage.as_ref(),
                catalog: &self.catalog,
                entity: &mqe_entity,
                buckets: &buckets,
                limits: mqe::MqeLimits::default(),
            };
            let matched = is_match(&mqe::execute(&ctx, &rule.expression), &rule.name);
            let snapshot = snapshot(
                &MqeContext {
                    buckets: &full_window,
                    ..ctx
                },
                rule,
            );
            let mut inner = self.inner.lock();
            let state = inner.states.entry(key).or_insert_with(|| EntityState {
                entity: entity.clone(),
                machine: StateMachine::new(rule.silence_period, rule.recovery_observation_period),
                last_alarm: None,
                snapshot: serde_json::Map::new(),
                end_bucket: 0,
            });
            let before = serde_json::to_string(state).unwrap_or_default();
            if matched {
                state.machine.on_match();
            } else {
                state.machine.on_mismatch();
            }
            state.snapshot = snapshot;
            state.end_bucket = end.value;
            match state.machine.state {
                State::Firing => {
                    let (scope_id, scope_name) = oap_scope(entity.scope);
                    let message = AlarmMessage {
                        recovery_time: None,
                        scope_id,
                        scope: scope_name.to_string(),
                        name: entity.name.clone(),
                        id0: entity.id0.clone(),
                        id1: entity.id1.clone(),
                        rule_name: rule.name.clone(),
                        alarm_message: rule.message.format(&entity.name, &entity.id0),
                        tags: rule
                            .tags
                            .iter()
                            .map(|(k, v)| Tag {
                                key: k.clone(),
                                value: v.clone(),
                            })
                            .collect(),
                        start_time: now_ms,
                        hooks: rule.hooks.clone(),
                        expression: rule.expression.clone(),
                        mqe_metrics_snapshot: state.snapshot.clone(),
                        uuid: uuid::Uuid::new_v4().to_string(),
                        layers: self.layers_of(&entity),
                    };
                    records.push(record_of(&message, entity.scope));
                    state.last_alarm = Some(message.clone());
                    messages.push(message);
                }
                State::Recovered => {
                    if let Some(last) = state.last_alarm.take() {
                        let recovered = last.recovered(now_ms);
                        records.push(record_of(&recovered, entity.scope));
                        messages.push(recovered);
                    }
                }
                _ => {}
            }
            let after = serde_json::to_string(state).unwrap_or_default();
            if after != before {
                writes.push((rule.name.clone(), id, Some(after)));
            }
        }
        // OAP drops a window once it holds no data: state goes with it.
        let mut inner = self.inner.lock();
        let gone: Vec<(String, String)> = inner
            .states
            .keys()
            .filter(|(r, id)| r == &rule.name && !seen.contains(id))
            .cloned()
            .collect();
        for key in gone {
            inner.states.remove(&key);
            writes.push((key.0, key.1, None));
        }
        Ok(())
    }

    fn notify(&self, messages: &[AlarmMessage], now_ms: i64) {
        let firing: Vec<&AlarmMessage> = messages
            .iter()
            .filter(|m| m.recovery_time.is_none())
            .collect();
        let recovered: Vec<&AlarmMessage> = messages
            .iter()
            .filter(|m| m.recovery_time.is_some())
            .collect();
        for (kind, list) in [("firing", &firing), ("recovery", &recovered)] {
            if !list.is_empty() {
                self.telemetry
                    .counter(ALARM_MESSAGES_TOTAL, &[("kind", kind)])
                    .add(list.len() as u64);
            }
        }
        let Some(dispatcher) = &self.dispatcher else {
            return;
        };
        for hook in self.settings.hooks.values() {
            for (list, recovery) in [(&firing, false), (&recovered, true)] {
                let mine: Vec<AlarmMessage> = list
                    .iter()
                    .filter(|m| m.hooks.contains(&hook.id))
                    .map(|m| (*m).clone())
                    .collect();
                match hooks::deliveries(hook, &mine, recovery, now_ms) {
                    Ok(deliveries) => deliveries.into_iter().for_each(|d| dispatcher.submit(d)),
                    Err(error) => {
                        tracing::warn!(hook = %hook.id, %error, "alarm hook payload not built");
                        self.telemetry
                            .counter(
                                ALARM_HOOK_FAILURES_TOTAL,
                                &[("hook", hook.kind.type_name()), ("reason", "template")],
                            )
                            .inc();
                    }
                }
            }
        }
    }
}

/// The `period` minute buckets ending with `end`.
fn window(end: TimeBucket, period: u32) -> Vec<TimeBucket> {
    let Ok(end_ms) = end.start_epoch_ms() else {
        return vec![end];
    };
    let start_ms = end_ms - (i64::from(period) - 1) * 60_000;
    match TimeBucket::from_epoch_ms(start_ms, Step::Minute) {
        Ok(start) => start.range_to(end, period as usize),
        Err(_) => vec![end],
    }
}

/// OAP's `isMatch`: a SINGLE_VALUE result whose first value is 1, in any series when labeled.
fn is_match(outcome: &mqe::ExpressionOutcome, rule: &str) -> bool {
    if let Some(error) = &outcome.error {
        tracing::warn!(rule, %error, "alarm expression failed");
        return false;
    }
    if outcome.kind != ResultType::SingleValue {
        return false;
    }
    let first = |i: usize| {
        outcome
            .results
            .get(i)
            .and_then(|s| s.values.first())
            .and_then(|v| v.value)
    };
    if !outcome.labeled {
        return first(0).is_some_and(|v| v as i64 == 1);
    }
    (0..outcome.results.len()).any(|i| first(i).is_some_and(|v| v as i64 == 1))
}

/// Each metric's series in OAP's snapshot format: a JSON text of
/// `[{"metric":{"labels":[...]},"values":[{"id":"yyyyMMddHHmm","doubleValue":v,"isEmptyValue":b}]}]`.
fn snapshot(ctx: &MqeContext<'_>, rule: &AlarmRule) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for text in &rule.metric_texts {
        let outcome = mqe::execute(ctx, text);
        let series: Vec<serde_json::Value> = outcome
            .results
            .iter()
            .map(|s| {
                let labels: Vec<serde_json::Value> = s
                    .labels
                    .iter()
                    .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                    .collect();
                let values: Vec<serde_json::Value> = s
                    .values
                    .iter()
                    .map(|v| {
                        let id =
                            v.id.as_deref()
                                .and_then(|ms| ms.parse::<i64>().ok())
                                .and_then(|ms| TimeBucket::from_epoch_ms(ms, Step::Minute).ok())
                                .map(|b| b.value.to_string())
                                .or_else(|| v.id.clone())
                                .unwrap_or_default();
                        serde_json::json!({
                            "id": id,
                            "doubleValue": v.value.unwrap_or(0.0),
                            "isEmptyValue": v.value.is_none(),
                        })
                    })
                    .collect();
                serde_json::json!({"metric": {"labels": labels}, "values": values})
            })
            .collect();
        out.insert(
            text.clone(),
            serde_json::Value::String(serde_json::Value::Array(series).to_string()),
        );
    }
    out
}

fn record_of(m: &AlarmMessage, scope: Scope) -> AlarmRecord {
    AlarmRecord {
        uuid: m.uuid.clone(),
        scope,
        name: m.name.clone(),
        id0: m.id0.clone(),
        id1: m.id1.clone(),
        rule_name: m.rule_name.clone(),
        message: m.alarm_message.clone(),
        tags: m
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
        layers: m.layers.clone(),
        start_time_ms: m.start_time,
        recovery_time_ms: m.recovery_time,
        expression: m.expression.clone(),
        snapshot: m
            .mqe_metrics_snapshot
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
    }
}
