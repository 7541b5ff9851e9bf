//! The numbers a user reads (issue 14), end to end: the SDK fixtures are replayed over several
//! persists, and every expected value is computed here from the fixture bodies themselves:
//! calls per minute (service = sum of its pages), the success rate, hour and day percentiles and
//! averages from merged data, and log tags (one per pair, a `level` on every log).
mod common;

use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Persist often, so one minute's rows are written by many persists.
const PERSIST_MS: u64 = 150;
const RANKS: [u32; 5] = [50, 75, 90, 95, 99];

/// A bucket label the server uses for one step, in its (local) time zone.
fn bucket_of(ms: i64, step: &str) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms)
        .expect("time")
        .with_timezone(&chrono::Local);
    let fmt = match step {
        "MINUTE" => "%Y-%m-%d %H%M",
        "HOUR" => "%Y-%m-%d %H",
        _ => "%Y-%m-%d",
    };
    t.format(fmt).to_string()
}

/// What one aggregate (service or page) received in one bucket.
#[derive(Debug, Default, Clone)]
struct Calls {
    calls: i64,
    successes: i64,
    /// Bucket upper bound (ms, `i64::MAX` for +Inf) → count.
    buckets: BTreeMap<i64, i64>,
}

impl Calls {
    fn add(&mut self, other: &Calls) {
        self.calls += other.calls;
        self.successes += other.successes;
        for (b, c) in &other.buckets {
            *self.buckets.entry(*b).or_default() += c;
        }
    }
}

/// Everything expected of one platform, keyed by bucket label.
#[derive(Debug, Default)]
struct Expected {
    service: String,
    /// (step, bucket) → the service's calls.
    service_calls: BTreeMap<(String, String), Calls>,
    /// (step, bucket, page) → the page's calls.
    page_calls: BTreeMap<(String, String, String), Calls>,
    /// (step, bucket, instance) → the instance's calls (`service.instance.id`).
    instance_calls: BTreeMap<(String, String, String), Calls>,
    /// (step, bucket) → (Σ per-export averages, number of exports) of app_launch_duration.
    launch: BTreeMap<(String, String), (i64, i64)>,
}

/// OAP's value coercion (`≤0 → 0`, `(0,1) → 1`, else rounded half-up).
fn to_long(v: f64) -> i64 {
    if v <= 0.0 {
        0
    } else if v < 1.0 {
        1
    } else {
        v.round() as i64
    }
}

fn is_success(status: &str) -> bool {
    status.len() == 3 && matches!(status.as_bytes()[0], b'1'..=b'3')
}

/// OAP's percentile of bucket counts: the bound of the first bucket whose cumulative count
/// reaches `round(total * p / 100)`.
fn percentile(buckets: &BTreeMap<i64, i64>, p: u32) -> i64 {
    let total: i64 = buckets.values().sum();
    if total <= 0 {
        return 0;
    }
    let roof = ((total * i64::from(p)) as f32 / 100.0).round() as i64;
    let mut cumulative = 0;
    for (bound, count) in buckets {
        cumulative += count;
        if cumulative >= roof {
            return *bound;
        }
    }
    *buckets.keys().last().unwrap_or(&0)
}

fn decode_metrics(f: &Fixture, body: &[u8]) -> ExportMetricsServiceRequest {
    if f.encoding == "proto" {
        ExportMetricsServiceRequest::decode(body).expect("fixture protobuf")
    } else {
        serde_json::from_slice(body).expect("fixture json")
    }
}

