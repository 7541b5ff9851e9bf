//! Golden tests per MAL function; expected numbers are worked by hand from oap-semantics §2.
use skylark_core::traffic::Traffic;
use skylark_core::{Labels, Layer, MeterValue, MetricFunction, Sample, Scope, Step, TimeBucket};
use skylark_mal::{EvalContext, RuleOutput, RuleSet, TimeUnit};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

mod common;
use common::{families as fams, sample as s};

fn ctx() -> EvalContext {
    EvalContext {
        default_histogram_unit: TimeUnit::Seconds,
        now_ms: T0 + 3_600_000,
    }
}

fn rules(body: &str) -> RuleSet {
    RuleSet::from_sources(&[(
        "test.yaml",
        &format!("metricPrefix: t\nmetricsRules:\n{body}"),
    )])
    .unwrap()
}

fn run(body: &str, samples: Vec<Sample>) -> RuleOutput {
    rules(body).evaluate(&fams(samples), &ctx())
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn single(out: &RuleOutput, service: &str) -> i64 {
    let e = out
        .emissions
        .iter()
        .find(|e| e.entity.service_name == service)
        .unwrap_or_else(|| panic!("no emission for {service}: {out:?}"));
    match &e.value {
        MeterValue::Single(v) => *v,
        other => panic!("not single: {other:?}"),
    }
}

#[test]
fn avg_by_labels_groups_and_keeps_first_timestamp() {
    let out = run(
        "  - name: a\n    exp: m.avg(['svc']).service(['svc'], Layer.GENERAL)\n",
        vec![
            s("m", &[("svc", "a"), ("p", "x")], 10.0, T0),
            s("m", &[("svc", "a"), ("p", "y")], 21.0, T0 + 120_000),
            s("m", &[("svc", "b")], 5.0, T0 + 60_000),
        ],
    );
    // a: (10 + 21) / 2 = 15.5 → rounds half-up to 16, in the minute of the first member (T0).
    assert_eq!(single(&out, "a"), 16);
    assert_eq!(single(&out, "b"), 5);
    let a = out
        .emissions
        .iter()
        .find(|e| e.entity.service_name == "a")
        .unwrap();
    assert_eq!(
        a.minute,
        TimeBucket::from_epoch_ms(T0, Step::Minute).unwrap()
    );
    assert_eq!(a.metric.function, MetricFunction::Avg);
    assert_eq!(a.metric.name, "t_a");
}

#[test]
fn sum_with_extra_label_is_labeled_and_missing_label_becomes_empty() {
    let out = run(
        "  - name: s\n    exp: m.sum(['svc', 'code']).downsampling(SUM).service(['svc'], Layer.GENERAL)\n",
        vec![
            s("m", &[("svc", "a"), ("code", "200")], 2.0, T0),
            s("m", &[("svc", "a"), ("code", "200")], 1.0, T0),
            s("m", &[("svc", "a")], 4.0, T0),
        ],
    );
    assert_eq!(out.emissions.len(), 1);
    assert_eq!(out.emissions[0].metric.function, MetricFunction::SumLabeled);
    let MeterValue::Labeled(rows) = &out.emissions[0].value else {
        panic!()
    };
    assert_eq!(
        rows,
        &vec![
            (labels(&[("code", "200")]), 3),
            (labels(&[("code", "")]), 4)
        ]
    );
}

#[test]
fn histogram_default_unit_is_seconds_and_milliseconds_keeps_bounds() {
    let samples = || {
        vec![
            s("h", &[("svc", "a"), ("le", "Infinity")], 1.0, T0 + 5),
            s("h", &[("svc", "a"), ("le", "10.0")], 3.0, T0),
            s("h", &[("svc", "a"), ("le", "0.025")], 2.0, T0 + 1),
        ]
    };
    let out = run(
        "  - name: d\n    exp: h.sum(['svc', 'le']).histogram().histogram_percentile([50, 99]).service(['svc'], Layer.GENERAL)\n",
        samples(),
    );
    let e = &out.emissions[0];
    assert_eq!(e.metric.function, MetricFunction::AvgHistogramPercentile);
    assert_eq!(e.metric.percentile_ranks, vec![50, 99]);
    let MeterValue::Histogram(groups) = &e.value else {
        panic!()
    };
    // SECONDS: 0.025 s → 25 ms, 10 s → 10000 ms, Infinity → i64::MAX.
    assert_eq!(groups[0].buckets, vec![(25, 2), (10_000, 3), (i64::MAX, 1)]);
    assert!(groups[0].labels.is_empty());
    // Time of the lowest bucket's sample (T0 + 1 is in the same minute as T0).
    assert_eq!(
        e.minute,
        TimeBucket::from_epoch_ms(T0 + 1, Step::Minute).unwrap()
    );

    let out = run(
        "  - name: d\n    exp: h.sum(['svc', 'le']).histogram('le', TimeUnit.MILLISECONDS).service(['svc'], Layer.GENERAL)\n",
        samples(),
    );
    assert_eq!(
        out.emissions[0].metric.function,
        MetricFunction::AvgHistogram
    );
    let MeterValue::Histogram(groups) = &out.emissions[0].value else {
        panic!()
    };
    // MILLISECONDS: (long)(0.025 × 1) = 0, (long)(10.0 × 1) = 10.
    assert_eq!(groups[0].buckets, vec![(0, 2), (10, 3), (i64::MAX, 1)]);
}

#[test]
fn tag_equal_treats_missing_label_as_empty() {
    let data = || {
        vec![
            s("m", &[("svc", "a")], 1.0, T0),
            s("m", &[("svc", "a"), ("region", "eu")], 2.0, T0),
        ]
    };
    let out = run("  - name: x\n    exp: m.tagEqual('region', '').sum(['svc']).service(['svc'], Layer.GENERAL)\n", data());
    assert_eq!(single(&out, "a"), 1);
    let out = run("  - name: x\n    exp: m.tagEqual('region', 'eu').sum(['svc']).service(['svc'], Layer.GENERAL)\n", data());
    assert_eq!(single(&out, "a"), 2);
    let out = run("  - name: x\n    exp: m.tagNotEqual('region', 'eu').sum(['svc']).service(['svc'], Layer.GENERAL)\n", data());
    assert_eq!(single(&out, "a"), 1);
    let out = run("  - name: x\n    exp: m.tagMatch('region', 'e.').sum(['svc']).service(['svc'], Layer.GENERAL)\n", data());
    assert_eq!(single(&out, "a"), 2);
    // Regex match is anchored: 'e' alone does not match 'eu'.
    let out = run("  - name: x\n    exp: m.tagMatch('region', 'e').sum(['svc']).service(['svc'], Layer.GENERAL)\n", data());
    assert!(out.emissions.is_empty());
}

#[test]
fn sf_divided_by_sf_drops_unmatched_labels() {
    let out = run(
        "  - name: r\n    exp: (a.sum(['svc', 'k']) / b.sum(['svc', 'k'])).sum(['svc']).service(['svc'], Layer.GENERAL)\n",
        vec![
            s("a", &[("svc", "x"), ("k", "1")], 30.0, T0),
            s("a", &[("svc", "x"), ("k", "2")], 1000.0, T0),
            s("b", &[("svc", "x"), ("k", "1")], 10.0, T0),
            s("b", &[("svc", "x"), ("k", "3")], 1.0, T0),
        ],
    );
    // Only k=1 matches: 30 / 10 = 3. `k` is an aggregation label outside the scope, so the
    // metric is labeled (metadata is static), with the empty label set after the final sum.
    assert_eq!(out.emissions[0].metric.function, MetricFunction::AvgLabeled);
    assert_eq!(
        out.emissions[0].value,
        MeterValue::Labeled(vec![(Labels::new(), 3)])
    );
}

#[test]
fn empty_operands_follow_oap_rules() {
    let body = "  - name: p\n    exp: (a.sum(['svc']) + b.sum(['svc'])).service(['svc'], Layer.GENERAL)\n  - name: m\n    exp: (a.sum(['svc']) * b.sum(['svc'])).service(['svc'], Layer.GENERAL)\n";
    let out = run(body, vec![s("a", &[("svc", "x")], 7.0, T0)]);
    // EMPTY + X = X; EMPTY * X = EMPTY.
    assert_eq!(out.emissions.len(), 1);
    assert_eq!(out.emissions[0].metric.name, "t_p");
    assert_eq!(single(&out, "x"), 7);
}

#[test]
fn safe_div_gives_zero_for_zero_divisor_and_nothing_for_empty() {
    let body = "  - name: q\n    exp: a.sum(['svc']).safeDiv(b.sum(['svc'])).service(['svc'], Layer.GENERAL)\n";
    let out = run(
        body,
        vec![
            s("a", &[("svc", "x")], 5.0, T0),
            s("b", &[("svc", "x")], 0.0, T0),
        ],
    );
    assert_eq!(single(&out, "x"), 0);
    let out = run(body, vec![s("a", &[("svc", "x")], 5.0, T0)]);
    assert!(out.emissions.is_empty());
    // Plain division by an EMPTY family divides by 0.0: +Infinity → clamps to i64::MAX.
    let out = run(
        "  - name: q\n    exp: (a.sum(['svc']) / b.sum(['svc'])).service(['svc'], Layer.GENERAL)\n",
        vec![s("a", &[("svc", "x")], 5.0, T0)],
    );
    assert_eq!(single(&out, "x"), i64::MAX);
}

#[test]
fn scalar_arithmetic_and_unary_minus() {
    let out = run(
        "  - name: a\n    exp: (100 - m.sum(['svc']) * 2).service(['svc'], Layer.GENERAL)\n  - name: b\n    exp: (-m.sum(['svc']) + 50).service(['svc'], Layer.GENERAL)\n",
        vec![s("m", &[("svc", "x")], 10.0, T0)],
    );
    let by = |n: &str| match &out
        .emissions
        .iter()
        .find(|e| e.metric.name == n)
        .unwrap()
        .value
    {
        MeterValue::Single(v) => *v,
        _ => panic!(),
    };
    assert_eq!(by("t_a"), 80);
    assert_eq!(by("t_b"), 40);
}

#[test]
fn increase_and_rate_keep_counter_state_across_batches() {
    let set = rules(
        "  - name: inc\n    exp: c.sum(['svc']).increase('PT1M').service(['svc'], Layer.GENERAL)\n  - name: rt\n    exp: c.sum(['svc']).rate('PT1M').service(['svc'], Layer.GENERAL)\n  - name: ir\n    exp: c.sum(['svc']).irate().service(['svc'], Layer.GENERAL)\n",
    );
    let value = |out: &RuleOutput, n: &str| match &out
        .emissions
        .iter()
        .find(|e| e.metric.name == n)
        .unwrap()
        .value
    {
        MeterValue::Single(v) => *v,
        _ => panic!(),
    };
    let first = set.evaluate(&fams(vec![s("c", &[("svc", "x")], 100.0, T0)]), &ctx());
    assert_eq!(value(&first, "t_inc"), 0);
    assert_eq!(value(&first, "t_rt"), 0);
    let second = set.evaluate(
        &fams(vec![s("c", &[("svc", "x")], 160.0, T0 + 60_000)]),
        &ctx(),
    );
    // 160 − 100 over 60 s.
    assert_eq!(value(&second, "t_inc"), 60);
    assert_eq!(value(&second, "t_rt"), 1);
    let third = set.evaluate(
        &fams(vec![s("c", &[("svc", "x")], 180.0, T0 + 70_000)]),
        &ctx(),
    );
    // irate: (180 − 160) / 10 s = 2.
    assert_eq!(value(&third, "t_ir"), 2);
}

#[test]
fn counter_state_of_churned_labels_is_evicted_and_live_series_keep_counting() {
    let set = rules(
        "  - name: inc\n    exp: c.sum(['svc', 'page']).increase('PT1M').service(['svc'], Layer.GENERAL)\n  - name: ir\n    exp: c.sum(['svc', 'page']).irate().service(['svc'], Layer.GENERAL)\n",
    );
    let at = |now_ms: i64| EvalContext {
        default_histogram_unit: TimeUnit::Seconds,
        now_ms,
    };
    // One batch per page, each page seen once (a request id in a label does this).
    for i in 0..2_000 {
        let page = format!("pages/p{i}");
        set.evaluate(
            &fams(vec![s("c", &[("svc", "x"), ("page", &page)], 1.0, T0)]),
            &at(T0),
        );
    }
    assert_eq!(set.counter_series(), 4_000);
    // Half an hour of one live page reporting every minute.
    let mut last = None;
    for minute in 1..=30 {
        let now = T0 + minute * 60_000;
        let out = set.evaluate(
            &fams(vec![s(
                "c",
                &[("svc", "x"), ("page", "pages/live")],
                100.0 * minute as f64,
                now,
            )]),
            &at(now),
        );
        last = out
            .emissions
            .iter()
            .find(|e| e.metric.name == "t_inc")
            .map(|e| e.value.clone());
    }
    assert_eq!(
        set.counter_series(),
        2,
        "only the live page's two windows remain"
    );
    // Its increase over the last minute is still right after the sweeps.
    assert_eq!(
        last,
        Some(MeterValue::Labeled(vec![(
            Labels::from([("page", "pages/live")]),
            100
        )]))
    );
}

#[test]
fn scope_names_join_non_empty_labels_with_delimiter() {
    let out = run(
        "  - name: a\n    exp: m.sum(['c', 's']).service(['c', 's'], Layer.GENERAL)\n  - name: b\n    exp: m.sum(['c', 's', 'p']).endpoint(['c', 's'], ['p'], '::', Layer.GENERAL)\n  - name: c\n    exp: \"m.sum(['c', 's', 'i']).instance(['c', 's'], '::', ['i'], '', Layer.MESH, { tags -> ['i': tags.i] })\"\n",
        vec![s("m", &[("c", "k8s"), ("s", "api"), ("p", "/x"), ("i", "pod")], 1.0, T0), s("m", &[("s", "solo")], 1.0, T0)],
    );
    let names: Vec<(String, String)> = out
        .emissions
        .iter()
        .map(|e| {
            (
                e.metric.name.clone(),
                format!(
                    "{}|{}|{}",
                    e.entity.service_name, e.entity.instance_name, e.entity.endpoint_name
                ),
            )
        })
        .collect();
    assert!(
        names.contains(&("t_a".into(), "k8s.api||".into())),
        "{names:?}"
    );
    assert!(names.contains(&("t_a".into(), "solo||".into())));
    assert!(names.contains(&("t_b".into(), "k8s::api||/x".into())));
    assert!(names.contains(&("t_c".into(), "k8s::api|pod|".into())));
    // The endpoint-less "solo" sample still gets an endpoint metric, but no endpoint traffic.
    assert!(names.contains(&("t_b".into(), "solo||".into())));
    let endpoints: Vec<_> = out
        .traffic
        .iter()
        .filter(|t| matches!(t, Traffic::Endpoint(_)))
        .collect();
    assert_eq!(endpoints.len(), 1);
    let instances: Vec<_> = out
        .traffic
        .iter()
        .filter(|t| matches!(t, Traffic::Instance(_)))
        .collect();
    assert_eq!(instances.len(), 1);
    assert!(out
        .emissions
        .iter()
        .any(|e| e.entity.layer == Layer::from_name("MESH").unwrap()));
}

#[test]
fn long_names_are_truncated() {
    let long = "s".repeat(100);
    let out = run(
        "  - name: a\n    exp: m.sum(['svc']).service(['svc'], Layer.GENERAL)\n",
        vec![s("m", &[("svc", long.as_str())], 1.0, T0)],
    );
    assert_eq!(out.emissions[0].entity.service_name.chars().count(), 70);
}

#[test]
fn metadata_selects_the_storage_function() {
    let set = rules(concat!(
        "  - name: a\n    exp: m.sum(['svc']).service(['svc'], Layer.GENERAL)\n",
        "  - name: b\n    exp: m.sum(['svc', 'x']).downsampling(SUM).service(['svc'], Layer.GENERAL)\n",
        "  - name: c\n    exp: m.sum(['svc']).downsampling(SUM_PER_MIN).instance(['svc'], ['i'], Layer.GENERAL)\n",
        "  - name: d\n    exp: m.sum(['svc', 'le']).histogram().histogram_percentile([50]).downsampling(SUM).endpoint(['svc'], ['e'], Layer.GENERAL)\n",
        "  - name: e\n    exp: m.max(['svc', 'x']).downsampling(DownsamplingType.MAX).service(['svc'], Layer.GENERAL)\n",
        "  - name: f\n    exp: m.downsampling(LATEST).service(['svc'], Layer.GENERAL)\n",
    ));
    let got: Vec<(String, &str, Scope)> = set
        .definitions()
        .into_iter()
        .map(|d| (d.name, d.function.name(), d.scope))
        .collect();
    assert_eq!(
        got,
        vec![
            ("t_a".into(), "avg", Scope::Service),
            ("t_b".into(), "sumLabeled", Scope::Service),
            ("t_c".into(), "sumPerMin", Scope::ServiceInstance),
            ("t_d".into(), "sumHistogramPercentile", Scope::Endpoint),
            ("t_e".into(), "maxLabeled", Scope::Service),
            ("t_f".into(), "latest", Scope::Service),
        ]
    );
    let err = RuleSet::from_sources(&[(
        "x.yaml",
        "metricPrefix: t\nmetricsRules:\n  - name: h\n    exp: m.histogram().downsampling(LATEST).service(['svc'], Layer.GENERAL)\n",
    )])
    .unwrap_err();
    assert!(err.to_string().contains("no storage function"), "{err}");
}

#[test]
fn file_filter_expprefix_and_closures() {
    let yaml = "metricPrefix: t\nfilter: \"{ tags -> tags.job == 'j' }\"\nexpPrefix: tag({tags -> tags.svc = 'p::' + tags.svc})\nexpSuffix: service(['svc'], Layer.GENERAL)\nmetricsRules:\n  - name: a\n    exp: m.sum(['svc'])\n  - name: b\n    exp: m.filter({ tags -> tags.k in ['1', '2'] }).tag({ tags -> if (tags['k'] == '1') { tags.k = 'one' } else { tags.k = 'other' } }).sum(['svc', 'k'])\n";
    let set = RuleSet::from_sources(&[("f.yaml", yaml)]).unwrap();
    let out = set.evaluate(
        &fams(vec![
            s("m", &[("job", "j"), ("svc", "a"), ("k", "1")], 2.0, T0),
            s("m", &[("job", "j"), ("svc", "a"), ("k", "3")], 3.0, T0),
            s(
                "m",
                &[("job", "other"), ("svc", "a"), ("k", "1")],
                100.0,
                T0,
            ),
        ]),
        &ctx(),
    );
    let a = out
        .emissions
        .iter()
        .find(|e| e.metric.name == "t_a")
        .unwrap();
    assert_eq!(a.entity.service_name, "p::a");
    assert_eq!(a.value, MeterValue::Single(5));
    let b = out
        .emissions
        .iter()
        .find(|e| e.metric.name == "t_b")
        .unwrap();
    assert_eq!(
        b.value,
        MeterValue::Labeled(vec![(labels(&[("k", "one")]), 2)])
    );
}

#[test]
fn a_failing_rule_does_not_stop_the_others() {
    let out = run(
        "  - name: bad\n    exp: m.tag({ tags -> tags.svc = tags.svc.substring(50) }).sum(['svc']).service(['svc'], Layer.GENERAL)\n  - name: good\n    exp: m.sum(['svc']).service(['svc'], Layer.GENERAL)\n",
        vec![s("m", &[("svc", "a")], 4.0, T0)],
    );
    assert_eq!(out.emissions.len(), 1);
    assert_eq!(out.emissions[0].metric.name, "t_good");
}

#[test]
fn count_and_value_filters() {
    let out = run(
        "  - name: c\n    exp: m.valueGreater(1).count(['pod']).tag({ tags -> tags.svc = 'x' }).service(['svc'], Layer.GENERAL)\n",
        vec![
            s("m", &[("pod", "p1")], 2.0, T0),
            s("m", &[("pod", "p1")], 3.0, T0),
            s("m", &[("pod", "p2")], 5.0, T0),
            s("m", &[("pod", "p3")], 1.0, T0),
        ],
    );
    // p3 is filtered out by valueGreater(1); distinct pods left: p1, p2.
    assert_eq!(
        out.emissions[0].value,
        MeterValue::Labeled(vec![(Labels::new(), 2)])
    );
}
