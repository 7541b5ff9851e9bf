//! MQE grammar: every dashboard expression parses; the whole grammar is covered; errors carry
//! ANTLR-style positions.

use skylark_query::mqe::{
    parse, parse_expression, Aggregation, BinaryOp, Expr, LabelAggregation, MathFunction, Order,
};

const CONTRACT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/docs/graphql-contract.md"
);

/// The backticked expressions listed under "Distinct expressions (66)".
fn contract_expressions() -> Option<Vec<String>> {
    let text = std::fs::read_to_string(CONTRACT).ok()?;
    let section = text.split("### Distinct expressions (66)").nth(1)?;
    let section = section.split("###").next()?;
    Some(
        section
            .lines()
            .filter_map(|l| l.strip_prefix("- `"))
            .filter_map(|l| l.strip_suffix('`'))
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn every_dashboard_expression_parses() {
    let Some(exprs) = contract_expressions() else {
        eprintln!("skipping: {CONTRACT} is absent");
        return;
    };
    assert_eq!(exprs.len(), 66);
    for e in &exprs {
        let parsed = parse(e).unwrap_or_else(|err| panic!("{e}: {err}"));
        // Display reproduces ANTLR's getText (no whitespace), which is what these are.
        assert_eq!(&parsed.to_string(), e);
    }
}

#[test]
fn relabels_keeps_selector_and_both_labels() {
    let e = parse("relabels(meter_x{p='50,75'},p='50,75',percentile=\"P50,P75\")").unwrap();
    let Expr::Relabels(inner, src, dst) = e else {
        panic!("not relabels")
    };
    let Expr::Metric(m) = *inner else { panic!() };
    assert_eq!(m.name, "meter_x");
    let sel = m.labels.unwrap();
    assert_eq!(
        (sel[0].name.as_str(), sel[0].value.as_str()),
        ("p", "50,75")
    );
    assert_eq!((src.name.as_str(), src.value.as_str()), ("p", "50,75"));
    assert_eq!(
        (dst.name.as_str(), dst.value.as_str()),
        ("percentile", "P50,P75")
    );
}

#[test]
fn precedence_and_associativity() {
    // a + b * c  →  a + (b * c)
    let e = parse("a + b * c").unwrap();
    let Expr::Binary { op, right, .. } = e else {
        panic!()
    };
    assert_eq!(op, BinaryOp::Add);
    assert!(matches!(
        *right,
        Expr::Binary {
            op: BinaryOp::Mul,
            ..
        }
    ));
    // a - b - c  →  (a - b) - c
    let Expr::Binary { left, .. } = parse("a - b - c").unwrap() else {
        panic!()
    };
    assert!(matches!(
        *left,
        Expr::Binary {
            op: BinaryOp::Sub,
            ..
        }
    ));
    // compare binds looser than +, && looser than compare
    let Expr::Binary { op, left, .. } = parse("a + 1 > 2 && b < 3").unwrap() else {
        panic!()
    };
    assert_eq!(op, BinaryOp::And);
    assert!(matches!(
        *left,
        Expr::Binary {
            op: BinaryOp::Gt,
            ..
        }
    ));
    let Expr::Binary { bool_modifier, .. } = parse("a >= BOOL 3").unwrap() else {
        panic!()
    };
    assert!(bool_modifier);
}

#[test]
fn whole_grammar_parses() {
    let cases = [
        "(meter_a + 1.5) % 2",
        "meter_a{} / 10",
        "meter_a{_='x', k=\"y\"}",
        "count(meter_a) - latest(meter_a) + sum(meter_a) * max(meter_a) / min(meter_a)",
        "abs(ceil(floor(meter_a)))",
        "log(meter_a) + log2(meter_a) + log10(meter_a)",
        "round(meter_a / 3, 2)",
        "increase(meter_a, 2)",
        "rate(meter_a{p='50'}, 5)",
        "view_as_seq(meter_a, meter_b)",
        "is_present(meter_a)",
        "top_n(meter_a, 10, des)",
        "top_n(meter_a, 10, ASC, attr0='x', attr5!='y')",
        "top_n_of(top_n(meter_a, 10, des), top_n(meter_b, 10, des), 5, des)",
        "aggregate_labels(meter_a, sum)",
        "aggregate_labels(meter_a, avg(p, _))",
        "sort_values(meter_a, 5, des, avg)",
        "sort_values(meter_a, 5, asc, )",
        "sort_label_values(meter_a, asc, p, q)",
        "baseline(meter_a, upper)",
        "meter_a == 1 || meter_b != 2",
        "meter_a <= bool 1",
        "12abc + avgx",
    ];
    for c in cases {
        let e = parse(c).unwrap_or_else(|err| panic!("{c}: {err}"));
        // Re-parsing the getText-style text gives the same tree (except after `bool`, where
        // ANTLR's getText glues the modifier to the next token, as OAP's messages show).
        if !c.contains("bool") {
            assert_eq!(parse(&e.to_string()).unwrap(), e, "{c}");
        }
    }
    assert!(matches!(
        parse("avg(meter_a)").unwrap(),
        Expr::Aggregation(Aggregation::Avg, _)
    ));
    assert!(matches!(
        parse("aggregate_labels(m, max)").unwrap(),
        Expr::AggregateLabels(_, LabelAggregation::Max, _)
    ));
    assert!(matches!(
        parse("log10(m)").unwrap(),
        Expr::Math(MathFunction::Log10, _)
    ));
    // `log` without parentheses is an ordinary metric name.
    assert!(matches!(parse("log").unwrap(), Expr::Metric(_)));
    let Expr::TopN(t) = parse("top_n(m, 3, Des)").unwrap() else {
        panic!()
    };
    assert_eq!((t.n, t.order), (3, Order::Des));
}

#[test]
fn keywords_are_not_metric_names() {
    let err = parse("value").unwrap_err();
    assert_eq!((err.line, err.column), (1, 0));
    assert!(err.to_string().starts_with("line 1:0 "), "{err}");
}

#[test]
fn errors_carry_line_and_column() {
    let err = parse("avg(meter_a").unwrap_err();
    assert_eq!((err.line, err.column), (1, 11));
    assert_eq!(
        err.to_string(),
        "line 1:11 mismatched input '<EOF>' expecting ')'"
    );

    let err = parse("meter_a{p=50}").unwrap_err();
    assert_eq!((err.line, err.column), (1, 10));

    let err = parse("relabels(m,\n  p='1', x)").unwrap_err();
    assert_eq!((err.line, err.column), (2, 10));

    let err = parse("m{p='unterminated}").unwrap_err();
    assert_eq!((err.line, err.column), (1, 4));
    assert!(err.message.starts_with("token recognition error"));

    let err = parse("top_n(m, x, des)").unwrap_err();
    assert_eq!(err.column, 9);
}

#[test]
fn oap_ignores_trailing_tokens_but_root_does_not() {
    assert!(parse_expression("meter_a )").is_ok());
    assert!(parse("meter_a )").is_err());
}
