//! Work the evaluator shares across rules (file filters run once per batch, families are read
//! in place, label groups are found by scan or index) must not change what rules produce.
use skylark_core::{Labels, MeterValue, Sample, SampleFamilies};
use skylark_mal::{EvalContext, RuleOutput, RuleSet, TimeUnit};

const T0: i64 = 1_767_225_600_000;

mod common;
use common::families as fams;

fn s(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
    common::sample(name, labels, value, T0)
}

fn ctx() -> EvalContext {
    EvalContext {
        default_histogram_unit: TimeUnit::Seconds,
        now_ms: T0 + 60_000,
    }
}

fn file(prefix: &str, filter: Option<&str>, rules: &[(&str, &str)]) -> String {
    let mut y = format!("metricPrefix: {prefix}\n");
    if let Some(f) = filter {
        y.push_str(&format!("filter: \"{f}\"\n"));
    }
    y.push_str("metricsRules:\n");
    for (name, exp) in rules {
        y.push_str(&format!("  - name: {name}\n    exp: {exp}\n"));
    }
    y
}

fn run(files: &[String], batch: &SampleFamilies) -> RuleOutput {
    let sources: Vec<(&str, &str)> = files.iter().map(|f| ("t.yaml", f.as_str())).collect();
    RuleSet::from_sources(&sources)
        .unwrap()
        .evaluate(batch, &ctx())
}

/// The single value of `metric` for service `svc`, `None` when nothing was emitted.
fn single(out: &RuleOutput, metric: &str, svc: &str) -> Option<i64> {
    let e = out
        .emissions
        .iter()
        .find(|e| e.metric.name == metric && e.entity.service_name == svc)?;
    match &e.value {
        MeterValue::Single(v) => Some(*v),
        other => panic!("{metric} is not single: {other:?}"),
    }
}

fn sum(metric: &str) -> String {
    format!("{metric}.sum(['svc']).service(['svc'], Layer.GENERAL)")
}

#[test]
fn one_filter_shared_by_files_reading_different_metrics() {
    let w = "{ tags -> tags.platform == 'w' }";
    let files = [
        file("a", Some(w), &[("m1", &sum("m1")), ("m2", &sum("m2"))]),
        file("b", Some(w), &[("m1", &sum("m1")), ("m3", &sum("m3"))]),
        file(
            "c",
            Some("{ tags -> tags.platform == 'x' }"),
            &[("m1", &sum("m1"))],
        ),
        file("d", None, &[("m2", &sum("m2"))]),
    ];
    let batch = fams(vec![
        s("m1", &[("svc", "s"), ("platform", "w")], 1.0),
        s("m1", &[("svc", "s"), ("platform", "x")], 10.0),
        s("m1", &[("svc", "s"), ("platform", "w")], 100.0),
        s("m2", &[("svc", "s"), ("platform", "x")], 5.0),
        s("m3", &[("svc", "s"), ("platform", "w")], 7.0),
        s("m3", &[("svc", "s")], 70.0),
    ]);
    let out = run(&files, &batch);
    assert_eq!(single(&out, "a_m1", "s"), Some(101));
    assert_eq!(single(&out, "b_m1", "s"), Some(101));
    assert_eq!(single(&out, "c_m1", "s"), Some(10));
    // Every m2 sample fails the `w` filter: no value at all, but the unfiltered file sees it.
    assert_eq!(single(&out, "a_m2", "s"), None);
    assert_eq!(single(&out, "d_m2", "s"), Some(5));
    // A sample without the label reads null, which is not 'w'.
    assert_eq!(single(&out, "b_m3", "s"), Some(7));
}

#[test]
fn a_filter_failing_on_one_metric_leaves_only_rules_reading_it_unfiltered() {
    // `toInteger()` fails on 'oops': rules reading m1 see all their input unfiltered.
    let files = [file(
        "f",
        Some("{ tags -> tags.code.toInteger() >= 500 }"),
        &[
            ("m1", &sum("m1")),
            ("m2", &sum("m2")),
            (
                "both",
                "(m1.sum(['svc']) + m2.sum(['svc'])).service(['svc'], Layer.GENERAL)",
            ),
        ],
    )];
    let batch = fams(vec![
        s("m1", &[("svc", "s"), ("code", "200")], 1.0),
        s("m1", &[("svc", "s"), ("code", "oops")], 2.0),
        s("m1", &[("svc", "s"), ("code", "503")], 4.0),
        s("m2", &[("svc", "s"), ("code", "200")], 10.0),
        s("m2", &[("svc", "s"), ("code", "500")], 20.0),
    ]);
    let out = run(&files, &batch);
    assert_eq!(single(&out, "f_m1", "s"), Some(7));
    assert_eq!(single(&out, "f_m2", "s"), Some(20));
    assert_eq!(single(&out, "f_both", "s"), Some(37));
}

