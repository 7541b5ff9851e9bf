//! Each hook kind's HTTP calls for a fixed time and secret, against bodies and signatures
//! worked out independently (Python's hmac/hashlib/base64 for the signatures).
use skylark_alarm::{deliveries, AlarmMessage, Hook, HookKind, SignedUrl, Tag};

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
