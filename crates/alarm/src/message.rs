//! The alarm messages hooks receive: OAP's `AlarmMessage`/`AlarmRecoveryMessage` as Gson
//! serializes them (null fields left out).
use serde::Serialize;

/// A `{key, value}` tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Tag {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// One alarm (or its recovery) as webhooks receive it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmMessage {
    /// Set only on recovery messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_time: Option<i64>,
    /// OAP's scope id (1 service, 2 instance, 3 endpoint).
    pub scope_id: i32,
    /// OAP's scope name (`SERVICE`, `SERVICE_INSTANCE`, `ENDPOINT`).
    pub scope: String,
    /// Entity name.
    pub name: String,
    /// Entity id.
    pub id0: String,
    /// Destination id for relations, else empty.
    pub id1: String,
    /// The rule.
    pub rule_name: String,
    /// The formatted message.
    pub alarm_message: String,
    /// The rule's tags.
    pub tags: Vec<Tag>,
    /// When it fired, epoch ms.
    pub start_time: i64,
    /// Hook ids notified.
    pub hooks: Vec<String>,
    /// The rule's expression.
    pub expression: String,
    /// Metric values the expression saw, by metric as written (JSON text, as OAP).
    pub mqe_metrics_snapshot: serde_json::Map<String, serde_json::Value>,
    /// Shared by the firing and the recovery message.
    pub uuid: String,
    /// Layers of the entity.
    pub layers: Vec<String>,
}

impl AlarmMessage {
    /// The recovery of this alarm at `now_ms`.
    pub fn recovered(&self, now_ms: i64) -> AlarmMessage {
        AlarmMessage {
            recovery_time: Some(now_ms),
            ..self.clone()
        }
    }
}