#[test]
fn filters_using_the_whole_label_map_see_every_label() {
    let files = [
        file(
            "size",
            Some("{ tags -> tags.size() > 2 }"),
            &[("m", &sum("m"))],
        ),
        file(
            "has",
            Some("{ tags -> tags.containsKey('b') }"),
            &[("m", &sum("m"))],
        ),
        file(
            "local",
            Some("{ tags -> def t = tags; t.b == '1' }"),
            &[("m", &sum("m"))],
        ),
    ];
    let batch = fams(vec![
        s("m", &[("svc", "s"), ("a", "1"), ("b", "1")], 1.0),
        s("m", &[("svc", "s"), ("a", "1")], 10.0),
        s("m", &[("svc", "s"), ("b", "2")], 100.0),
    ]);
    let out = run(&files, &batch);
    assert_eq!(single(&out, "size_m", "s"), Some(1));
    assert_eq!(single(&out, "has_m", "s"), Some(101));
    assert_eq!(single(&out, "local_m", "s"), Some(1));
}

#[test]
fn filter_verdicts_follow_each_samples_own_labels() {
    // Many samples share the labels the filter reads; the ones that differ still decide alone.
    let files = [file(
        "v",
        Some("{ tags -> tags.env == 'prod' && tags['zone'] != 'z9' }"),
        &[("m", &sum("m"))],
    )];
    let mut samples = Vec::new();
    for i in 0..50 {
        let zone = if i % 10 == 9 { "z9" } else { "z1" };
        let env = if i % 7 == 0 { "dev" } else { "prod" };
        samples.push(s(
            "m",
            &[("svc", "s"), ("env", env), ("zone", zone)],
            f64::from(i),
        ));
    }
    let want: i64 = (0..50)
        .filter(|i| i % 10 != 9 && i % 7 != 0)
        .map(i64::from)
        .sum();
    let out = run(&files, &fams(samples));
    assert_eq!(single(&out, "v_m", "s"), Some(want));
}

#[test]
fn many_label_groups_keep_first_seen_order_and_sums() {
    let files = [file(
        "g",
        None,
        &[(
            "by_k",
            "m.sum(['svc', 'k']).service(['svc'], Layer.GENERAL)",
        )],
    )];
    // 40 groups (past the point where lookups switch from scanning to an index), each seen
    // twice, in a scrambled first-seen order.
    let order: Vec<u32> = (0..40).map(|i| (i * 17) % 40).collect();
    let mut samples = Vec::new();
    for round in 0..2 {
        for k in &order {
            samples.push(s(
                "m",
                &[("svc", "s"), ("k", &format!("k{k}"))],
                f64::from(k * 10 + round),
            ));
        }
    }
    let out = run(&files, &fams(samples));
    let e = out
        .emissions
        .iter()
        .find(|e| e.metric.name == "g_by_k")
        .unwrap();
    let MeterValue::Labeled(values) = &e.value else {
        panic!("not labeled: {:?}", e.value)
    };
    let want: Vec<(Labels, i64)> = order
        .iter()
        .map(|k| {
            let labels: Labels = [("k".to_string(), format!("k{k}"))].into_iter().collect();
            (labels, i64::from(k * 20 + 1))
        })
        .collect();
    assert_eq!(values, &want);
}

#[test]
fn functions_that_keep_every_sample_or_change_values_leave_the_batch_alone() {
    let files = [file(
        "k",
        None,
        &[
            ("kept", &sum("m.valueGreaterEqual(0).tagEqual('svc', 's')")),
            ("doubled", &sum("(m * 2)")),
            ("plain", &sum("m")),
        ],
    )];
    let batch = fams(vec![
        s("m", &[("svc", "s")], 1.0),
        s("m", &[("svc", "s")], 2.0),
    ]);
    let out = run(&files, &batch);
    assert_eq!(single(&out, "k_kept", "s"), Some(3));
    assert_eq!(single(&out, "k_doubled", "s"), Some(6));
    // Rules after one that scaled the family still read the original values.
    assert_eq!(single(&out, "k_plain", "s"), Some(3));
}
