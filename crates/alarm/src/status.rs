//! OAP's alarm runtime status (`/status/alarm/...` on the admin port): the rules, the entities
//! each rule is checking, and one entity's window, countdowns and last alarm. The bodies are
//! OAP's `status` objects; the server wraps them in `{"oapInstances": [...]}`.
use crate::engine::{oap_scope, AlarmEngine, EntityState};
use crate::settings::AlarmRule;
use serde_json::{json, Value};

/// `yyyyMMddHHmm` → OAP's `LocalDateTime` text, `2025-11-19T15:20:00.000`.
fn end_time_text(bucket: i64) -> String {
    let s = bucket.to_string();
    if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return String::new();
    }
    format!(
        "{}-{}-{}T{}:{}:00.000",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[8..10],
        &s[10..12]
    )
}

/// The snapshot's non-empty values, placed by their position in the window (index 0 oldest).
fn window_values(rule: &AlarmRule, state: &EntityState) -> Vec<Value> {
    let size = (rule.period + rule.additional_period) as usize;
    let mut slots: Vec<Vec<Value>> = vec![Vec::new(); size];
    for (metric, text) in &state.snapshot {
        let Some(series) = text
            .as_str()
            .and_then(|t| serde_json::from_str::<Vec<Value>>(t).ok())
        else {
            continue;
        };
        for s in &series {
            let labels = s["metric"]["labels"].clone();
            let values = s["values"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            // The snapshot holds exactly the window's buckets, oldest first.
            let offset = size.saturating_sub(values.len());
            for (i, v) in values.iter().enumerate() {
                if v["isEmptyValue"].as_bool().unwrap_or(true) {
                    continue;
                }
                let Some(slot) = slots.get_mut(offset + i) else {
                    continue;
                };
                let mut entry = json!({
                    "name": metric,
                    "timeBucket": v["id"].as_str().and_then(|id| id.parse::<i64>().ok()),
                    "value": v["doubleValue"].as_f64().map(skylark_query::mqe::format_value),
                });
                if labels.as_array().is_some_and(|l| !l.is_empty()) {
                    entry["labels"] = labels.clone();
                }
                slot.push(entry);
            }
        }
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(index, metrics)| json!({"index": index, "metrics": metrics}))
        .collect()
}

impl AlarmEngine {
    /// `/status/alarm/rules`: `{"ruleList": [{"id": ...}]}`, in file order.
    pub fn rules_status(&self) -> Value {
        let list: Vec<Value> = self
            .settings()
            .rules
            .iter()
            .map(|r| json!({"id": r.name}))
            .collect();
        json!({ "ruleList": list })
    }

    /// `/status/alarm/rules/{ruleId}`: the rule's settings and the entities it is checking;
    /// `None` for an unknown rule.
    pub fn rule_status(&self, rule_id: &str) -> Option<Value> {
        let rule = self.settings().rules.iter().find(|r| r.name == rule_id)?;
        let running: Vec<Value> = self
            .states_of(rule_id)
            .iter()
            .map(|s| {
                json!({
                    "scope": oap_scope(s.entity.scope).1,
                    "name": s.entity.name,
                    "formattedMessage": rule.message.format(&s.entity.name, &s.entity.id0),
                })
            })
            .collect();
        let regex_text = |r: &Option<regex::Regex>| {
            r.as_ref()
                .map(|r| {
                    // Stored anchored for a whole-name match; shown as written.
                    let s = r.as_str();
                    s.strip_prefix("^(?:")
                        .and_then(|s| s.strip_suffix(")$"))
                        .unwrap_or(s)
                        .to_string()
                })
                .unwrap_or_default()
        };
        let mut metrics: Vec<&str> = rule.metrics.iter().map(|m| m.name.as_str()).collect();
        metrics.sort_unstable();
        Some(json!({
            "ruleId": rule.name,
            "expression": rule.expression,
            "period": rule.period,
            "silencePeriod": rule.silence_period,
            "recoveryObservationPeriod": rule.recovery_observation_period,
            "additionalPeriod": rule.additional_period,
            "includeEntityNames": rule.include_names,
            "excludeEntityNames": rule.exclude_names,
            "includeEntityNamesRegex": regex_text(&rule.include_names_regex),
            "excludeEntityNamesRegex": regex_text(&rule.exclude_names_regex),
            "runningEntities": running,
            "tags": rule.tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
            "hooks": rule.hooks,
            "includeMetrics": metrics,
        }))
    }

    /// `/status/alarm/{ruleId}/{entityName}`: the entity's window, countdowns and last alarm;
    /// an entity the rule is not checking gets OAP's empty context. `None` for an unknown rule.
    pub fn entity_status(&self, rule_id: &str, entity_name: &str) -> Option<Value> {
        let rule = self.settings().rules.iter().find(|r| r.name == rule_id)?;
        let Some(state) = self
            .states_of(rule_id)
            .into_iter()
            .find(|s| s.entity.name == entity_name)
        else {
            return Some(json!({
                "ruleId": rule.name,
                "expression": rule.expression,
                "additionalPeriod": 0,
                "size": 0,
                "silenceCountdown": 0,
                "recoveryObservationCountdown": 0,
                "windowValues": [],
                "lastAlarmTime": 0,
            }));
        };
        let m = &state.machine;
        let last = state.last_alarm.as_ref();
        Some(json!({
            "ruleId": rule.name,
            "expression": rule.expression,
            "endTime": end_time_text(state.end_bucket),
            "additionalPeriod": rule.additional_period,
            "size": rule.period + rule.additional_period,
            "silencePeriod": m.silence_period,
            "recoveryObservationPeriod": m.recovery_observation_period,
            "silenceCountdown": m.silence_countdown,
            "recoveryObservationCountdown": m.recovery_observation_countdown,
            "currentState": m.state.as_str(),
            "entityName": state.entity.name,
            "windowValues": window_values(rule, &state),
            "mqeMetricsSnapshot": state.snapshot,
            "lastAlarmTime": last.map_or(0, |a| a.start_time),
            "lastAlarmMessage": last.map(|a| a.alarm_message.clone()),
            "lastAlarmMqeMetricsSnapshot": last.map(|a| a.mqe_metrics_snapshot.clone()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_time_is_oaps_local_date_time_text() {
        assert_eq!(end_time_text(202511191520), "2025-11-19T15:20:00.000");
        assert_eq!(end_time_text(0), "");
    }
}
