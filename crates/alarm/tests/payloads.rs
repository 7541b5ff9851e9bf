//! Each hook kind's HTTP calls for a fixed time and secret, against bodies and signatures
//! worked out independently (Python's hmac/hashlib/base64 for the signatures).
use skylark_alarm::{
    deliveries, AlarmMessage, DeliveryConfig, DiscordWebhook, Dispatcher, Hook, HookKind,
    SignedUrl, Tag, WeLinkWebhook,
};
use skylark_core::telemetry::Telemetry;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// 2023-11-14 22:13:20 UTC.
const NOW_MS: i64 = 1_700_000_000_000;
const SECRET: &str = "SECtest";

fn message(text: &str) -> AlarmMessage {
    AlarmMessage {
        recovery_time: None,
        scope_id: 1,
        scope: "SERVICE".into(),
        name: "mp".into(),
        id0: "bXA=.1".into(),
        id1: String::new(),
        rule_name: "a_rule".into(),
        alarm_message: text.into(),
        tags: vec![Tag {
            key: "level".into(),
            value: "WARNING".into(),
        }],
        start_time: 1_699_999_990_000,
        hooks: vec!["webhook.default".into()],
        expression: "sum(m > 1) >= 1".into(),
        mqe_metrics_snapshot: serde_json::Map::new(),
        uuid: "u-1".into(),
        layers: vec!["WECHAT_MINI_PROGRAM".into()],
    }
}

fn hook(kind: HookKind) -> Hook {
    Hook {
        id: format!("{}.default", kind.type_name()),
        is_default: true,
        kind,
    }
}

#[test]
fn webhook_posts_oap_json_list_with_headers_and_recovery_urls() {
    let h = hook(HookKind::Webhook {
        urls: vec!["http://127.0.0.1:1/a".into()],
        recovery_urls: vec!["http://127.0.0.1:1/r".into()],
        headers: vec![("Authorization".into(), "Bearer t".into())],
    });
    let d = deliveries(&h, &[message("slow")], false, NOW_MS).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].url, "http://127.0.0.1:1/a");
    assert_eq!(
        d[0].headers,
        [("Authorization".to_string(), "Bearer t".to_string())]
    );
    assert_eq!(
        d[0].body,
        r#"[{"scopeId":1,"scope":"SERVICE","name":"mp","id0":"bXA=.1","id1":"","ruleName":"a_rule","alarmMessage":"slow","tags":[{"key":"level","value":"WARNING"}],"startTime":1699999990000,"hooks":["webhook.default"],"expression":"sum(m > 1) >= 1","mqeMetricsSnapshot":{},"uuid":"u-1","layers":["WECHAT_MINI_PROGRAM"]}]"#
    );
    let recovered = message("slow").recovered(NOW_MS);
    let d = deliveries(&h, &[recovered], true, NOW_MS).unwrap();
    assert_eq!(d[0].url, "http://127.0.0.1:1/r");
    assert!(
        d[0].body
            .starts_with(r#"[{"recoveryTime":1700000000000,"scopeId":1,"#),
        "{}",
        d[0].body
    );
}

const WECHAT_TEMPLATE: &str =
    "{\n  \"msgtype\": \"text\",\n  \"text\": {\n    \"content\": \"Apache SkyWalking Alarm: \\n %s.\"\n  }\n}";

#[test]
fn wechat_posts_the_template_once_per_message() {
    let h = hook(HookKind::Wechat {
        text_template: WECHAT_TEMPLATE.into(),
        recovery_text_template: String::new(),
        webhooks: vec!["http://127.0.0.1:1/w?key=k".into()],
    });
    let d = deliveries(&h, &[message("a"), message("b")], false, NOW_MS).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(
        d[1].body,
        "{\n  \"msgtype\": \"text\",\n  \"text\": {\n    \"content\": \"Apache SkyWalking Alarm: \\n b.\"\n  }\n}"
    );
    // No recovery template: no recovery is sent, as in OAP.
    assert!(deliveries(&h, &[message("a")], true, NOW_MS)
        .unwrap()
        .is_empty());
}

