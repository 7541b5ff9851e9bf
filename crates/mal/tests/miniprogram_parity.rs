//! Our mini-program rule files must behave exactly like upstream's on the same input.
use skylark_core::{MeterValue, Sample, SampleFamilies, SampleFamily};
use skylark_mal::{EvalContext, RuleOutput, RuleSet, TimeUnit};
use std::path::PathBuf;

const UPSTREAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/skywalking/rules/otel-rules/miniprogram"
);
const OURS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../otel-rules/miniprogram");
const FILES: [&str; 4] = [
    "wechat-mini-program.yaml",
    "wechat-mini-program-instance.yaml",
    "alipay-mini-program.yaml",
    "alipay-mini-program-instance.yaml",
];
const T0: i64 = 1_767_225_600_000;
const BOUNDS: [&str; 11] = [
    "10.0", "25.0", "50.0", "100.0", "250.0", "500.0", "1000.0", "2500.0", "5000.0", "10000.0",
    "Infinity",
];

fn resource(platform: &str, service: &str, instance: Option<&str>, ts: i64) -> SampleFamilies {
    let mut base: Vec<(String, String)> = vec![
        ("service_name".into(), service.into()),
        ("miniprogram_platform".into(), platform.into()),
        ("job_name".into(), service.into()),
    ];
    if let Some(i) = instance {
        base.push(("service_instance_id".into(), i.into()));
    }
    let mut fams = SampleFamilies::default();
    let mut add = |name: &str, extra: &[(&str, &str)], value: f64, ts: i64| {
        let mut labels: skylark_core::Labels = base.iter().cloned().collect();
        for (k, v) in extra {
            labels.insert(k.to_string(), v.to_string());
        }
        fams.entry(name.to_string())
            .or_default()
            .samples
            .push(Sample {
                name: name.into(),
                labels,
                value,
                timestamp_ms: ts,
            });
    };
    for (page, launch) in [("pages/index/index", 812.0), ("pages/cart/cart", 1203.5)] {
        let p = [("miniprogram_page_path", page)];
        add("miniprogram_app_launch_duration", &p, launch, ts);
        add(
            "miniprogram_first_render_duration",
            &p,
            launch / 2.0,
            ts + 10,
        );
        add("miniprogram_route_duration", &p, 0.4, ts + 20);
        add("miniprogram_script_duration", &p, 33.0, ts + 30);
        add("miniprogram_package_load_duration", &p, 120.0, ts + 40);
        add("miniprogram_first_paint_time", &p, ts as f64, ts);
        let flush = ts + 61_000;
        let req = [
            ("miniprogram_page_path", page),
            ("http_request_method", "GET"),
            ("server_address", "api.example.com"),
        ];
        add("miniprogram_request_duration_count", &req, 7.0, flush);
        add("miniprogram_request_duration_sum", &req, 1234.0, flush);
        for (i, le) in BOUNDS.iter().enumerate() {
            let mut l = req.to_vec();
            l.push(("le", le));
            add("miniprogram_request_duration", &l, (i % 3) as f64, flush);
        }
    }
    fams
}

fn load(dir: &str) -> RuleSet {
    let paths: Vec<PathBuf> = FILES.iter().map(|f| PathBuf::from(dir).join(f)).collect();
    RuleSet::load(&paths).unwrap()
}

fn canonical(out: RuleOutput) -> (Vec<String>, Vec<String>) {
    let mut e: Vec<String> = out.emissions.iter().map(|e| format!("{e:?}")).collect();
    let mut t: Vec<String> = out.traffic.iter().map(|t| format!("{t:?}")).collect();
    e.sort();
    t.sort();
    (e, t)
}

#[test]
fn our_rule_files_match_upstream() {
    if !PathBuf::from(UPSTREAM).is_dir() {
        eprintln!("skipping: {UPSTREAM} is absent");
        return;
    }
    let upstream = load(UPSTREAM);
    let ours = load(OURS);
    let mut up_defs = upstream.definitions();
    let mut our_defs = ours.definitions();
    up_defs.sort_by(|a, b| a.name.cmp(&b.name));
    our_defs.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(our_defs, up_defs);
    let ctx = EvalContext {
        default_histogram_unit: TimeUnit::Seconds,
        now_ms: T0 + 120_000,
    };
    let batches = [
        resource("wechat", "mini-wechat", Some("device-1"), T0),
        resource("wechat", "mini-wechat", None, T0 + 5_000),
        resource("alipay", "mini-alipay", Some("device-9"), T0),
        resource("alipay", "mini-alipay", None, T0),
        resource("web", "not-a-mini-program", Some("x"), T0),
    ];
    let mut total = 0;
    for b in &batches {
        let a = canonical(upstream.evaluate(b, &ctx));
        let o = canonical(ours.evaluate(b, &ctx));
        total += a.0.len();
        assert_eq!(o, a);
    }
    assert!(total > 40, "expected many emissions, got {total}");
}

