//! Hook payloads (the same bodies as OAP's callbacks) and their delivery: a bounded queue,
//! per-request timeouts, retries with backoff, and failure counters. Evaluation only ever
//! enqueues; a dead hook costs at most the queue's capacity in memory.
use crate::message::AlarmMessage;
use crate::settings::{Hook, HookKind};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use skylark_core::telemetry::{Telemetry, ALARM_HOOK_DELIVERIES_TOTAL, ALARM_HOOK_FAILURES_TOTAL};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// One HTTP call to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The hook type (metric label).
    pub hook: &'static str,
    /// Where.
    pub url: String,
    /// The JSON body.
    pub body: String,
    /// Extra headers (webhook `headers`).
    pub headers: Vec<(String, String)>,
}

/// Java's `String.format(template, message)` for a template with one `%s`. The message is
/// JSON-escaped because every shipped template is JSON text with `%s` inside a string; OAP
/// inserts it raw, which breaks the body when a message holds a quote.
fn fill(template: &str, message: &str) -> String {
    let quoted = serde_json::to_string(message).unwrap_or_default();
    let escaped = quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(message);
    template.replacen("%s", escaped, 1).replace("%%", "%")
}

/// Java's `URLEncoder.encode(s, UTF_8)`: form encoding, space as `+`.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn hmac_sha256_base64(key: &[u8], data: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(data);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// DingTalk's signed URL: `url&timestamp=ms&sign=urlencode(base64(HmacSHA256(secret, "ms\nsecret")))`.
pub fn dingtalk_signed_url(url: &str, secret: &str, now_ms: i64) -> String {
    if secret.is_empty() {
        return url.to_string();
    }
    let sign = hmac_sha256_base64(secret.as_bytes(), format!("{now_ms}\n{secret}").as_bytes());
    format!("{url}&timestamp={now_ms}&sign={}", form_encode(&sign))
}

/// Feishu's signature: `base64(HmacSHA256(key = "seconds\nsecret", data = empty))`.
pub fn feishu_sign(secret: &str, now_seconds: i64) -> String {
    hmac_sha256_base64(format!("{now_seconds}\n{secret}").as_bytes(), b"")
}

/// The Feishu body: the filled template's `msg_type` and `content` (with `ats` appended to the
/// text as `<at user_id="..."></at>`), plus `timestamp` and `sign` when the robot has a secret.
fn feishu_body(filled: &str, secret: &str, now_ms: i64) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(filled).map_err(|e| format!("feishu template is not JSON: {e}"))?;
    let mut content = v
        .get("content")
        .and_then(|c| c.as_object())
        .cloned()
        .ok_or("feishu template has no `content` object")?;
    if let Some(ats) = v.get("ats").and_then(|a| a.as_str()) {
        let mut text = content
            .get("text")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_string();
        for user in ats.split(',').map(str::trim) {
            text.push_str(&format!("<at user_id=\"{user}\"></at>"));
        }
        content.insert("text".into(), serde_json::Value::String(text));
    }
    let mut body = serde_json::Map::new();
    body.insert(
        "msg_type".into(),
        v.get("msg_type")
            .cloned()
            .unwrap_or(serde_json::Value::String("text".into())),
    );
    body.insert("content".into(), serde_json::Value::Object(content));
    if !secret.is_empty() {
        let seconds = now_ms.div_euclid(1000);
        body.insert("timestamp".into(), seconds.into());
        body.insert("sign".into(), feishu_sign(secret, seconds).into());
    }
    serde_json::to_string(&body).map_err(|e| e.to_string())
}

/// Every HTTP call `hook` makes for `messages` (all firing, or all recoveries), as OAP's
/// callbacks build them. A template that does not yield JSON is reported, not sent.
pub fn deliveries(
    hook: &Hook,
    messages: &[AlarmMessage],
    recovery: bool,
    now_ms: i64,
) -> Result<Vec<Delivery>, String> {
    let mut out = Vec::new();
    if messages.is_empty() {
        return Ok(out);
    }
    let name = hook.kind.type_name();
    let delivery = |url: String, body: String| Delivery {
        hook: name,
        url,
        body,
        headers: Vec::new(),
    };
    let pick = |t: &str, r: &str| {
        if recovery {
            r.to_string()
        } else {
            t.to_string()
        }
    };
    match &hook.kind {
        HookKind::Webhook {
            urls,
            recovery_urls,
            headers,
        } => {
            let body = serde_json::to_string(messages).map_err(|e| e.to_string())?;
            for url in if recovery { recovery_urls } else { urls } {
                out.push(Delivery {
                    headers: headers.clone(),
                    ..delivery(url.clone(), body.clone())
                });
            }
        }
        HookKind::Wechat {
            text_template,
            recovery_text_template,
            webhooks,
        } => {
            let template = pick(text_template, recovery_text_template);
            if template.trim().is_empty() {
                return Ok(out);
            }
            for url in webhooks {
                for m in messages {
                    out.push(delivery(url.clone(), fill(&template, &m.alarm_message)));
                }
            }
        }
        HookKind::Dingtalk {
            text_template,
            recovery_text_template,
            webhooks,
        } => {
            let template = pick(text_template, recovery_text_template);
            if template.trim().is_empty() {
                return Ok(out);
            }
            for w in webhooks {
                let url = dingtalk_signed_url(&w.url, &w.secret, now_ms);
                for m in messages {
                    out.push(delivery(url.clone(), fill(&template, &m.alarm_message)));
                }
            }
        }
        HookKind::Feishu {
            text_template,
            recovery_text_template,
            webhooks,
        } => {
            let template = pick(text_template, recovery_text_template);
            if template.trim().is_empty() {
                return Ok(out);
            }
            for w in webhooks {
                for m in messages {
                    let body = feishu_body(&fill(&template, &m.alarm_message), &w.secret, now_ms)?;
                    out.push(delivery(w.url.clone(), body));
                }
            }
        }
        HookKind::Slack {
            text_template,
            recovery_text_template,
            webhooks,
        } => {
            let template = pick(text_template, recovery_text_template);
            if template.trim().is_empty() {
                return Ok(out);
            }
            let mut blocks = Vec::new();
            for m in messages {
                let block: serde_json::Value =
                    serde_json::from_str(&fill(&template, &m.alarm_message))
                        .map_err(|e| format!("slack template is not JSON: {e}"))?;
                blocks.push(block);
            }
            let body = serde_json::json!({ "blocks": blocks }).to_string();
            for url in webhooks {
                out.push(delivery(url.clone(), body.clone()));
            }
        }
    }
    Ok(out)
}