#[test]
fn dingtalk_signs_the_url_with_timestamp_and_hmac() {
    let h = hook(HookKind::Dingtalk {
        text_template: WECHAT_TEMPLATE.into(),
        recovery_text_template: WECHAT_TEMPLATE.into(),
        webhooks: vec![
            SignedUrl {
                url: "http://127.0.0.1:1/robot/send?access_token=t".into(),
                secret: SECRET.into(),
            },
            SignedUrl {
                url: "http://127.0.0.1:1/robot/send?access_token=u".into(),
                secret: String::new(),
            },
        ],
    });
    let d = deliveries(&h, &[message("a")], false, NOW_MS).unwrap();
    // base64(HmacSHA256(key "SECtest", "1700000000000\nSECtest")), form-encoded.
    assert_eq!(
        d[0].url,
        "http://127.0.0.1:1/robot/send?access_token=t&timestamp=1700000000000&sign=aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D"
    );
    assert_eq!(d[1].url, "http://127.0.0.1:1/robot/send?access_token=u");
}

#[test]
fn feishu_signs_the_body_and_appends_ats() {
    let template =
        "{\"msg_type\": \"text\", \"ats\": \"u1, u2\", \"content\": {\"text\": \"Alarm: %s\"}}";
    let h = hook(HookKind::Feishu {
        text_template: template.into(),
        recovery_text_template: String::new(),
        webhooks: vec![SignedUrl {
            url: "http://127.0.0.1:1/hook/t".into(),
            secret: SECRET.into(),
        }],
    });
    let d = deliveries(&h, &[message("a")], false, NOW_MS).unwrap();
    let body: serde_json::Value = serde_json::from_str(&d[0].body).unwrap();
    // base64(HmacSHA256(key "1700000000\nSECtest", empty data)).
    assert_eq!(
        body,
        serde_json::json!({
            "msg_type": "text",
            "content": {"text": "Alarm: a<at user_id=\"u1\"></at><at user_id=\"u2\"></at>"},
            "timestamp": 1_700_000_000,
            "sign": "G7XpBpG8NgG02fJOAhX6FRAObIljmFoxVReo8I62pEk="
        })
    );
}

#[test]
fn slack_sends_one_blocks_list_per_url() {
    let template = "{\"type\": \"section\", \"text\": {\"type\": \"mrkdwn\", \"text\": \":alarm_clock: *Alarm* \\n **%s**.\"}}";
    let h = hook(HookKind::Slack {
        text_template: template.into(),
        recovery_text_template: String::new(),
        webhooks: vec!["http://127.0.0.1:1/s".into()],
    });
    let d = deliveries(&h, &[message("a"), message("b \"q\"")], false, NOW_MS).unwrap();
    assert_eq!(d.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&d[0].body).unwrap();
    assert_eq!(body["blocks"].as_array().unwrap().len(), 2);
    assert_eq!(
        body["blocks"][1]["text"]["text"],
        ":alarm_clock: *Alarm* \n **b \"q\"**."
    );
}

#[test]
fn a_template_that_is_not_json_is_reported() {
    let h = hook(HookKind::Slack {
        text_template: "not json %s".into(),
        recovery_text_template: String::new(),
        webhooks: vec!["http://127.0.0.1:1/s".into()],
    });
    let e = deliveries(&h, &[message("a")], false, NOW_MS).unwrap_err();
    assert!(e.contains("slack template is not JSON"), "{e}");
}

/// OAP's plain-text template for WeLink, PagerDuty and Discord (YAML's `"...\n..."`).
const TEXT_TEMPLATE: &str = "Apache SkyWalking Alarm: \n %s.";

