//! Hook payloads (the same bodies as OAP's callbacks) and their delivery: a bounded queue,
//! per-request timeouts, retries with backoff, and failure counters. Evaluation only ever
//! enqueues; a dead hook costs at most the queue's capacity in memory.
use crate::message::AlarmMessage;
use crate::settings::{DiscordWebhook, Hook, HookKind, WeLinkWebhook};
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
    /// A token to fetch before the call (WeLink), on every attempt.
    pub token: Option<TokenRequest>,
}

/// A POST whose JSON answer's `access_token` becomes a header of the call that follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Where the token is fetched.
    pub url: String,
    /// The JSON body.
    pub body: String,
    /// The header the token goes in.
    pub header: String,
}

/// Largest token answer read, in bytes; a token endpoint cannot make the sender buffer more.
const MAX_TOKEN_ANSWER_BYTES: usize = 64 * 1024;

/// Java's `String.format(template, message)` for a template with one `%s`: the first `%s`
/// takes the message and `%%` is a percent sign, in one pass so a message's own `%%` stays.
fn fill_text(template: &str, message: &str) -> String {
    let mut out = String::with_capacity(template.len() + message.len());
    let mut filled = false;
    let mut rest = template;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if after.starts_with('s') && !filled {
            out.push_str(message);
            filled = true;
            rest = &after[1..];
        } else if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            rest = tail;
        } else {
            out.push('%');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// [`fill_text`] for templates that are JSON text with `%s` inside a string (WeChat, DingTalk,
/// Feishu, Slack): the message is JSON-escaped. OAP inserts it raw, which breaks the body when
/// a message holds a quote.
fn fill(template: &str, message: &str) -> String {
    let quoted = serde_json::to_string(message).unwrap_or_default();
    let escaped = quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(message);
    fill_text(template, escaped)
}

/// PagerDuty's Events API v2 event, fields in OAP's order.
#[derive(serde::Serialize)]
struct PagerDutyEvent<'a> {
    payload: PagerDutyPayload,
    routing_key: &'a str,
    dedup_key: String,
    event_action: &'static str,
}

#[derive(serde::Serialize)]
struct PagerDutyPayload {
    summary: String,
    severity: &'static str,
    source: &'static str,
}

/// OAP's PagerDuty body: a `trigger` event (recoveries too, with their own template) whose
/// dedup key is new for every call, so each alarm opens its own incident.
fn pagerduty_body(summary: String, integration_key: &str) -> Result<String, String> {
    serde_json::to_string(&PagerDutyEvent {
        payload: PagerDutyPayload {
            summary,
            severity: "warning",
            source: "Skywalking",
        },
        routing_key: integration_key,
        dedup_key: uuid::Uuid::new_v4().to_string(),
        event_action: "trigger",
    })
    .map_err(|e| e.to_string())
}

#[derive(serde::Serialize)]
struct DiscordMessage<'a> {
    username: &'a str,
    content: String,
}

fn discord_body(webhook: &DiscordWebhook, content: String) -> Result<String, String> {
    serde_json::to_string(&DiscordMessage {
        username: &webhook.username,
        content,
    })
    .map_err(|e| e.to_string())
}

/// WeLink's group-chat message, fields in OAP's order.
#[derive(serde::Serialize)]
struct WeLinkMessage<'a> {
    app_service_info: WeLinkApp<'a>,
    app_msg_id: String,
    group_id: Vec<&'a str>,
    content: String,
    content_type: i32,
    client_app_id: &'static str,
}

#[derive(serde::Serialize)]
struct WeLinkApp<'a> {
    app_service_id: &'static str,
    app_service_name: &'a str,
}

#[derive(serde::Serialize)]
struct WeLinkTicket<'a> {
    client_id: &'a str,
    client_secret: &'a str,
}

/// OAP's WeLink body: the text twice in WeLink's escaped `imbody` markup (as HTML and as
/// plain content), posted to every group listed.
fn welink_body(webhook: &WeLinkWebhook, text: &str) -> Result<String, String> {
    let content = format!(
        "<r><n></n><g>0</g><c>&lt;imbody&gt;&lt;imagelist/&gt;&lt;html&gt;&lt;![CDATA[&lt;DIV&gt;{text}&lt;/DIV&gt;]]&gt;&lt;/html&gt;&lt;content&gt;&lt;![CDATA[{text}]]&gt;&lt;/content&gt;&lt;/imbody&gt;</c></r>"
    );
    serde_json::to_string(&WeLinkMessage {
        app_service_info: WeLinkApp {
            app_service_id: "1",
            app_service_name: &webhook.robot_name,
        },
        app_msg_id: uuid::Uuid::new_v4().to_string(),
        // Java's `split(",")`: no trimming, trailing empty parts dropped.
        group_id: {
            let mut ids: Vec<&str> = webhook.group_ids.split(',').collect();
            while ids.last().is_some_and(|s| s.is_empty()) {
                ids.pop();
            }
            ids
        },
        content,
        content_type: 0,
        client_app_id: "1",
    })
    .map_err(|e| e.to_string())
}

