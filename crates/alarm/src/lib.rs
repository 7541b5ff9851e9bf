//! Alarms as SkyWalking has them: `alarm-settings.yml` rules over MQE expressions, checked every
//! minute per entity with OAP's window, silence and recovery semantics, stored as alarm records
//! and sent to hooks (webhook, WeChat Work, DingTalk, Feishu, Slack, WeLink, PagerDuty,
//! Discord).
//!
//! Data flows one way: storage (metric rows) → [`AlarmEngine::tick`] (MQE over the window) →
//! storage (records, state) → [`Dispatcher`] (HTTP, off the evaluation path).
#![warn(missing_docs, unreachable_pub)]

mod engine;
mod error;
mod hooks;
mod message;
mod settings;
mod state;
mod status;

pub use engine::{oap_scope, AlarmEngine, AlarmEntity, Clock, EntityState, MAX_ENTITIES_PER_RULE};
pub use error::{Error, Result};
pub use hooks::{
    deliveries, dingtalk_signed_url, feishu_sign, Delivery, DeliveryConfig, Dispatcher,
    TokenRequest,
};
pub use message::{AlarmMessage, Tag};
pub use settings::{
    load, parse, AlarmRule, AlarmSettings, DiscordWebhook, Hook, HookKind, MessageFormat,
    SignedUrl, WeLinkWebhook, MAX_COUNTDOWN_MINUTES, MAX_PERIOD_MINUTES, MAX_RULES,
    MAX_SETTINGS_BYTES, PAGERDUTY_EVENTS_API_URL,
};
pub use state::{State, StateMachine};
