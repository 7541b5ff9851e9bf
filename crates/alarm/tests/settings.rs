//! alarm-settings.yml: the shipped file, OAP's own files, and bad input with file:line errors.
use skylark_alarm::{parse, HookKind, MessageFormat};
use skylark_core::{MetricCatalog, MetricDefinition, MetricFunction, Scope};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn def(name: &str, scope: Scope, function: MetricFunction) -> MetricDefinition {
    MetricDefinition {
        name: name.into(),
        scope,
        function,
        percentile_ranks: if function == MetricFunction::SumHistogramPercentile {
            vec![50, 75, 90, 95, 99]
        } else {
            Vec::new()
        },
    }
}

/// OAP's metric names used by its e2e and example settings.
fn oap_catalog() -> MetricCatalog {
    let c = MetricCatalog::new();
    for d in [
        def("service_resp_time", Scope::Service, MetricFunction::Avg),
        def("service_sla", Scope::Service, MetricFunction::Avg),
        def(
            "service_percentile",
            Scope::Service,
            MetricFunction::SumHistogramPercentile,
        ),
        def("endpoint_sla", Scope::Endpoint, MetricFunction::Avg),
        def(
            "service_instance_resp_time",
            Scope::ServiceInstance,
            MetricFunction::Avg,
        ),
        def("endpoint_resp_time", Scope::Endpoint, MetricFunction::Avg),
    ] {
        c.register(d).unwrap();
    }
    c
}

