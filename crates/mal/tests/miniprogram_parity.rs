//! Our mini-program rule files must behave like upstream's on the same input, except where
//! Skylark means to differ: request_cpm is true calls per minute (SUM_PER_MIN, upstream's AVG is
//! calls per export), percentiles sum bucket counts (SUM) and calls/successful calls are extra.
use skylark_core::{MeterValue, MetricFunction, Sample, SampleFamilies, SampleFamily};
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
    for (page, launch, status) in [
        ("pages/index/index", 812.0, "200"),
        ("pages/cart/cart", 1203.5, "0"),
    ] {
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
            ("http_response_status_code", status),
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

/// What Skylark's files change on purpose, by metric name.
fn intended_function(name: &str, upstream: MetricFunction) -> MetricFunction {
    if name.ends_with("_request_cpm") {
        MetricFunction::SumPerMin
    } else if name.ends_with("_request_duration_percentile") {
        MetricFunction::SumHistogramPercentile
    } else {
        upstream
    }
}

/// An emission without its storage function: what the rules computed, not how it is stored.
fn computed(out: RuleOutput) -> (Vec<String>, Vec<String>) {
    let mut e: Vec<String> = out
        .emissions
        .iter()
        .map(|e| {
            format!(
                "{} {:?} {} {:?}",
                e.metric.name, e.entity, e.minute, e.value
            )
        })
        .collect();
    let mut t: Vec<String> = out.traffic.iter().map(|t| format!("{t:?}")).collect();
    e.sort();
    t.sort();
    (e, t)
}

#[test]
fn upstream_rule_files_keep_oap_storage_functions() {
    if !PathBuf::from(UPSTREAM).is_dir() {
        eprintln!("skipping: {UPSTREAM} is absent");
        return;
    }
    let upstream = load(UPSTREAM);
    let defs = upstream.definitions();
    let function = |n: &str| defs.iter().find(|d| d.name == n).map(|d| d.function);
    // OAP's default AVG: calls per export, per-bucket averages for percentiles.
    for name in [
        "meter_wechat_mp_request_cpm",
        "meter_wechat_mp_endpoint_request_cpm",
        "meter_alipay_mp_instance_request_cpm",
    ] {
        assert_eq!(function(name), Some(MetricFunction::Avg), "{name}");
    }
    assert_eq!(
        function("meter_wechat_mp_request_duration_percentile"),
        Some(MetricFunction::AvgHistogramPercentile)
    );
    assert_eq!(function("meter_wechat_mp_request_success_count"), None);
}

#[test]
fn our_rule_files_match_upstream_except_where_meant() {
    if !PathBuf::from(UPSTREAM).is_dir() {
        eprintln!("skipping: {UPSTREAM} is absent");
        return;
    }
    let upstream = load(UPSTREAM);
    let ours = load(OURS);
    let our_defs = ours.definitions();
    let up_defs = upstream.definitions();
    for up in &up_defs {
        let mine = our_defs
            .iter()
            .find(|d| d.name == up.name)
            .unwrap_or_else(|| panic!("{} is missing from our rules", up.name));
        assert_eq!(mine.scope, up.scope, "{}", up.name);
        assert_eq!(mine.percentile_ranks, up.percentile_ranks, "{}", up.name);
        assert_eq!(
            mine.function,
            intended_function(&up.name, up.function),
            "{}",
            up.name
        );
    }
    let mut extra: Vec<&str> = our_defs
        .iter()
        .filter(|d| !up_defs.iter().any(|u| u.name == d.name))
        .map(|d| {
            assert_eq!(d.function, MetricFunction::Sum, "{}", d.name);
            d.name.as_str()
        })
        .collect();
    extra.sort();
    let mut want = Vec::new();
    for p in ["meter_alipay_mp", "meter_wechat_mp"] {
        for scope in ["", "endpoint_", "instance_"] {
            for m in ["request_count", "request_success_count"] {
                want.push(if scope == "instance_" {
                    format!("{p}_instance_{m}")
                } else {
                    format!("{p}_{scope}{m}")
                });
            }
        }
    }
    want.sort();
    assert_eq!(extra, want);

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
        let a = computed(upstream.evaluate(b, &ctx));
        let (mut o_emissions, o_traffic) = computed(ours.evaluate(b, &ctx));
        // The same values as upstream for every metric upstream has.
        o_emissions.retain(|e| !e.contains("_request_count ") && !e.contains("_success_count "));
        total += a.0.len();
        assert_eq!((o_emissions, o_traffic), a);
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
    // request_cpm: 7 + 7, stored as calls per minute.
    let cpm = find("meter_wechat_mp_request_cpm");
    assert_eq!(cpm[0].value, MeterValue::Single(14));
    assert_eq!(cpm[0].metric.function, MetricFunction::SumPerMin);
    // Calls 14, of which the index page's 7 answered 200 and the cart page's 7 had status "0".
    assert_eq!(
        find("meter_wechat_mp_request_count")[0].value,
        MeterValue::Single(14)
    );
    let success = |name: &str, page: Option<&str>| -> i64 {
        find(name)
            .iter()
            .filter(|e| page.is_none_or(|p| e.entity.endpoint_name == p))
            .map(|e| match e.value {
                MeterValue::Single(v) => v,
                _ => panic!("{name} is a single value"),
            })
            .sum()
    };
    assert_eq!(success("meter_wechat_mp_request_success_count", None), 7);
    assert_eq!(
        success(
            "meter_wechat_mp_endpoint_request_success_count",
            Some("pages/index/index")
        ),
        7
    );
    // A page whose calls all failed still gets a row: 0, not "no data".
    let cart: Vec<_> = find("meter_wechat_mp_endpoint_request_success_count")
        .into_iter()
        .filter(|e| e.entity.endpoint_name == "pages/cart/cart")
        .collect();
    assert!(!cart.is_empty());
    assert!(cart.iter().all(|e| e.value == MeterValue::Single(0)));
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