/// Adds what one re-timed request contributes to `platform`'s expectations, as the shipped
/// rules aggregate it: per request, service and page sums land in the minute of their first
/// data point; app_launch_duration is averaged per request.
fn account(expected: &mut Expected, platform: &str, request: &ExportMetricsServiceRequest) {
    for rm in &request.resource_metrics {
        let resource = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.clone())
            .unwrap_or_default();
        if attr(&resource, "miniprogram.platform").as_deref() != Some(platform) {
            continue;
        }
        expected.service = attr(&resource, "service.name").unwrap_or_default();
        let instance = attr(&resource, "service.instance.id").unwrap_or_default();
        let mut service: Option<(i64, Calls)> = None;
        let mut pages: BTreeMap<String, (i64, Calls)> = BTreeMap::new();
        let mut launch: Option<(i64, f64, f64)> = None;
        for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            match (&m.name[..], &m.data) {
                ("miniprogram.request.duration", Some(Data::Histogram(h))) => {
                    for p in &h.data_points {
                        let ms = (p.time_unix_nano / 1_000_000) as i64;
                        let status =
                            attr(&p.attributes, "http.response.status_code").unwrap_or_default();
                        let page = attr(&p.attributes, "miniprogram.page.path").unwrap_or_default();
                        let mut point = Calls {
                            calls: p.count as i64,
                            successes: if is_success(&status) {
                                p.count as i64
                            } else {
                                0
                            },
                            ..Calls::default()
                        };
                        for (i, c) in p.bucket_counts.iter().enumerate() {
                            let bound = p
                                .explicit_bounds
                                .get(i)
                                .map(|b| *b as i64)
                                .unwrap_or(i64::MAX);
                            *point.buckets.entry(bound).or_default() += *c as i64;
                        }
                        service.get_or_insert((ms, Calls::default())).1.add(&point);
                        pages
                            .entry(page)
                            .or_insert((ms, Calls::default()))
                            .1
                            .add(&point);
                    }
                }
                ("miniprogram.app_launch.duration", Some(Data::Gauge(g))) => {
                    for p in &g.data_points {
                        use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as V;
                        let v = match p.value {
                            Some(V::AsDouble(d)) => d,
                            Some(V::AsInt(i)) => i as f64,
                            None => continue,
                        };
                        let ms = (p.time_unix_nano / 1_000_000) as i64;
                        let e = launch.get_or_insert((ms, 0.0, 0.0));
                        e.1 += v;
                        e.2 += 1.0;
                    }
                }
                _ => {}
            }
        }
        for step in ["MINUTE", "HOUR", "DAY"] {
            if let Some((ms, calls)) = &service {
                expected
                    .service_calls
                    .entry((step.into(), bucket_of(*ms, step)))
                    .or_default()
                    .add(calls);
                expected
                    .instance_calls
                    .entry((step.into(), bucket_of(*ms, step), instance.clone()))
                    .or_default()
                    .add(calls);
            }
            for (page, (ms, calls)) in &pages {
                expected
                    .page_calls
                    .entry((step.into(), bucket_of(*ms, step), page.clone()))
                    .or_default()
                    .add(calls);
            }
            if let Some((ms, sum, n)) = launch {
                let e = expected
                    .launch
                    .entry((step.into(), bucket_of(ms, step)))
                    .or_default();
                e.0 += to_long(sum / n);
                e.1 += 1;
            }
        }
    }
}

/// The values of one expression over one bucket, per `p` label (`""` when unlabeled).
async fn read(
    server: &Server,
    expression: &str,
    entity: Value,
    step: &str,
    bucket: &str,
) -> BTreeMap<String, Option<f64>> {
    let q = "query ($e: String!, $entity: Entity!, $d: Duration!) { r: execExpression(expression: $e, entity: $entity, duration: $d) { type error results { metric { labels { key value } } values { id value } } } }";
    let d = json!({"start": bucket, "end": bucket, "step": step});
    let reply = server
        .graphql(q, json!({"e": expression, "entity": entity, "d": d}))
        .await;
    assert!(
        reply.get("errors").is_none() && reply["data"]["r"]["error"].is_null(),
        "{expression}: {reply}"
    );
    let mut out = BTreeMap::new();
    for r in reply["data"]["r"]["results"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let p = r["metric"]["labels"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["key"] == "p"))
            .and_then(|l| l["value"].as_str())
            .unwrap_or_default()
            .to_string();
        let values = r["values"].as_array().cloned().unwrap_or_default();
        assert_eq!(values.len(), 1, "one bucket asked: {reply}");
        let v = values[0]["value"].as_str().and_then(|v| v.parse().ok());
        out.insert(p, v);
    }
    out
}