/// `field`'s value, checked to be a fresh v4 UUID, and the body with it replaced by `UUID`.
fn with_uuid_masked(body: &str, field: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let id = v[field].as_str().unwrap().to_string();
    assert_eq!(
        uuid::Uuid::parse_str(&id).unwrap().get_version_num(),
        4,
        "{id}"
    );
    (id.clone(), body.replace(&id, "UUID"))
}

#[test]
fn pagerduty_triggers_one_event_per_key_and_message() {
    let h = hook(HookKind::PagerDuty {
        text_template: TEXT_TEMPLATE.into(),
        recovery_text_template: String::new(),
        events_api_url: "http://127.0.0.1:1/v2/enqueue".into(),
        integration_keys: vec!["key-1".into(), "key-2".into()],
    });
    let d = deliveries(&h, &[message("slow \"p95\"")], false, NOW_MS).unwrap();
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|d| d.url == "http://127.0.0.1:1/v2/enqueue"));
    let (first, body) = with_uuid_masked(&d[0].body, "dedup_key");
    assert_eq!(
        body,
        r#"{"payload":{"summary":"Apache SkyWalking Alarm: \n slow \"p95\".","severity":"warning","source":"Skywalking"},"routing_key":"key-1","dedup_key":"UUID","event_action":"trigger"}"#
    );
    let (second, body) = with_uuid_masked(&d[1].body, "dedup_key");
    assert!(body.contains(r#""routing_key":"key-2""#), "{body}");
    assert_ne!(
        first, second,
        "every event opens its own incident, as in OAP"
    );
    // No recovery template: no recovery is sent.
    assert!(deliveries(&h, &[message("a")], true, NOW_MS)
        .unwrap()
        .is_empty());
}

#[test]
fn pagerduty_defaults_to_the_us_events_endpoint() {
    let catalog = skylark_core::MetricCatalog::new();
    let s = skylark_alarm::parse(
        std::path::Path::new("a.yml"),
        "hooks:\n  pagerduty:\n    default:\n      text-template: \"Alarm: %s\"\n      integration-keys: [k]\n",
        &catalog,
    )
    .unwrap();
    let d = deliveries(
        &s.hooks["pagerduty.default"],
        &[message("a")],
        false,
        NOW_MS,
    )
    .unwrap();
    assert_eq!(d[0].url, "https://events.pagerduty.com/v2/enqueue");
}

#[test]
fn discord_posts_username_and_content_per_message() {
    let h = hook(HookKind::Discord {
        text_template: TEXT_TEMPLATE.into(),
        recovery_text_template: "Recovered: %s".into(),
        webhooks: vec![DiscordWebhook {
            url: "http://127.0.0.1:1/api/webhooks/1/t".into(),
            username: "robot".into(),
        }],
    });
    let d = deliveries(&h, &[message("a"), message("b")], false, NOW_MS).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].url, "http://127.0.0.1:1/api/webhooks/1/t");
    assert_eq!(
        d[1].body,
        r#"{"username":"robot","content":"Apache SkyWalking Alarm: \n b."}"#
    );
    let d = deliveries(&h, &[message("a").recovered(NOW_MS)], true, NOW_MS).unwrap();
    assert_eq!(
        d[0].body,
        r#"{"username":"robot","content":"Recovered: a"}"#
    );
}

fn welink(base: &str) -> Hook {
    hook(HookKind::WeLink {
        text_template: TEXT_TEMPLATE.into(),
        recovery_text_template: String::new(),
        webhooks: vec![WeLinkWebhook {
            client_id: "cid".into(),
            client_secret: "s\"cret".into(),
            access_token_url: format!("{base}/api/auth/v2/tickets"),
            message_url: format!("{base}/api/welinkim/v1/im-service/chat/group-chat"),
            group_ids: "g1,g2".into(),
            robot_name: "robot".into(),
        }],
    })
}