#[test]
fn wechat_values_are_as_worked_by_hand() {
    if !PathBuf::from(OURS).is_dir() {
        eprintln!("skipping: {OURS} is absent");
        return;
    }
    let ours = load(OURS);
    let ctx = EvalContext {
        default_histogram_unit: TimeUnit::Seconds,
        now_ms: T0,
    };
    let out = ours.evaluate(&resource("wechat", "mini-wechat", None, T0), &ctx);
    let find = |n: &str| {
        out.emissions
            .iter()
            .filter(|e| e.metric.name == n)
            .collect::<Vec<_>>()
    };
    // avg over both pages: (812 + 1203.5) / 2 = 1007.75 → 1008.
    assert_eq!(
        find("meter_wechat_mp_app_launch_duration")[0].value,
        MeterValue::Single(1008)
    );
    // route_duration 0.4 → coerced to 1.
    assert_eq!(
        find("meter_wechat_mp_route_duration")[0].value,
        MeterValue::Single(1)
    );
    // request_cpm: 7 + 7.
    assert_eq!(
        find("meter_wechat_mp_request_cpm")[0].value,
        MeterValue::Single(14)
    );
    let p = find("meter_wechat_mp_request_duration_percentile");
    let MeterValue::Histogram(groups) = &p[0].value else {
        panic!()
    };
    // Two pages summed per bucket: (i % 3) × 2; bounds in ms unchanged.
    assert_eq!(groups[0].buckets[0], (10, 0));
    assert_eq!(groups[0].buckets[1], (25, 2));
    assert_eq!(groups[0].buckets[10], (i64::MAX, 2));
    // Instance metrics without service.instance.id: written under instance "", no instance traffic.
    let inst = find("meter_wechat_mp_instance_request_cpm");
    assert_eq!(inst[0].entity.instance_name, "");
    assert!(!out
        .traffic
        .iter()
        .any(|t| matches!(t, skylark_core::traffic::Traffic::Instance(_))));
    assert_eq!(find("meter_wechat_mp_endpoint_request_cpm").len(), 2);
    assert!(out
        .emissions
        .iter()
        .all(|e| e.entity.layer == skylark_core::Layer::WECHAT_MINI_PROGRAM));
}

#[test]
fn log_mal_error_count_is_sum_labeled_per_exception_type() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/log-mal-rules");
    let paths = vec![
        PathBuf::from(dir).join("miniprogram-wechat.yaml"),
        PathBuf::from(dir).join("miniprogram-alipay.yaml"),
    ];
    let set = RuleSet::load(&paths).unwrap();
    let mut fams = SampleFamilies::default();
    let labels = [
        ("service_name", "mini"),
        ("exception_type", "js"),
        ("miniprogram_platform", "alipay"),
    ];
    fams.insert(
        "miniprogram_error_count".into(),
        SampleFamily::new(vec![Sample {
            name: "miniprogram_error_count".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: 1.0,
            timestamp_ms: T0,
        }]),
    );
    let out = set.evaluate(
        &fams,
        &EvalContext {
            default_histogram_unit: TimeUnit::Seconds,
            now_ms: T0,
        },
    );
    assert_eq!(out.emissions.len(), 1);
    let e = &out.emissions[0];
    assert_eq!(e.metric.name, "meter_alipay_mp_error_count");
    assert_eq!(e.metric.function.name(), "sumLabeled");
    assert_eq!(e.entity.layer, skylark_core::Layer::ALIPAY_MINI_PROGRAM);
    let key: skylark_core::Labels = [("exception_type".to_string(), "js".to_string())]
        .into_iter()
        .collect();
    assert_eq!(e.value, MeterValue::Labeled(vec![(key, 1)]));
}
