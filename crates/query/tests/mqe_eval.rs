//! MQE evaluation against a fake storage: dense series, labels, relabels, aggregations, errors.

mod common;

use common::*;
use skylark_core::{InstanceId, MetricCatalog, MetricValue, ServiceId, TimeBucket};
use skylark_query::mqe::{
    execute, format_value, ExpressionOutcome, MqeContext, MqeEntity, MqeLimits, ResultType,
};
use std::sync::Arc;

const SVC: &str = "mini-program-sim-wechat";

fn window() -> Vec<TimeBucket> {
    minute("2026-05-01 1200").range_to(minute("2026-05-01 1230"), 500)
}

fn storage() -> Arc<FakeStorage> {
    let s = FakeStorage::default();
    let sid = ServiceId::new(SVC, true).into_string();
    s.put(
        "meter_wechat_mp_app_launch_duration",
        &sid,
        202605011205,
        MetricValue::Single(120),
    );
    s.put(
        "meter_wechat_mp_app_launch_duration",
        &sid,
        202605011210,
        MetricValue::Single(81),
    );
    let pct = |ps: &[(&str, i64)]| {
        MetricValue::Labeled(ps.iter().map(|(p, v)| (labels(&[("p", p)]), *v)).collect())
    };
    s.put(
        "meter_wechat_mp_request_duration_percentile",
        &sid,
        202605011205,
        pct(&[("50", 10), ("75", 25), ("90", 50), ("95", 100), ("99", 250)]),
    );
    s.put(
        "meter_wechat_mp_request_duration_percentile",
        &sid,
        202605011206,
        pct(&[("50", 20), ("99", 500)]),
    );
    s.put(
        "meter_wechat_mp_error_count",
        &sid,
        202605011207,
        MetricValue::Labeled(vec![
            (labels(&[("exception_type", "js")]), 3),
            (labels(&[("exception_type", "ajax")]), 1),
        ]),
    );
    let iid = InstanceId::new(&ServiceId::new(SVC, true), "sim").into_string();
    s.put(
        "meter_wechat_mp_instance_request_cpm",
        &iid,
        202605011230,
        MetricValue::Single(7),
    );
    let other = InstanceId::new(&ServiceId::new(SVC, true), "other").into_string();
    s.put(
        "meter_wechat_mp_instance_request_cpm",
        &other,
        202605011230,
        MetricValue::Single(9),
    );
    Arc::new(s)
}

fn run_with(storage: &FakeStorage, entity: &MqeEntity, expr: &str) -> ExpressionOutcome {
    run_limited(storage, entity, expr, MqeLimits::default())
}

fn run_limited(
    storage: &FakeStorage,
    entity: &MqeEntity,
    expr: &str,
    limits: MqeLimits,
) -> ExpressionOutcome {
    let catalog: MetricCatalog = mini_program_catalog();
    let buckets = window();
    let ctx = MqeContext {
        storage,
        catalog: &catalog,
        entity,
        buckets: &buckets,
        limits,
    };
    execute(&ctx, expr)
}

fn run(expr: &str) -> ExpressionOutcome {
    run_with(&storage(), &MqeEntity::service(SVC), expr)
}

fn values(series: &skylark_query::mqe::MqeSeries) -> Vec<Option<String>> {
    series
        .values
        .iter()
        .map(|v| v.value.map(format_value))
        .collect()
}