/// The access-token call before a WeLink message. OAP formats the id and secret into the
/// JSON unquoted, which only its own lenient parser accepts; here they are JSON strings.
fn welink_token(webhook: &WeLinkWebhook) -> Result<TokenRequest, String> {
    Ok(TokenRequest {
        url: webhook.access_token_url.clone(),
        body: serde_json::to_string(&WeLinkTicket {
            client_id: &webhook.client_id,
            client_secret: &webhook.client_secret,
        })
        .map_err(|e| e.to_string())?,
        header: "x-wlk-Authorization".into(),
    })
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
        token: None,
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
        HookKind::WeLink {
            text_template,
            recovery_text_template,
            webhooks,
        } => {
            let template = pick(text_template, recovery_text_template);
            if template.trim().is_empty() {
                return Ok(out);
            }
            for w in webhooks {
                let token = welink_token(w)?;
                for m in messages {
                    let body = welink_body(w, &fill_text(&template, &m.alarm_message))?;
                    out.push(Delivery {
                        token: Some(token.clone()),
                        ..delivery(w.message_url.clone(), body)
                    });
                }
            }
        }
        HookKind::PagerDuty {
            text_template,
            recovery_text_template,
            events_api_url,
            integration_keys,
        } => {
            let template = pick(text_template, recovery_text_template);
            if template.trim().is_empty() {
                return Ok(out);
            }
            for key in integration_keys {
                for m in messages {
                    let body = pagerduty_body(fill_text(&template, &m.alarm_message), key)?;
                    out.push(delivery(events_api_url.clone(), body));
                }
            }
        }
        HookKind::Discord {
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
                    let body = discord_body(w, fill_text(&template, &m.alarm_message))?;
                    out.push(delivery(w.url.clone(), body));
                }
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

/// Fetches a token: a 2xx answer whose JSON has a string `access_token`, read up to
/// [`MAX_TOKEN_ANSWER_BYTES`]. OAP sends the message with an empty token when there is none;
/// here that attempt fails (reason `token`), since the message would be refused anyway.
async fn fetch_token(client: &reqwest::Client, t: &TokenRequest) -> Result<String, String> {
    let mut answer = client
        .post(&t.url)
        .header("Content-Type", "application/json")
        .body(t.body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !answer.status().is_success() {
        return Err(format!("status {}", answer.status().as_u16()));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > MAX_TOKEN_ANSWER_BYTES {
            return Err(format!("answer larger than {MAX_TOKEN_ANSWER_BYTES} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("answer is not JSON: {e}"))?;
    match json.get("access_token").and_then(|v| v.as_str()) {
        Some(token) if !token.is_empty() => Ok(token.to_string()),
        _ => Err("answer has no access_token".into()),
    }
}

/// One attempt; `Err` holds the failure reason (a metric label).
async fn attempt(client: &reqwest::Client, d: &Delivery, attempt: u32) -> Result<(), &'static str> {
    let mut request = client
        .post(&d.url)
        .header("Content-Type", "application/json")
        .body(d.body.clone());
    for (k, v) in &d.headers {
        request = request.header(k, v);
    }
    if let Some(t) = &d.token {
        match fetch_token(client, t).await {
            Ok(token) => request = request.header(&t.header, token),
            Err(error) => {
                tracing::warn!(hook = d.hook, url = %t.url, attempt, %error, "alarm hook access token not fetched");
                return Err("token");
            }
        }
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            tracing::warn!(hook = d.hook, url = %d.url, status = r.status().as_u16(), attempt, "alarm hook answered an error");
            Err("status")
        }
        Err(e) if e.is_timeout() => {
            tracing::warn!(hook = d.hook, url = %d.url, attempt, "alarm hook timed out");
            Err("timeout")
        }
        Err(e) => {
            tracing::warn!(hook = d.hook, url = %d.url, attempt, error = %e, "alarm hook unreachable");
            Err("connect")
        }
    }
}

async fn send(client: &reqwest::Client, d: &Delivery, config: &DeliveryConfig, t: &Telemetry) {
    let attempts = config.max_attempts.max(1);
    for n in 1..=attempts {
        let Err(reason) = attempt(client, d, n).await else {
            t.counter(
                ALARM_HOOK_DELIVERIES_TOTAL,
                &[("hook", d.hook), ("outcome", "ok")],
            )
            .inc();
            return;
        };
        t.counter(
            ALARM_HOOK_FAILURES_TOTAL,
            &[("hook", d.hook), ("reason", reason)],
        )
        .inc();
        if n < attempts {
            let factor = 2u32.saturating_pow(n - 1);
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

    #[test]
    fn text_templates_follow_java_format() {
        assert_eq!(
            fill_text("100%% sure: %s.", "50%% off"),
            "100% sure: 50%% off."
        );
        assert_eq!(fill_text("%s and %s", "a"), "a and %s");
        assert_eq!(fill_text("trailing %", "a"), "trailing %");
    }
}