async fn read_one(
    server: &Server,
    expression: &str,
    entity: Value,
    step: &str,
    bucket: &str,
) -> Option<f64> {
    read(server, expression, entity, step, bucket)
        .await
        .remove("")
        .flatten()
}

/// The same percentile, allowing the overflow bucket to read as its own bound (`i64::MAX`) or
/// as the highest finite bound.
fn same_percentile(got: f64, want: i64, buckets: &BTreeMap<i64, i64>) -> bool {
    if got as i64 == want {
        return true;
    }
    let highest_finite = buckets.keys().filter(|b| **b != i64::MAX).max().copied();
    want == i64::MAX && Some(got as i64) == highest_finite
}

/// Successful persists so far (the sum over the counter's triggers).
async fn flushes(server: &Server) -> f64 {
    server
        .self_metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("skylark_storage_flushes_total{") && l.contains("outcome=\"ok\""))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test]
async fn calls_success_rate_and_rollups_are_computed_from_merged_data() {
    let Some(dir) = fixtures_dir() else { return };
    let persist = PERSIST_MS.to_string();
    let server = Server::start_with(&[("SW_CORE_PERSISTENT_PERIOD_MS", &persist)]).await;
    let bodies = fixtures(&dir, "/v1/metrics");
    assert!(!bodies.is_empty());

    // Two whole minutes in the past: the first takes every request with a failed call and half
    // of the others, the second only requests whose calls all succeeded.
    let now = chrono::Utc::now().timestamp();
    let first_minute = now - now % 60 - 180;
    let has_failure = |f: &Fixture| {
        let req = decode_metrics(f, &f.body);
        req.resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|s| &s.metrics)
            .filter(|m| m.name == "miniprogram.request.duration")
            .any(|m| match &m.data {
                Some(Data::Histogram(h)) => h.data_points.iter().any(|p| {
                    p.count > 0
                        && !is_success(
                            &attr(&p.attributes, "http.response.status_code").unwrap_or_default(),
                        )
                }),
                _ => false,
            })
    };
    let mut plan = Vec::new();
    let mut clean: BTreeMap<String, i64> = BTreeMap::new();
    for f in &bodies {
        let minute = if has_failure(f) {
            first_minute
        } else {
            let n = clean.entry(f.platform.clone()).or_default();
            *n += 1;
            first_minute + 60 * (*n % 2)
        };
        // Latest point 45 s into the minute; earlier points may fall in the minute before,
        // which the expectations follow from the re-timed bodies.
        let body = retime_metrics(f, i128::from(minute + 45) * 1_000_000_000);
        plan.push((f.clone(), body));
    }

    let mut expected: BTreeMap<&str, Expected> = BTreeMap::new();
    let flushes_before = flushes(&server).await;
    for (f, body) in &plan {
        for platform in ["wechat", "alipay"] {
            account(
                expected.entry(platform).or_default(),
                platform,
                &decode_metrics(f, body),
            );
        }
        let (status, text) = server
            .post("/v1/metrics", &f.content_type, body.clone())
            .await;
        assert_eq!(status, 200, "{}: {text}", f.file);
        // Let a persist run between requests, so rows of one minute are merged with stored ones.
        tokio::time::sleep(Duration::from_millis(PERSIST_MS * 2)).await;
    }
    tokio::time::sleep(Duration::from_millis(PERSIST_MS * 3)).await;
    let persists = flushes(&server).await - flushes_before;
    assert!(
        persists >= plan.len() as f64 / 4.0,
        "{persists} persists for {} requests",
        plan.len()
    );

    let minutes = [
        bucket_of(first_minute * 1000, "MINUTE"),
        bucket_of((first_minute + 60) * 1000, "MINUTE"),
    ];
    for (platform, want) in &expected {
        assert!(
            !want.service.is_empty(),
            "{platform}: no data in the fixtures"
        );
        let prefix = format!("meter_{platform}_mp");
        let service = json!({"serviceName": want.service, "normal": true});

        // Calls per minute, and the service is the sum of its pages.
        for minute in &minutes {
            let key = ("MINUTE".to_string(), minute.clone());
            let calls = want.service_calls.get(&key).cloned().unwrap_or_default();
            assert!(
                calls.calls > 0,
                "{platform} {minute}: the plan put calls here"
            );
            let got = read_one(
                &server,
                &format!("{prefix}_request_cpm"),
                service.clone(),
                "MINUTE",
                minute,
            )
            .await;
            assert_eq!(
                got,
                Some(calls.calls as f64),
                "{platform} calls/min in {minute}"
            );
            let mut pages_sum = 0.0;
            for ((step, bucket, page), page_calls) in &want.page_calls {
                if step != "MINUTE" || bucket != minute || page.is_empty() {
                    continue;
                }
                let endpoint =
                    json!({"serviceName": want.service, "normal": true, "endpointName": page});
                let got = read_one(
                    &server,
                    &format!("{prefix}_endpoint_request_cpm"),
                    endpoint.clone(),
                    "MINUTE",
                    minute,
                )
                .await;
                assert_eq!(
                    got,
                    Some(page_calls.calls as f64),
                    "{platform} {page} calls/min in {minute}"
                );
                // Successful calls of the page, 0 (not "no data") when all of them failed.
                let got = read_one(
                    &server,
                    &format!("{prefix}_endpoint_request_success_count"),
                    endpoint,
                    "MINUTE",
                    minute,
                )
                .await;
                assert_eq!(
                    got,
                    Some(page_calls.successes as f64),
                    "{platform} {page} successful calls in {minute}"
                );
                pages_sum += page_calls.calls as f64;
            }
            for ((step, bucket, instance), instance_calls) in &want.instance_calls {
                if step != "MINUTE" || bucket != minute || instance.is_empty() {
                    continue;
                }
                let entity = json!({"serviceName": want.service, "normal": true,
                                    "serviceInstanceName": instance});
                for (metric, value) in [
                    ("request_cpm", instance_calls.calls),
                    ("request_count", instance_calls.calls),
                    ("request_success_count", instance_calls.successes),
                ] {
                    let got = read_one(
                        &server,
                        &format!("{prefix}_instance_{metric}"),
                        entity.clone(),
                        "MINUTE",
                        minute,
                    )
                    .await;
                    assert_eq!(
                        got,
                        Some(value as f64),
                        "{platform} {instance} {metric} in {minute}"
                    );
                }
            }
            assert_eq!(
                pages_sum, calls.calls as f64,
                "{platform}: service = sum of its pages in {minute}"
            );

            // The dashboards' success rate: successful calls / calls × 100 (MQE prints 3 decimals).
            let rate = read_one(
                &server,
                &format!("{prefix}_request_success_count / {prefix}_request_count * 100"),
                service.clone(),
                "MINUTE",
                minute,
            )
            .await
            .unwrap_or_else(|| panic!("{platform}: no success rate in {minute}"));
            let want_rate = calls.successes as f64 * 100.0 / calls.calls as f64;
            assert!(
                (rate - want_rate).abs() < 0.001,
                "{platform} {minute}: rate {rate}, want {want_rate}"
            );
        }
        // The second minute only has successful calls: 100, not a gap.
        let clean_minute = ("MINUTE".to_string(), minutes[1].clone());
        let c = &want.service_calls[&clean_minute];
        assert_eq!(
            c.successes, c.calls,
            "{platform}: the plan keeps failures out of {}",
            minutes[1]
        );

        // Hour and day: calls per minute over the whole bucket, percentiles from the summed
        // bucket counts, and averages as Σ of per-export values / exports.
        for step in ["HOUR", "DAY"] {
            let minutes_in = if step == "HOUR" { 60 } else { 1440 };
            for ((s, bucket), calls) in &want.service_calls {
                if s != step {
                    continue;
                }
                let got = read_one(
                    &server,
                    &format!("{prefix}_request_cpm"),
                    service.clone(),
                    step,
                    bucket,
                )
                .await;
                assert_eq!(
                    got,
                    Some((calls.calls / minutes_in) as f64),
                    "{platform} {step} {bucket} calls/min"
                );
                let got = read_one(
                    &server,
                    &format!("{prefix}_request_count"),
                    service.clone(),
                    step,
                    bucket,
                )
                .await;
                assert_eq!(
                    got,
                    Some(calls.calls as f64),
                    "{platform} {step} {bucket} calls"
                );
                let got = read_one(
                    &server,
                    &format!("{prefix}_request_success_count"),
                    service.clone(),
                    step,
                    bucket,
                )
                .await;
                assert_eq!(
                    got,
                    Some(calls.successes as f64),
                    "{platform} {step} {bucket} successes"
                );

                let got = read(
                    &server,
                    &format!("{prefix}_request_duration_percentile"),
                    service.clone(),
                    step,
                    bucket,
                )
                .await;
                let ranks: BTreeSet<String> = got.keys().cloned().collect();
                assert_eq!(
                    ranks,
                    RANKS.iter().map(|p| p.to_string()).collect(),
                    "{got:?}"
                );
                for p in RANKS {
                    let want_p = percentile(&calls.buckets, p);
                    let value = got[&p.to_string()]
                        .unwrap_or_else(|| panic!("{platform} {step} p{p} empty"));
                    assert!(
                        same_percentile(value, want_p, &calls.buckets),
                        "{platform} {step} {bucket} p{p}: {value}, want {want_p} from {:?}",
                        calls.buckets
                    );
                }
            }
            for ((s, bucket), (sum, n)) in &want.launch {
                if s != step {
                    continue;
                }
                let avg = sum / n;
                let want_avg = if avg == 0 && *sum > 0 { 1 } else { avg };
                let got = read_one(
                    &server,
                    &format!("{prefix}_app_launch_duration"),
                    service.clone(),
                    step,
                    bucket,
                )
                .await;
                assert_eq!(
                    got,
                    Some(want_avg as f64),
                    "{platform} {step} {bucket} app launch ({sum} / {n})"
                );
            }
        }
    }
}