fn label_text(r: &ExpressionOutcome) -> Vec<String> {
    r.results
        .iter()
        .map(|s| {
            s.labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

#[test]
fn plain_metric_is_a_dense_series_with_nulls() {
    let r = run("meter_wechat_mp_app_launch_duration");
    assert_eq!(r.kind, ResultType::TimeSeriesValues);
    assert_eq!(r.error, None);
    assert_eq!(r.results.len(), 1);
    let s = &r.results[0];
    assert!(s.labels.is_empty());
    assert_eq!(s.values.len(), 31);
    let first_ms = minute("2026-05-01 1200").start_epoch_ms().unwrap();
    for (i, v) in s.values.iter().enumerate() {
        assert_eq!(
            v.id.as_deref(),
            Some((first_ms + i as i64 * 60_000).to_string().as_str())
        );
        assert!(v.owner.is_none() && v.trace_id.is_none());
    }
    let vals = values(s);
    assert_eq!(vals[5].as_deref(), Some("120"));
    assert_eq!(vals[10].as_deref(), Some("81"));
    assert_eq!(vals.iter().filter(|v| v.is_none()).count(), 29);
}

#[test]
fn labeled_metric_returns_every_combination_sorted() {
    let r = run("meter_wechat_mp_request_duration_percentile");
    assert_eq!(r.kind, ResultType::TimeSeriesValues);
    assert_eq!(label_text(&r), ["p=50", "p=75", "p=90", "p=95", "p=99"]);
    // p=75 is absent at 12:06: null there, present at 12:05.
    let p75 = values(&r.results[1]);
    assert_eq!(p75[5].as_deref(), Some("25"));
    assert_eq!(p75[6], None);
    assert_eq!(values(&r.results[4])[6].as_deref(), Some("500"));

    let errors = run("meter_wechat_mp_error_count");
    assert_eq!(
        label_text(&errors),
        ["exception_type=ajax", "exception_type=js"]
    );
}

#[test]
fn label_selector_is_union_within_a_key_and_empty_when_nothing_matches() {
    let r = run("meter_wechat_mp_request_duration_percentile{p='99, 50'}");
    assert_eq!(label_text(&r), ["p=50", "p=99"]);
    let none = run("meter_wechat_mp_request_duration_percentile{p='42'}");
    assert_eq!(none.kind, ResultType::TimeSeriesValues);
    assert!(none.results.is_empty());
    let other_key = run("meter_wechat_mp_request_duration_percentile{p='50',q='1'}");
    assert!(other_key.results.is_empty());
}

#[test]
fn relabels_renames_in_place() {
    let r = run("relabels(meter_wechat_mp_request_duration_percentile{p='50,75,90,95,99'},p='50,75,90,95,99',percentile='P50,P75,P90,P95,P99')");
    assert_eq!(r.error, None);
    assert_eq!(
        label_text(&r),
        [
            "percentile=P50",
            "percentile=P75",
            "percentile=P90",
            "percentile=P95",
            "percentile=P99"
        ]
    );
    assert_eq!(values(&r.results[0])[5].as_deref(), Some("10"));
}

#[test]
fn relabels_errors_keep_the_original_result() {
    let r = run("relabels(meter_wechat_mp_request_duration_percentile,p='50,75',percentile='P50')");
    assert_eq!(
        r.error.as_deref(),
        Some("Target label [p]: the number of relabel values is not equal to the number of replace label.")
    );
    assert_eq!(r.kind, ResultType::TimeSeriesValues);
    assert_eq!(r.results.len(), 5);

    let r = run("relabels(meter_wechat_mp_app_launch_duration, p='50', percentile='P50')");
    assert_eq!(
        r.error.as_deref(),
        Some("The result of expression [meter_wechat_mp_app_launch_duration] is not a labeled result.")
    );
    assert_eq!(r.kind, ResultType::TimeSeriesValues);
}

#[test]
fn avg_of_labeled_keeps_labels_and_drops_ids() {
    let r = run("avg(meter_wechat_mp_request_duration_percentile{p='95'})");
    assert_eq!(r.kind, ResultType::SingleValue);
    assert_eq!(label_text(&r), ["p=95"]);
    assert_eq!(r.results[0].values.len(), 1);
    assert_eq!(r.results[0].values[0].id, None);
    assert_eq!(values(&r.results[0]), [Some("100".to_string())]);

    let avg = run("avg(meter_wechat_mp_app_launch_duration)");
    assert_eq!(values(&avg.results[0]), [Some("100.5".to_string())]);
}

#[test]
fn aggregations_of_all_null_series() {
    let quiet = "meter_wechat_mp_first_render_duration";
    assert_eq!(
        values(&run(&format!("sum({quiet})")).results[0]),
        [Some("0".to_string())]
    );
    assert_eq!(
        values(&run(&format!("count({quiet})")).results[0]),
        [Some("0".to_string())]
    );
    assert_eq!(values(&run(&format!("avg({quiet})")).results[0]), [None]);
    let latest = run(&format!("latest({quiet})"));
    assert_eq!(latest.results[0].values[0].id, None);
    assert_eq!(latest.results[0].values[0].value, None);
}

#[test]
fn max_and_latest_keep_the_point_id() {
    let max = run("max(meter_wechat_mp_app_launch_duration)");
    let at_1205 = minute("2026-05-01 1205")
        .start_epoch_ms()
        .unwrap()
        .to_string();
    assert_eq!(
        max.results[0].values[0].id.as_deref(),
        Some(at_1205.as_str())
    );
    let latest = run("latest(meter_wechat_mp_app_launch_duration)");
    assert_eq!(values(&latest.results[0]), [Some("81".to_string())]);
    let err = run("latest(avg(meter_wechat_mp_app_launch_duration))");
    assert_eq!(
        err.error.as_deref(),
        Some("LATEST can only be used in time series result.")
    );
    assert_eq!(err.kind, ResultType::Unknown);
}

#[test]
fn arithmetic_shapes() {
    let r = run("meter_wechat_mp_app_launch_duration / 3");
    assert_eq!(r.kind, ResultType::TimeSeriesValues);
    let v = values(&r.results[0]);
    assert_eq!(v[5].as_deref(), Some("40"));
    assert_eq!(v[10].as_deref(), Some("27"));
    assert_eq!(v[0], None);
    let r = run("meter_wechat_mp_app_launch_duration - meter_wechat_mp_app_launch_duration");
    assert_eq!(values(&r.results[0])[5].as_deref(), Some("0"));
    let r = run("2 / 3");
    assert_eq!(r.kind, ResultType::SingleValue);
    assert_eq!(values(&r.results[0]), [Some("0.667".to_string())]);
    let r = run("meter_wechat_mp_request_duration_percentile{p='50'} * 2");
    assert_eq!(label_text(&r), ["p=50"]);
    assert_eq!(values(&r.results[0])[6].as_deref(), Some("40"));
    let r = run("meter_wechat_mp_app_launch_duration > bool 100");
    assert_eq!(values(&r.results[0])[5].as_deref(), Some("1"));
    assert_eq!(values(&r.results[0])[10].as_deref(), Some("0"));
}

#[test]
fn unknown_metric_and_syntax_errors_go_in_error() {
    let r = run("meter_nope");
    assert_eq!(r.kind, ResultType::Unknown);
    assert!(r.results.is_empty());
    assert_eq!(
        r.error.as_deref(),
        Some("Metric: [meter_nope] does not exist.")
    );
    let r = run("avg(meter_wechat_mp_app_launch_duration");
    assert_eq!(r.kind, ResultType::Unknown);
    assert!(r.error.unwrap().starts_with("line 1:39 "));
    let r = run("baseline(meter_wechat_mp_app_launch_duration, value)");
    assert!(r.error.unwrap().contains("not supported"));
}

#[test]
fn scope_comes_from_the_metric_not_the_entity() {
    let mut entity = MqeEntity::service(SVC);
    entity.service_instance_name = Some("sim".into());
    // entity.scope says Service; the metric is instance-scoped, so the instance is read.
    let r = run_with(&storage(), &entity, "meter_wechat_mp_instance_request_cpm");
    assert_eq!(values(&r.results[0])[30].as_deref(), Some("7"));
    // Without an instance name the entity is invalid: silently empty.
    let r = run("meter_wechat_mp_instance_request_cpm");
    assert_eq!(
        (r.kind, r.results.len(), r.error),
        (ResultType::Unknown, 0, None)
    );
    let r = run("meter_wechat_mp_instance_request_duration_percentile");
    assert_eq!((r.kind, r.results.len()), (ResultType::TimeSeriesValues, 0));
}

#[test]
fn storage_failure_is_reported_as_oap_io_error() {
    let failing = FakeStorage {
        fail_reads: true,
        ..Default::default()
    };
    let r = run_with(
        &failing,
        &MqeEntity::service(SVC),
        "meter_wechat_mp_app_launch_duration",
    );
    assert_eq!(
        r.error.as_deref(),
        Some("Internal IO exception, query metrics error.")
    );
}

#[test]
fn top_n_ranks_entities_with_owners() {
    let r = run("top_n(meter_wechat_mp_instance_request_cpm, 5, des)");
    assert_eq!(r.kind, ResultType::SortedList);
    let vals = &r.results[0].values;
    assert_eq!(vals.len(), 2);
    assert_eq!(vals[0].id.as_deref(), Some("other"));
    assert_eq!(vals[1].id.as_deref(), Some("sim"));
    let owner = vals[1].owner.as_ref().unwrap();
    assert_eq!(owner.service_name.as_deref(), Some(SVC));
    assert_eq!(owner.service_instance_name.as_deref(), Some("sim"));
    assert_eq!(owner.normal, Some(true));
    let r = run("top_n(meter_wechat_mp_request_duration_percentile, 5, des)");
    assert_eq!(
        r.error.as_deref(),
        Some("Metric: [meter_wechat_mp_request_duration_percentile] is labeled value, does not support top_n query.")
    );
    assert_eq!(
        run("top_n(meter_wechat_mp_instance_request_cpm, 0, des)")
            .error
            .as_deref(),
        Some("TopN value must be > 0.")
    );
}

#[test]
fn aggregate_labels_and_sorting() {
    let r = run("aggregate_labels(meter_wechat_mp_error_count, sum)");
    assert_eq!(label_text(&r), [""]);
    assert_eq!(values(&r.results[0])[7].as_deref(), Some("4"));
    let r = run("sort_values(meter_wechat_mp_error_count, 1, des, sum)");
    assert_eq!(label_text(&r), ["exception_type=js"]);
    let r = run("sort_label_values(meter_wechat_mp_request_duration_percentile, des, p)");
    assert_eq!(label_text(&r)[0], "p=99");
}

#[test]
fn increase_uses_points_before_the_window() {
    let s = storage();
    let sid = ServiceId::new(SVC, true).into_string();
    s.put(
        "meter_wechat_mp_request_cpm",
        &sid,
        202605011159,
        MetricValue::Single(10),
    );
    s.put(
        "meter_wechat_mp_request_cpm",
        &sid,
        202605011200,
        MetricValue::Single(25),
    );
    let r = run_with(
        &s,
        &MqeEntity::service(SVC),
        "increase(meter_wechat_mp_request_cpm, 1)",
    );
    assert_eq!(r.results[0].values.len(), 31);
    assert_eq!(values(&r.results[0])[0].as_deref(), Some("15"));
    let r = run_with(
        &s,
        &MqeEntity::service(SVC),
        "rate(meter_wechat_mp_request_cpm, 1)",
    );
    assert_eq!(values(&r.results[0])[0].as_deref(), Some("0.25"));
}

#[test]
fn top_n_of_relations_ranks_the_services_one_service_calls() {
    let catalog = mini_program_catalog();
    let s = FakeStorage::default();
    let relation = |from: &str, to: &str| {
        format!(
            "{}-{}",
            ServiceId::new(from, true).into_string(),
            ServiceId::new(to, false).into_string()
        )
    };
    for (from, to, ms) in [
        (SVC, "api.example.com", 120),
        (SVC, "slow.example.com:8443", 2400),
        ("another-app", "slowest.example.com", 9000),
    ] {
        s.put(
            "service_relation_client_resp_time",
            &relation(from, to),
            202605011210,
            MetricValue::Single(ms),
        );
    }
    let buckets = window();
    let entity = MqeEntity::service(SVC);
    let ctx = MqeContext {
        storage: &s,
        catalog: &catalog,
        entity: &entity,
        buckets: &buckets,
        limits: MqeLimits::default(),
    };
    let r = execute(&ctx, "top_n(service_relation_client_resp_time, 10, des)");
    assert_eq!(r.kind, ResultType::SortedList, "{:?}", r.error);
    let vals = &r.results[0].values;
    let hosts: Vec<_> = vals.iter().map(|v| v.id.as_deref()).collect();
    assert_eq!(
        hosts,
        [Some("slow.example.com:8443"), Some("api.example.com")],
        "only this service's calls, slowest first, named by the called host"
    );
    let owner = vals[0].owner.as_ref().unwrap();
    assert_eq!(owner.service_name.as_deref(), Some(SVC));
}

/// Runs `expr` on a thread with a tokio worker's 2 MiB stack, where GraphQL resolvers run.
fn run_on_worker_stack(expr: String) -> ExpressionOutcome {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || run(&expr))
        .expect("spawn")
        .join()
        .expect("evaluation must not crash the thread")
}

const LAUNCH: &str = "meter_wechat_mp_app_launch_duration";

#[test]
fn deep_nesting_and_long_chains_are_refused_with_an_mqe_error() {
    let cases = [
        (
            format!("{}1{}", "(".repeat(1000), ")".repeat(1000)),
            "line 1:64 expression nests deeper than 64 levels",
        ),
        (
            format!("{}{LAUNCH}{}", "abs(".repeat(800), ")".repeat(800)),
            "expression nests deeper than 64 levels",
        ),
        (
            vec!["m"; 2000].join("+"),
            "expression has more than 256 terms",
        ),
        (
            vec!["1"; 2000].join("*"),
            "expression has more than 256 terms",
        ),
    ];
    for (expr, message) in cases {
        let r = run_on_worker_stack(expr.clone());
        assert_eq!(r.kind, ResultType::Unknown, "{}", &expr[..40]);
        assert!(r.results.is_empty());
        let error = r.error.unwrap_or_default();
        assert!(error.contains(message), "{error}");
        assert!(skylark_query::mqe::parse(&expr).is_err());
    }
    let long = format!("{LAUNCH}{}", " ".repeat(20_000));
    let error = run(&long).error.unwrap_or_default();
    assert!(error.contains("more than the 16384 allowed"), "{error}");
}

#[test]
fn the_largest_accepted_expressions_evaluate_on_a_worker_stack() {
    // 63 nested calls around a metric, and a 128-term chain (255 terms with the operators).
    let nested = format!("{}{LAUNCH}{}", "abs(".repeat(63), ")".repeat(63));
    let r = run_on_worker_stack(nested.clone());
    assert_eq!(r.error, None);
    assert_eq!(values(&r.results[0])[5].as_deref(), Some("120"));
    assert_eq!(
        skylark_query::mqe::parse(&nested).unwrap().to_string(),
        nested
    );
    let chain = vec![LAUNCH; 128].join("+");
    let r = run_on_worker_stack(chain);
    assert_eq!(r.error, None);
    assert_eq!(values(&r.results[0])[5].as_deref(), Some("15360"));
    // Nesting and chains combined: each level holds a chain.
    let mixed = format!(
        "{}{LAUNCH}{}",
        format!("abs({LAUNCH}+").repeat(30),
        ")".repeat(30)
    );
    let r = run_on_worker_stack(mixed);
    assert_eq!(r.error, None);
    assert_eq!(values(&r.results[0])[5].as_deref(), Some("3720"));
}

#[test]
fn trend_ranges_are_bounded_and_never_overflow() {
    let s = storage();
    let e = MqeEntity::service(SVC);
    for expr in [
        "increase(meter_wechat_mp_request_cpm, 100000000)",
        "rate(meter_wechat_mp_request_cpm, 9223372036854775807)",
    ] {
        let r = run_with(&s, &e, expr);
        assert_eq!(r.kind, ResultType::Unknown);
        assert_eq!(
            r.error.as_deref(),
            Some("The trend range must be <= 1440."),
            "{expr}"
        );
    }
    // The largest allowed range works and still answers one point per window bucket.
    let r = run_with(&s, &e, "increase(meter_wechat_mp_request_cpm, 1440)");
    assert_eq!(r.error, None);
    assert_eq!(r.results[0].values.len(), 31);
    // With no range limit, `range × step` overflowing i64 is an error, not a wrapped start.
    let unbounded = MqeLimits {
        max_trend_range: usize::MAX,
        max_points: usize::MAX,
    };
    let r = run_limited(
        &s,
        &e,
        "rate(meter_wechat_mp_request_cpm, 9223372036854775807)",
        unbounded,
    );
    assert_eq!(
        r.error.as_deref(),
        Some("The trend range is out of the time range.")
    );
    // The extra buckets a range reads count against the point budget.
    let tight = MqeLimits {
        max_points: 100,
        ..MqeLimits::default()
    };
    let r = run_limited(&s, &e, "increase(meter_wechat_mp_request_cpm, 60)", tight);
    assert_eq!(r.error, None);
    let r = run_limited(&s, &e, "increase(meter_wechat_mp_request_cpm, 70)", tight);
    assert!(
        r.error
            .as_deref()
            .is_some_and(|m| m.starts_with("The expression reads more than 100 metric points")),
        "{:?}",
        r.error
    );
}

#[test]
fn the_points_one_evaluation_reads_are_bounded() {
    let s = storage();
    let e = MqeEntity::service(SVC);
    // Two instances × 31 buckets = 62 points.
    let top = "top_n(meter_wechat_mp_instance_request_cpm, 5, des)";
    let limits = |max_points| MqeLimits {
        max_points,
        ..MqeLimits::default()
    };
    assert_eq!(run_limited(&s, &e, top, limits(62)).error, None);
    let r = run_limited(&s, &e, top, limits(61));
    assert_eq!(r.kind, ResultType::Unknown);
    assert_eq!(
        r.error.as_deref(),
        Some("The expression reads more than 61 metric points (entities × time buckets); narrow the duration or the expression.")
    );
    // Every read of the expression counts: 3 reads of 31 buckets.
    let three = format!("{LAUNCH}+{LAUNCH}+{LAUNCH}");
    assert_eq!(run_limited(&s, &e, &three, limits(93)).error, None);
    assert!(run_limited(&s, &e, &three, limits(92)).error.is_some());
}

#[test]
fn top_n_attribute_filters_are_refused_not_ignored() {
    for (expr, attr) in [
        (
            "top_n(meter_wechat_mp_instance_request_cpm, 5, des, attr0='WECHAT')",
            "attr0",
        ),
        (
            "top_n(meter_wechat_mp_instance_request_cpm, 5, asc, attr3!='x')",
            "attr3",
        ),
    ] {
        let r = run(expr);
        assert_eq!(r.kind, ResultType::Unknown, "{expr}");
        assert!(r.results.is_empty());
        assert_eq!(
            r.error,
            Some(format!("Unsupported operation: top_n attribute filter {attr} is not supported, Skylark keeps no entity attributes.")),
        );
    }
    let r = run("top_n_of(top_n(meter_wechat_mp_instance_request_cpm, 5, des), top_n(meter_wechat_mp_instance_request_cpm, 5, des, attr1='a'), 3, des)");
    assert!(r.error.is_some_and(|m| m.contains("attr1")));
}