/// How deliveries are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Deliveries waiting at most; more are dropped (and counted).
    pub queue_capacity: usize,
    /// Calls in flight at most.
    pub concurrency: usize,
    /// One attempt's timeout (OAP: 12 s).
    pub timeout: Duration,
    /// Attempts per delivery, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            queue_capacity: 1000,
            concurrency: 8,
            timeout: Duration::from_secs(12),
            max_attempts: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

/// Hands deliveries to a background sender without waiting.
#[derive(Clone)]
pub struct Dispatcher {
    tx: mpsc::Sender<Delivery>,
    telemetry: Arc<Telemetry>,
}

impl Dispatcher {
    /// Starts the sender on the current tokio runtime; it stops when every `Dispatcher` clone
    /// is dropped and the queue is drained.
    pub fn start(config: DeliveryConfig, telemetry: Arc<Telemetry>) -> Dispatcher {
        let (tx, mut rx) = mpsc::channel::<Delivery>(config.queue_capacity.max(1));
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .unwrap_or_default();
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        let t = telemetry.clone();
        tokio::spawn(async move {
            loop {
                // A slot first, so waiting deliveries stay in the bounded queue.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let Some(delivery) = rx.recv().await else {
                    break;
                };
                let (client, t) = (client.clone(), t.clone());
                tokio::spawn(async move {
                    send(&client, &delivery, &config, &t).await;
                    drop(slot);
                });
            }
        });
        Dispatcher { tx, telemetry }
    }

    /// Queues a delivery; when the queue is full it is dropped and counted, never waited for.
    pub fn submit(&self, delivery: Delivery) {
        let hook = delivery.hook;
        if let Err(e) = self.tx.try_send(delivery) {
            let reason = match e {
                mpsc::error::TrySendError::Full(_) => "queue_full",
                mpsc::error::TrySendError::Closed(_) => "stopped",
            };
            tracing::warn!(hook, reason, "alarm hook delivery dropped");
            self.telemetry
                .counter(
                    ALARM_HOOK_FAILURES_TOTAL,
                    &[("hook", hook), ("reason", reason)],
                )
                .inc();
            self.telemetry
                .counter(
                    ALARM_HOOK_DELIVERIES_TOTAL,
                    &[("hook", hook), ("outcome", "dropped")],
                )
                .inc();
        }
    }
}

async fn send(client: &reqwest::Client, d: &Delivery, config: &DeliveryConfig, t: &Telemetry) {
    let attempts = config.max_attempts.max(1);
    for attempt in 1..=attempts {
        let mut request = client
            .post(&d.url)
            .header("Content-Type", "application/json")
            .body(d.body.clone());
        for (k, v) in &d.headers {
            request = request.header(k, v);
        }
        let reason = match request.send().await {
            Ok(r) if r.status().is_success() => {
                t.counter(
                    ALARM_HOOK_DELIVERIES_TOTAL,
                    &[("hook", d.hook), ("outcome", "ok")],
                )
                .inc();
                return;
            }
            Ok(r) => {
                tracing::warn!(hook = d.hook, url = %d.url, status = r.status().as_u16(), attempt, "alarm hook answered an error");
                "status"
            }
            Err(e) if e.is_timeout() => {
                tracing::warn!(hook = d.hook, url = %d.url, attempt, "alarm hook timed out");
                "timeout"
            }
            Err(e) => {
                tracing::warn!(hook = d.hook, url = %d.url, attempt, error = %e, "alarm hook unreachable");
                "connect"
            }
        };
        t.counter(
            ALARM_HOOK_FAILURES_TOTAL,
            &[("hook", d.hook), ("reason", reason)],
        )
        .inc();
        if attempt < attempts {
            let factor = 2u32.saturating_pow(attempt - 1);
            tokio::time::sleep(config.backoff.saturating_mul(factor)).await;
        }
    }
    t.counter(
        ALARM_HOOK_DELIVERIES_TOTAL,
        &[("hook", d.hook), ("outcome", "failed")],
    )
    .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_matches_java_url_encoder() {
        assert_eq!(form_encode("a+b/c=d e*_.-"), "a%2Bb%2Fc%3Dd+e*_.-");
    }

    #[test]
    fn templates_take_the_message_json_escaped() {
        assert_eq!(
            fill("{\"text\":\"Alarm: \\n %s.\"}", "p95 \"slow\""),
            "{\"text\":\"Alarm: \\n p95 \\\"slow\\\".\"}"
        );
    }
}