/// The catalog the shipped MAL rules define.
fn shipped_catalog() -> MetricCatalog {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("otel-rules/miniprogram"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.extend(
        std::fs::read_dir(repo().join("config/log-mal-rules"))
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    files.sort();
    let rules = skylark_mal::RuleSet::load(&files).unwrap();
    let c = MetricCatalog::new();
    for d in rules.definitions() {
        c.register(d).unwrap();
    }
    c
}

#[test]
fn the_shipped_file_has_rules_for_both_layers() {
    let path = repo().join("config/alarm-settings.yml");
    let settings = skylark_alarm::load(&path, &shipped_catalog()).unwrap();
    assert!(settings.rules.len() >= 8, "{} rules", settings.rules.len());
    for layer in ["WECHAT_MINI_PROGRAM", "ALIPAY_MINI_PROGRAM"] {
        let n = settings
            .rules
            .iter()
            .filter(|r| r.tags.iter().any(|(k, v)| k == "layer" && v == layer))
            .count();
        assert!(n >= 4, "{layer}: {n} rules");
    }
    assert!(settings.rules.iter().all(|r| r.scope == Scope::Service));
    assert!(settings.hooks.is_empty(), "no hook is on by default");
}

fn oap_file(name: &str) -> Option<(PathBuf, String)> {
    let path = repo()
        .join("../shared/reference/skywalking/alarm")
        .join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some((path, text)),
        Err(_) => {
            eprintln!(
                "SKIPPED: {} is absent; this test needs ../shared",
                path.display()
            );
            None
        }
    }
}

#[test]
fn oap_e2e_settings_are_read_as_oap_reads_them() {
    let Some((path, text)) = oap_file("e2e-alarm-settings.yml") else {
        return;
    };
    let s = parse(&path, &text, &oap_catalog()).unwrap();
    let names: Vec<&str> = s.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "service_resp_time_rule",
            "service_percentile_rule",
            "comp_rule"
        ]
    );
    let comp = &s.rules[2];
    assert_eq!(comp.period, 5);
    assert_eq!(comp.silence_period, 5, "silence defaults to the period");
    assert_eq!(comp.recovery_observation_period, 3);
    assert_eq!(
        comp.hooks,
        ["webhook.default"],
        "no own hooks: the defaults"
    );
    assert_eq!(
        comp.tags,
        [
            ("level".to_string(), "CRITICAL".to_string()),
            ("receivers".to_string(), "zhangsan".to_string())
        ]
    );
    assert_eq!(s.rules[0].hooks, ["webhook.custom"]);
    assert_eq!(s.rules[0].silence_period, 1);
    assert_eq!(
        s.rules[1].metric_texts,
        ["service_percentile{p='50,75,90,95,99'}"]
    );
    match &s.hooks["webhook.default"].kind {
        HookKind::Webhook {
            urls,
            recovery_urls,
            ..
        } => {
            assert_eq!(urls, &["http://provider:9090/alarm/receive"]);
            assert_eq!(recovery_urls, &["http://provider:9090/alarm/receive"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(s.hooks["webhook.default"].is_default);
    assert!(!s.hooks["webhook.none"].is_default);
}

#[test]
fn oap_default_settings_keep_include_names_and_message_default() {
    let Some((path, text)) = oap_file("alarm-settings.default.yml") else {
        return;
    };
    let s = parse(&path, &text, &oap_catalog()).unwrap();
    let rule = &s.rules[0];
    assert!(rule.accepts("dubbox-provider"));
    assert!(!rule.accepts("other"));
    assert_eq!(
        rule.message.format("x", "id"),
        "Alarm caused by Rule service_resp_time_rule"
    );
}

fn error_of(text: &str) -> String {
    parse(Path::new("alarm-settings.yml"), text, &oap_catalog())
        .unwrap_err()
        .to_string()
}

#[test]
fn an_mqe_syntax_error_names_file_and_line() {
    let e = error_of(
        "rules:\n  a_rule:\n    period: 3\n    expression: sum(service_resp_time > ) >= 1\n",
    );
    assert!(
        e.starts_with("alarm-settings.yml:4: rule `a_rule`: expression"),
        "{e}"
    );
    assert!(e.contains("syntax error"), "{e}");
}

#[test]
fn an_unknown_metric_names_file_and_line() {
    let e = error_of("rules:\n  a_rule:\n    expression: sum(no_such_metric > 1) >= 1\n");
    assert_eq!(
        e,
        "alarm-settings.yml:3: rule `a_rule`: metric `no_such_metric` does not exist"
    );
}

#[test]
fn an_unknown_hook_names_file_and_line() {
    let text = "hooks:\n  webhook:\n    default:\n      urls: [http://127.0.0.1/a]\nrules:\n  a_rule:\n    expression: sum(service_sla > 1) >= 1\n    hooks:\n      - slack.custom1\n";
    let e = error_of(text);
    assert!(
        e.starts_with("alarm-settings.yml:8: rule `a_rule`: hook `slack.custom1` is not defined"),
        "{e}"
    );
    let e = error_of("hooks:\n  pigeon:\n    default: {}\n");
    assert!(
        e.starts_with("alarm-settings.yml:2: unknown hook type `pigeon`"),
        "{e}"
    );
}

#[test]
fn rules_oap_refuses_are_refused() {
    for (text, line, wanted) in [
        (
            "rules:\n  a:\n    expression: sum(service_sla > 1) >= 1\n",
            2,
            "must end with `_rule`",
        ),
        (
            "rules:\n  a_rule:\n    expression: avg(service_sla > 1) + 1\n",
            3,
            "root operation is not a Compare Operation",
        ),
        (
            "rules:\n  a_rule:\n    expression: service_sla > 1\n",
            3,
            "is not a SINGLE_VALUE result expression",
        ),
        (
            "rules:\n  a_rule:\n    expression: sum(service_sla > 1) + sum(endpoint_sla > 1) > 1\n",
            3,
            "must have the same scope level",
        ),
        (
            "rules:\n  a_rule:\n    expression: sum(service_sla > 1) >= 1\n    message: hi {who}\n",
            4,
            "var [who] in alarm message [hi {who}] is illegal",
        ),
        (
            "rules:\n  a_rule:\n    expression: sum(service_sla > 1) >= 1\n    period: 100000\n",
            4,
            "`period` must be a whole number of minutes from 0 to 1440",
        ),
        (
            "rules:\n  a_rule:\n    expression: sum(service_sla > 1) >= 1\n    include-names-regex: '('\n",
            4,
            "not a valid regex",
        ),
        (
            "rules:\n  a_rule:\n    expression: sum(service_sla > 1) >= 1\n    peroid: 3\n",
            4,
            "unknown field `peroid`",
        ),
        (
            "hooks:\n  webhook:\n    default:\n      urls: [ftp://x]\n",
            4,
            "is not an http(s) URL",
        ),
        (
            "rules:\n  a_rule:\n    expression: sum(increase(service_sla, 0) > 1) >= 1\n",
            3,
            "the trend range must be greater than 0",
        ),
        (
            "rules:\n  a_rule:\n    expression: sum(rate(service_sla, 100) > 1) >= 1\n    period: 1440\n",
            3,
            "period 1440 plus the trend range 100 is more than 1440 minutes",
        ),
        (
            "hooks:\n  gRPC:\n    default:\n      target-host: x\n",
            2,
            "hook type `gRPC` is not supported",
        ),
        (
            "hooks:\n  welink:\n    default:\n      webhooks:\n        - access-token-url: http://h/t\n          message-url: http://h/m\n",
            4,
            "a welink webhook needs `group-ids`",
        ),
        (
            "hooks:\n  discord:\n    default:\n      webhooks:\n        - url: discord\n",
            4,
            "`discord` is not an http(s) URL",
        ),
        (
            "hooks:\n  pagerduty:\n    default:\n      events-api-url: nowhere\n",
            4,
            "`nowhere` is not an http(s) URL",
        ),
    ] {
        let e = error_of(text);
        assert!(
            e.starts_with(&format!("alarm-settings.yml:{line}: ")) && e.contains(wanted),
            "{text}\n→ {e}"
        );
    }
}

#[test]
fn regexes_match_whole_names_as_java_does() {
    let s = parse(
        Path::new("a.yml"),
        "rules:\n  a_rule:\n    expression: sum(service_instance_resp_time > 1000) >= 2\n    include-names-regex: instance\\_\\d+\n",
        &oap_catalog(),
    );
    // `\_` is a Java-only escape; Rust's regex refuses it, so the error names the line.
    match s {
        Ok(s) => {
            assert!(s.rules[0].accepts("instance_12"));
            assert!(!s.rules[0].accepts("my instance_12"));
        }
        Err(e) => assert!(e.to_string().starts_with("a.yml:4: "), "{e}"),
    }
    let s = parse(
        Path::new("a.yml"),
        "rules:\n  a_rule:\n    expression: sum(service_instance_resp_time > 1000) >= 2\n    exclude-names-regex: 'canary-.*'\n",
        &oap_catalog(),
    )
    .unwrap();
    assert!(!s.rules[0].accepts("canary-1"));
    assert!(s.rules[0].accepts("prod-canary-1"));
}

#[test]
fn messages_replace_name_and_id_like_oap() {
    let f = MessageFormat::parse("Service {name} ({id}) is slow {").unwrap();
    assert_eq!(f.format("svc", "c3Zj.1"), "Service svc (c3Zj.1) is slow {");
}

/// The WeLink, PagerDuty and Discord sections of OAP's `backend-alarm.md`, as written there.
const OAP_DOC_HOOKS: &str = r#"hooks:
  welink:
    default:
      is-default: true
      text-template: "Apache SkyWalking Alarm: \n %s."
      recovery-text-template: "Apache SkyWalking Alarm Recovered: \n %s."
      webhooks:
      # you may find your own client_id and client_secret in your app, below are dummy, need to change.
      - client-id: "dummy_client_id"
        client-secret: dummy_secret_key
        access-token-url: https://open.welink.huaweicloud.com/api/auth/v2/tickets
        message-url: https://open.welink.huaweicloud.com/api/welinkim/v1/im-service/chat/group-chat
        # if you send to multi group at a time, separate group_ids with commas, e.g. "123xx","456xx"
        group-ids: "dummy_group_id"
        # make a name you like for the robot, it will display in group
        robot-name: robot
  pagerduty:
    default:
      is-default: true
      text-template: "Apache SkyWalking Alarm: \n %s."
      events-api-url: https://events.eu.pagerduty.com/v2/enqueue
      integration-keys:
      - dummy-integration-key
  discord:
    default:
      is-default: true
      text-template: "Apache SkyWalking Alarm: \n %s."
      recovery-text-template: "Apache SkyWalking Alarm Recovered: \n %s."
      webhooks:
      - url: https://discordapp.com/api/webhooks/1008166889777414645/8e0Am4Zb
"#;

#[test]
fn welink_pagerduty_and_discord_hooks_read_as_oap_documents_them() {
    let s = parse(Path::new("a.yml"), OAP_DOC_HOOKS, &oap_catalog()).unwrap();
    assert!(s.hooks.values().all(|h| h.is_default));
    match &s.hooks["welink.default"].kind {
        HookKind::WeLink {
            text_template,
            recovery_text_template,
            webhooks,
        } => {
            assert_eq!(text_template, "Apache SkyWalking Alarm: \n %s.");
            assert_eq!(
                recovery_text_template,
                "Apache SkyWalking Alarm Recovered: \n %s."
            );
            assert_eq!(webhooks.len(), 1);
            let w = &webhooks[0];
            assert_eq!(w.client_id, "dummy_client_id");
            assert_eq!(w.client_secret, "dummy_secret_key");
            assert_eq!(
                w.access_token_url,
                "https://open.welink.huaweicloud.com/api/auth/v2/tickets"
            );
            assert_eq!(w.group_ids, "dummy_group_id");
            assert_eq!(w.robot_name, "robot");
        }
        other => panic!("{other:?}"),
    }
    match &s.hooks["pagerduty.default"].kind {
        HookKind::PagerDuty {
            events_api_url,
            integration_keys,
            recovery_text_template,
            ..
        } => {
            assert_eq!(events_api_url, "https://events.eu.pagerduty.com/v2/enqueue");
            assert_eq!(integration_keys, &["dummy-integration-key"]);
            assert_eq!(
                recovery_text_template, "",
                "none written: no recovery is sent"
            );
        }
        other => panic!("{other:?}"),
    }
    match &s.hooks["discord.default"].kind {
        HookKind::Discord { webhooks, .. } => {
            assert_eq!(webhooks[0].username, "robot", "OAP's default name");
        }
        other => panic!("{other:?}"),
    }
}
