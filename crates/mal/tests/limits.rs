//! Rule expressions that nest too deeply or run too long are refused with `file:line:col`, on a
//! thread with a tokio worker's 2 MiB stack, instead of overflowing it; Java-style integer
//! arithmetic on values from labels never panics.
use skylark_core::{MeterValue, Sample, SampleFamilies};
use skylark_mal::{parse_expression, EvalContext, RuleSet, TimeUnit, MAX_HEIGHT, MAX_NESTING};

const T0: i64 = 1_767_225_600_000;

fn on_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("the parser must not crash the thread")
}

fn rule_file(exp: &str) -> String {
    format!("metricPrefix: t\nmetricsRules:\n  - name: a\n    exp: \"{exp}\"\n")
}

fn load_error(exp: String) -> String {
    on_worker_stack(move || {
        RuleSet::from_sources(&[("deep.yaml", &rule_file(&exp))])
            .expect_err("must not load")
            .to_string()
    })
}

fn families(samples: &[(&[(&str, &str)], f64)]) -> SampleFamilies {
    let mut m = SampleFamilies::default();
    for (labels, value) in samples {
        m.entry("m".to_string()).or_default().samples.push(Sample {
            name: "m".into(),
            labels: labels.iter().copied().collect(),
            value: *value,
            timestamp_ms: T0,
        });
    }
    m
}

fn single_value(rules: &RuleSet, fams: &SampleFamilies) -> i64 {
    let ctx = EvalContext {
        default_histogram_unit: TimeUnit::Seconds,
        now_ms: T0 + 60_000,
    };
    let out = rules.evaluate(fams, &ctx);
    match &out
        .emissions
        .first()
        .unwrap_or_else(|| panic!("{out:?}"))
        .value
    {
        MeterValue::Single(v) => *v,
        other => panic!("{other:?}"),
    }
}

#[test]
fn deep_nesting_and_long_chains_are_located_errors() {
    let nested = format!("{}m{}", "(".repeat(1000), ")".repeat(1000));
    let e = load_error(nested);
    assert!(
        e.starts_with("deep.yaml:4:") && e.contains(&format!("nests deeper than {MAX_NESTING}")),
        "{e}"
    );
    let negations = format!("{}1", "-".repeat(5000));
    assert!(load_error(negations).contains("nests deeper"));
    let chain = vec!["m"; 3000].join(" + ");
    let e = load_error(chain);
    assert!(
        e.starts_with("deep.yaml:4:") && e.contains(&format!("nests deeper than {MAX_HEIGHT}")),
        "{e}"
    );
    let calls = format!("m{}", ".sum(['a'])".repeat(1000));
    assert!(load_error(calls).contains("nests deeper"));
    let closures = format!(
        "m.tag({{tags -> {}tags.a = 'x'{} }})",
        "if (tags.a == 'b') { ".repeat(400),
        " }".repeat(400)
    );
    assert!(load_error(closures).contains("nests deeper"));
    let tokens = vec!["m"; 6000].join("+");
    let e = on_worker_stack(move || parse_expression(&tokens).unwrap_err().to_string());
    assert!(e.contains("more than the 10000 allowed"), "{e}");
}

#[test]
fn the_largest_accepted_chain_loads_and_evaluates_on_a_worker_stack() {
    let terms = MAX_HEIGHT / 2;
    let exp = format!(
        "({}).sum(['svc']).service(['svc'], Layer.GENERAL)",
        vec!["m"; terms].join(" + ")
    );
    let value = on_worker_stack(move || {
        let rules = RuleSet::from_sources(&[("ok.yaml", &rule_file(&exp))]).unwrap();
        single_value(&rules, &families(&[(&[("svc", "a")], 2.0)]))
    });
    assert_eq!(value, 2 * terms as i64);
}

#[test]
fn long_min_remainder_and_negation_wrap_as_in_java() {
    let min = i64::MIN.to_string();
    // `Long.MIN_VALUE % -1` is 0 and `-Long.MIN_VALUE` is Long.MIN_VALUE in Java; both panicked.
    for (closure, expected) in [
        ("tags.r = ((tags.v as Long) % -1) as String", "0"),
        ("tags.r = (-(tags.v as Long)) as String", min.as_str()),
        ("tags.r = ((tags.v as Long) % 7) as String", "-1"),
    ] {
        let exp = format!(
            "m.tag({{tags -> {closure}}}).sum(['svc', 'r']).service(['svc'], Layer.GENERAL)"
        );
        let yaml = format!("metricPrefix: t\nmetricsRules:\n  - name: a\n    exp: \"{exp}\"\n");
        let rules = RuleSet::from_sources(&[("min.yaml", &yaml)]).unwrap();
        let ctx = EvalContext {
            default_histogram_unit: TimeUnit::Seconds,
            now_ms: T0 + 60_000,
        };
        let out = rules.evaluate(&families(&[(&[("svc", "a"), ("v", &min)], 1.0)]), &ctx);
        let MeterValue::Labeled(l) = &out.emissions[0].value else {
            panic!("{out:?}")
        };
        let r: Vec<&str> = l.iter().filter_map(|(labels, _)| labels.get("r")).collect();
        assert_eq!(r, [expected], "{closure}");
    }
}

#[test]
fn the_deepest_accepted_nesting_loads_and_evaluates_on_a_worker_stack() {
    let parens = format!(
        "{}m{}.sum(['svc']).service(['svc'], Layer.GENERAL)",
        "(".repeat(45),
        ")".repeat(45)
    );
    let ifs = format!(
        "m.tag({{tags -> {}tags.svc = 'b'{} }}).sum(['svc']).service(['svc'], Layer.GENERAL)",
        "if (tags.svc == 'a') { ".repeat(90),
        " }".repeat(90)
    );
    for exp in [parens, ifs] {
        let value = on_worker_stack(move || {
            let rules = RuleSet::from_sources(&[("ok.yaml", &rule_file(&exp))])
                .unwrap_or_else(|e| panic!("{e}"));
            single_value(&rules, &families(&[(&[("svc", "a")], 3.0)]))
        });
        assert_eq!(value, 3);
    }
}