const LOGS_QUERY: &str = "query ($condition: LogQueryCondition!) { result: queryLogs(condition: $condition) { errorReason logs { content tags { key value } } } }";

#[tokio::test]
async fn replayed_logs_carry_each_tag_once_and_a_level() {
    let Some(dir) = fixtures_dir() else { return };
    let server = Server::start().await;
    let latest = now_nanos() - 60_000_000_000;
    let logs = fixtures(&dir, "/v1/logs");
    assert!(!logs.is_empty());
    // The severity text each record's content was sent with, and the services to query.
    let mut severities: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut services = BTreeSet::new();
    for f in &logs {
        for rl in decode_logs_fixture(f).resource_logs {
            let resource = rl.resource.map(|r| r.attributes).unwrap_or_default();
            services.insert(attr(&resource, "service.name").unwrap_or_default());
            for record in rl.scope_logs.iter().flat_map(|s| &s.log_records) {
                use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
                let content = match record.body.as_ref().and_then(|b| b.value.as_ref()) {
                    Some(V::StringValue(s)) => s.clone(),
                    _ => String::new(),
                };
                severities
                    .entry(content)
                    .or_default()
                    .insert(record.severity_text.clone());
            }
        }
        let (status, text) = server
            .post("/v1/logs", &f.content_type, retime_logs(f, latest))
            .await;
        assert_eq!(status, 200, "{}: {text}", f.file);
    }
    let mut checked = 0;
    for service in services.iter().filter(|s| !s.is_empty()) {
        let condition = json!({"serviceId": format!("{}.1", b64(service)), "queryDuration": window(30, "MINUTE"),
                               "paging": {"pageNum": 1, "pageSize": 100}});
        let reply = server
            .graphql(LOGS_QUERY, json!({"condition": condition.clone()}))
            .await;
        assert!(reply.get("errors").is_none(), "{reply}");
        // The UIs' level filter finds the SDK's logs: every one of them is sent as ERROR.
        let mut by_level = condition.clone();
        by_level["tags"] = json!([{"key": "level", "value": "ERROR"}]);
        let filtered = server
            .graphql(LOGS_QUERY, json!({"condition": by_level}))
            .await;
        assert_eq!(
            filtered["data"]["result"]["logs"].as_array().map(Vec::len),
            reply["data"]["result"]["logs"].as_array().map(Vec::len),
            "{service}: level=ERROR finds every log"
        );
        for log in reply["data"]["result"]["logs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let tags: Vec<(String, String)> = log["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    (
                        t["key"].as_str().unwrap_or_default().to_string(),
                        t["value"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            let distinct: BTreeSet<_> = tags.iter().collect();
            assert_eq!(distinct.len(), tags.len(), "a tag pair repeats: {log}");
            for key in ["exception.type", "exception.stacktrace", "server.address"] {
                assert!(
                    tags.iter().filter(|(k, _)| k == key).count() <= 1,
                    "{key} twice: {log}"
                );
            }
            let levels: Vec<&str> = tags
                .iter()
                .filter(|(k, _)| k == "level")
                .map(|(_, v)| v.as_str())
                .collect();
            let content = log["content"].as_str().unwrap_or_default();
            let sent = severities
                .get(content)
                .unwrap_or_else(|| panic!("unknown log {log}"));
            assert_eq!(levels.len(), 1, "{log}");
            assert!(
                sent.contains(levels[0]),
                "level {} of {log}, sent {sent:?}",
                levels[0]
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no log came back");
}

/// With upstream's rule files loaded instead of the shipped ones, request_cpm is OAP's again:
/// the calls of a minute averaged over the exports that carried them.
#[tokio::test]
async fn upstream_rules_keep_oaps_calls_per_export() {
    let (Some(dir), Some(reference)) = (fixtures_dir(), reference_dir()) else {
        return;
    };
    let rules = reference.join("rules/otel-rules");
    let rules = rules.display().to_string();
    // Upstream has no RUM rules: only its mini-program files are loaded.
    let server = Server::start_with(&[
        ("SW_OTEL_RULES_PATH", rules.as_str()),
        (
            "SW_OTEL_RECEIVER_ENABLED_OTEL_METRICS_RULES",
            "miniprogram/*",
        ),
    ])
    .await;
    let fixture = fixtures(&dir, "/v1/metrics")
        .into_iter()
        .find(|f| f.platform == "wechat" && f.encoding == "json")
        .expect("a wechat fixture");
    let now = chrono::Utc::now().timestamp();
    let minute = now - now % 60 - 120;
    let body = retime_metrics(&fixture, i128::from(minute + 45) * 1_000_000_000);
    let mut expected = Expected::default();
    account(&mut expected, "wechat", &decode_metrics(&fixture, &body));
    let bucket = bucket_of(minute * 1000, "MINUTE");
    let calls = expected.service_calls[&("MINUTE".to_string(), bucket.clone())].calls;
    assert!(calls > 0);
    for _ in 0..3 {
        let (status, text) = server
            .post("/v1/metrics", &fixture.content_type, body.clone())
            .await;
        assert_eq!(status, 200, "{text}");
    }
    let service = json!({"serviceName": expected.service, "normal": true});
    let got = read_one(
        &server,
        "meter_wechat_mp_request_cpm",
        service,
        "MINUTE",
        &bucket,
    )
    .await;
    // Three exports of `calls` each: OAP's AVG says `calls`, the shipped rules would say 3×.
    assert_eq!(got, Some(calls as f64));
}