#[test]
fn welink_fetches_a_token_then_posts_the_imbody_to_every_group() {
    let d = deliveries(
        &welink("http://127.0.0.1:1"),
        &[message("slow")],
        false,
        NOW_MS,
    )
    .unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].url,
        "http://127.0.0.1:1/api/welinkim/v1/im-service/chat/group-chat"
    );
    let token = d[0].token.as_ref().unwrap();
    assert_eq!(token.url, "http://127.0.0.1:1/api/auth/v2/tickets");
    assert_eq!(token.header, "x-wlk-Authorization");
    assert_eq!(
        token.body,
        r#"{"client_id":"cid","client_secret":"s\"cret"}"#
    );
    let (_, body) = with_uuid_masked(&d[0].body, "app_msg_id");
    assert_eq!(
        body,
        r#"{"app_service_info":{"app_service_id":"1","app_service_name":"robot"},"app_msg_id":"UUID","group_id":["g1","g2"],"content":"<r><n></n><g>0</g><c>&lt;imbody&gt;&lt;imagelist/&gt;&lt;html&gt;&lt;![CDATA[&lt;DIV&gt;Apache SkyWalking Alarm: \n slow.&lt;/DIV&gt;]]&gt;&lt;/html&gt;&lt;content&gt;&lt;![CDATA[Apache SkyWalking Alarm: \n slow.]]&gt;&lt;/content&gt;&lt;/imbody&gt;</c></r>","content_type":0,"client_app_id":"1"}"#
    );
}

type Seen = Arc<Mutex<Vec<(String, Option<String>, String)>>>;

/// A loopback WeLink: the ticket endpoint answers `ticket_answer`; the chat endpoint records
/// the path, the `x-wlk-Authorization` header and the body.
async fn welink_server(ticket_answer: &'static str) -> (String, Seen) {
    use axum::routing::post;
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new()
        .route(
            "/api/auth/v2/tickets",
            post(move || async move { ticket_answer }),
        )
        .route(
            "/api/welinkim/v1/im-service/chat/group-chat",
            post(
                move |headers: axum::http::HeaderMap, body: String| async move {
                    let token = headers
                        .get("x-wlk-Authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    record.lock().unwrap().push(("chat".into(), token, body));
                    "{}"
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://127.0.0.1:{port}"), seen)
}

async fn wait_for_metric(telemetry: &Telemetry, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = telemetry.render();
        if text.contains(line) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welink_message_carries_the_fetched_token() {
    let (base, seen) = welink_server(r#"{"access_token":"tok-1","expires_in":7200}"#).await;
    let telemetry = Arc::new(Telemetry::new());
    let dispatcher = Dispatcher::start(DeliveryConfig::default(), telemetry.clone());
    for d in deliveries(&welink(&base), &[message("slow")], false, NOW_MS).unwrap() {
        dispatcher.submit(d);
    }
    let ok = "skylark_alarm_hook_deliveries_total{hook=\"welink\",outcome=\"ok\"} 1";
    let text = wait_for_metric(&telemetry, ok).await;
    assert!(text.contains(ok), "{text}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1.as_deref(), Some("tok-1"));
    assert!(seen[0].2.contains("slow"), "{}", seen[0].2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welink_without_a_token_sends_nothing_and_counts_it() {
    let (base, seen) = welink_server(r#"{"error":"bad client"}"#).await;
    let telemetry = Arc::new(Telemetry::new());
    let config = DeliveryConfig {
        max_attempts: 2,
        backoff: Duration::from_millis(10),
        ..DeliveryConfig::default()
    };
    let dispatcher = Dispatcher::start(config, telemetry.clone());
    for d in deliveries(&welink(&base), &[message("slow")], false, NOW_MS).unwrap() {
        dispatcher.submit(d);
    }
    let failed = "skylark_alarm_hook_deliveries_total{hook=\"welink\",outcome=\"failed\"} 1";
    let text = wait_for_metric(&telemetry, failed).await;
    assert!(text.contains(failed), "{text}");
    assert!(
        text.contains("skylark_alarm_hook_failures_total{hook=\"welink\",reason=\"token\"} 2"),
        "{text}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "no message without a token"
    );
}
