//! Conformance checks for records: logs and trace segments.
use crate::{
    LogQuery, RetentionPolicy, Storage, StoredLog, TraceOrder, TraceQuery, TraceState,
    LOG_CONTENT_MAX_BYTES, LOG_TAGS_MAX,
};
use skylark_core::{
    ContentType, EndpointId, InstanceId, Layer, LogRecord, Segment, SegmentRecord, ServiceId, Span,
    SpanLayer, SpanType,
};

const WECHAT: &str = "mini-program-sim-wechat";
const ALIPAY: &str = "mini-program-sim-alipay";
/// 2026-11-24 06:00 UTC.
const T0: i64 = 1_795_500_000_000;
const DAY: i64 = 86_400_000;

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn log(service: &str, instance: &str, endpoint: &str, at: i64, content: &str) -> LogRecord {
    LogRecord {
        service: service.into(),
        service_instance: instance.into(),
        endpoint: endpoint.into(),
        layer: Layer::WECHAT_MINI_PROGRAM,
        timestamp_ms: at,
        trace_id: None,
        segment_id: None,
        span_id: None,
        content_type: ContentType::Text,
        content: content.into(),
        tags: tags(&[("platform", "wechat")]),
    }
}

fn contents(logs: &[StoredLog]) -> Vec<&str> {
    logs.iter().map(|l| l.record.content.as_str()).collect()
}

fn query_contents(store: &dyn Storage, q: &LogQuery) -> Vec<String> {
    store
        .query_logs(q)
        .unwrap()
        .into_iter()
        .map(|l| l.record.content)
        .collect()
}

fn wechat_id() -> ServiceId {
    ServiceId::new(WECHAT, true)
}

/// Five logs: a..d for WeChat one second apart (c and d linked to trace t1), e for Alipay.
fn write_sample_logs(store: &dyn Storage) {
    let mut c = log(WECHAT, "sim", "pages/cart/cart", T0 + 2_000, "c ajax error");
    c.trace_id = Some("t1".into());
    c.segment_id = Some("seg-c".into());
    c.span_id = Some(0);
    let mut d = log(WECHAT, "other", "", T0 + 3_000, "d promise rejected");
    d.trace_id = Some("t1".into());
    d.segment_id = Some("seg-d".into());
    d.span_id = Some(1);
    store
        .write_logs(vec![
            log(WECHAT, "sim", "pages/index/index", T0, "a js error"),
            log(WECHAT, "", "pages/index/index", T0 + 1_000, "b js error"),
        ])
        .unwrap();
    store
        .write_logs(vec![
            c,
            d,
            log(ALIPAY, "sim", "pages/index/index", T0 + 1_500, "e js error"),
        ])
        .unwrap();
}

pub(super) fn logs_filter_by_entity_trace_and_time(store: &dyn Storage) {
    write_sample_logs(store);
    let svc = wechat_id();
    let all = store.query_logs(&LogQuery::default()).unwrap();
    assert_eq!(
        contents(&all),
        vec![
            "d promise rejected",
            "c ajax error",
            "e js error",
            "b js error",
            "a js error"
        ],
        "readable right after writing, newest first"
    );
    let mut ids: Vec<&str> = all.iter().map(|l| l.id.as_str()).collect();
    assert!(ids
        .iter()
        .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "log ids are unique");

    let a = all
        .iter()
        .find(|l| l.record.content.starts_with('a'))
        .unwrap();
    assert_eq!(a.service_id, svc);
    assert_eq!(a.instance_id, Some(InstanceId::new(&svc, "sim")));
    assert_eq!(
        a.endpoint_id,
        Some(EndpointId::new(&svc, "pages/index/index"))
    );
    assert_eq!(a.record.tags, tags(&[("platform", "wechat")]));
    let b = all
        .iter()
        .find(|l| l.record.content.starts_with('b'))
        .unwrap();
    assert_eq!(
        b.instance_id, None,
        "no instance id without an instance name"
    );
    let d = all
        .iter()
        .find(|l| l.record.content.starts_with('d'))
        .unwrap();
    assert_eq!(
        d.endpoint_id, None,
        "no endpoint id without an endpoint name"
    );

    let by_service = LogQuery {
        service_id: Some(svc.clone()),
        ..LogQuery::default()
    };
    assert_eq!(query_contents(store, &by_service).len(), 4);
    let by_instance = LogQuery {
        instance_id: Some(InstanceId::new(&svc, "sim")),
        ..LogQuery::default()
    };
    assert_eq!(
        query_contents(store, &by_instance),
        vec!["c ajax error", "a js error"]
    );
    let by_endpoint = LogQuery {
        endpoint_id: Some(EndpointId::new(&svc, "pages/index/index")),
        ..LogQuery::default()
    };
    assert_eq!(
        query_contents(store, &by_endpoint),
        vec!["b js error", "a js error"]
    );
    let by_trace = LogQuery {
        trace_id: Some("t1".into()),
        ..LogQuery::default()
    };
    assert_eq!(
        query_contents(store, &by_trace),
        vec!["d promise rejected", "c ajax error"]
    );
    let by_trace_asc = LogQuery {
        order_desc: false,
        ..by_trace.clone()
    };
    assert_eq!(
        query_contents(store, &by_trace_asc),
        vec!["c ajax error", "d promise rejected"]
    );
    let by_trace_window = LogQuery {
        end_ms: Some(T0 + 2_999),
        ..by_trace.clone()
    };
    assert_eq!(
        query_contents(store, &by_trace_window),
        vec!["c ajax error"]
    );
    let by_span = LogQuery {
        segment_id: Some("seg-d".into()),
        span_id: Some(1),
        ..LogQuery::default()
    };
    assert_eq!(query_contents(store, &by_span), vec!["d promise rejected"]);
    let wrong_span = LogQuery {
        segment_id: Some("seg-d".into()),
        span_id: Some(0),
        ..LogQuery::default()
    };
    assert!(query_contents(store, &wrong_span).is_empty());
    assert!(query_contents(
        store,
        &LogQuery {
            trace_id: Some("nope".into()),
            ..LogQuery::default()
        }
    )
    .is_empty());

    // Both ends inclusive.
    let window = LogQuery {
        start_ms: Some(T0 + 1_000),
        end_ms: Some(T0 + 2_000),
        ..LogQuery::default()
    };
    assert_eq!(
        query_contents(store, &window),
        vec!["c ajax error", "e js error", "b js error"]
    );
    let inverted = LogQuery {
        start_ms: Some(T0 + 2_000),
        end_ms: Some(T0),
        ..LogQuery::default()
    };
    assert!(query_contents(store, &inverted).is_empty());

    // swctl sends "" for every filter it does not use.
    let blank = LogQuery {
        service_id: Some(svc),
        instance_id: Some(InstanceId::from_raw("")),
        endpoint_id: Some(EndpointId::from_raw("")),
        trace_id: Some(String::new()),
        start_ms: Some(T0),
        end_ms: Some(T0 + 59_999),
        ..LogQuery::default()
    };
    assert_eq!(query_contents(store, &blank).len(), 4);
}

pub(super) fn logs_match_tags_and_keywords(store: &dyn Storage) {
    let mut x = log(
        WECHAT,
        "sim",
        "p",
        T0,
        "TypeError: x is undefined at pages/index",
    );
    x.tags = tags(&[
        ("platform", "wechat"),
        ("exception.type", "js"),
        ("exception.type", "js"),
    ]);
    let mut y = log(
        WECHAT,
        "sim",
        "p",
        T0 + 1,
        "request failed: 500 at pages/cart",
    );
    y.tags = tags(&[
        ("platform", "wechat"),
        ("exception.type", "ajax"),
        ("http.status", "500"),
    ]);
    let mut z = log(
        ALIPAY,
        "sim",
        "p",
        T0 + 2,
        "TypeError: y is null at pages/cart",
    );
    z.tags = tags(&[("platform", "alipay"), ("exception.type", "js")]);
    store.write_logs(vec![x, y, z]).unwrap();

    let with_tags = |t: &[(&str, Option<&str>)]| LogQuery {
        tags: t
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect(),
        order_desc: false,
        ..LogQuery::default()
    };
    assert_eq!(
        query_contents(store, &with_tags(&[("exception.type", Some("js"))])).len(),
        2
    );
    assert_eq!(
        query_contents(
            store,
            &with_tags(&[("exception.type", Some("js")), ("platform", Some("wechat"))])
        ),
        vec!["TypeError: x is undefined at pages/index"],
        "tags are ANDed"
    );
    assert_eq!(
        query_contents(store, &with_tags(&[(" platform ", Some(" alipay "))])),
        vec!["TypeError: y is null at pages/cart"],
        "keys and values are trimmed"
    );
    assert_eq!(
        query_contents(store, &with_tags(&[("http.status", None)])),
        vec!["request failed: 500 at pages/cart"],
        "a tag without value matches any value"
    );
    assert!(query_contents(store, &with_tags(&[("exception.type", Some("j"))])).is_empty());

    let words = |include: &[&str], exclude: &[&str]| LogQuery {
        keywords: include.iter().map(|s| s.to_string()).collect(),
        excluding_keywords: exclude.iter().map(|s| s.to_string()).collect(),
        order_desc: false,
        ..LogQuery::default()
    };
    assert_eq!(
        query_contents(store, &words(&["TypeError", "pages/cart"], &[])),
        vec!["TypeError: y is null at pages/cart"],
        "content must contain every keyword"
    );
    assert_eq!(
        query_contents(store, &words(&["pages"], &["TypeError"])),
        vec!["request failed: 500 at pages/cart"]
    );
    assert_eq!(
        query_contents(store, &words(&[""], &[""])).len(),
        3,
        "empty words filter nothing"
    );
    assert!(query_contents(store, &words(&["typeerror"], &[])).is_empty());
}

pub(super) fn logs_order_and_paging(store: &dyn Storage) {
    let logs: Vec<LogRecord> = (0..7)
        .map(|i| log(WECHAT, "sim", "p", T0 + i * 1_000, &format!("log {i}")))
        .collect();
    store.write_logs(logs).unwrap();
    // Same timestamp, separate request: both kept.
    store
        .write_logs(vec![log(WECHAT, "sim", "p", T0, "log 0 again")])
        .unwrap();
    let page = |desc: bool, offset: usize, limit: usize| {
        query_contents(
            store,
            &LogQuery {
                order_desc: desc,
                offset,
                limit,
                ..LogQuery::default()
            },
        )
    };
    assert_eq!(page(true, 0, 3), vec!["log 6", "log 5", "log 4"]);
    assert_eq!(page(true, 3, 3), vec!["log 3", "log 2", "log 1"]);
    assert_eq!(page(true, 6, 3).len(), 2, "last page is short");
    assert!(page(true, 8, 3).is_empty());
    assert_eq!(page(false, 2, 2), vec!["log 1", "log 2"]);
    let asc = page(false, 0, 100);
    assert_eq!(asc.len(), 8);
    assert!(
        asc[..2].contains(&"log 0".to_string()) && asc[..2].contains(&"log 0 again".to_string())
    );
    assert_eq!(
        &asc[2..],
        &["log 1", "log 2", "log 3", "log 4", "log 5", "log 6"]
    );
    assert!(page(true, 0, 0).is_empty(), "limit 0 returns nothing");
}

pub(super) fn log_tag_autocomplete(store: &dyn Storage) {
    let mut today = log(WECHAT, "sim", "p", T0, "x");
    today.tags = tags(&[
        ("platform", "wechat"),
        ("exception.type", "js"),
        ("exception.stacktrace", &"at f (x.js:1)\n".repeat(40)),
    ]);
    let mut today2 = log(WECHAT, "sim", "p", T0 + 1, "y");
    today2.tags = tags(&[("platform", "wechat"), ("exception.type", "ajax")]);
    let mut long_ago = log(WECHAT, "sim", "p", T0 - 5 * DAY, "z");
    long_ago.tags = tags(&[("old.key", "v"), ("exception.type", "promise")]);
    store.write_logs(vec![today, today2, long_ago]).unwrap();

    assert_eq!(
        store.log_tag_keys(T0 - 60_000, T0 + 60_000).unwrap(),
        vec!["exception.type", "platform"],
        "sorted, distinct, without over-long tags or other days"
    );
    assert_eq!(
        store
            .log_tag_values("exception.type", T0 - 60_000, T0 + 60_000)
            .unwrap(),
        vec!["ajax", "js"]
    );
    assert_eq!(
        store
            .log_tag_values("exception.type", T0 - 6 * DAY, T0)
            .unwrap(),
        vec!["ajax", "js", "promise"]
    );
    assert!(store
        .log_tag_values("nope", T0 - 6 * DAY, T0)
        .unwrap()
        .is_empty());
    assert!(store
        .log_tag_keys(T0 + 3 * DAY, T0 + 4 * DAY)
        .unwrap()
        .is_empty());
}

pub(super) fn oversized_logs_are_truncated(store: &dyn Storage) {
    let big = log(
        WECHAT,
        "sim",
        "p",
        T0,
        &"x".repeat(LOG_CONTENT_MAX_BYTES + 10_000),
    );
    let mut many = log(WECHAT, "sim", "p", T0 + 1, "many tags");
    many.tags = (0..LOG_TAGS_MAX + 500)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    let normal = log(WECHAT, "sim", "p", T0 + 2, "normal");
    store.write_logs(vec![big, many, normal]).unwrap();
    let got = store
        .query_logs(&LogQuery {
            order_desc: false,
            ..LogQuery::default()
        })
        .unwrap();
    assert_eq!(got.len(), 3);
    let truncated = ("truncated".to_string(), "true".to_string());
    assert_eq!(got[0].record.content.len(), LOG_CONTENT_MAX_BYTES);
    assert_eq!(got[0].record.tags.last(), Some(&truncated));
    assert_eq!(got[1].record.tags.len(), LOG_TAGS_MAX + 1);
    assert_eq!(got[1].record.tags[LOG_TAGS_MAX - 1].0, "k999");
    assert_eq!(got[1].record.tags.last(), Some(&truncated));
    assert!(
        !got[2].record.tags.contains(&truncated),
        "small logs are not marked"
    );
    let marked = LogQuery {
        tags: vec![("truncated".into(), Some("true".into()))],
        ..LogQuery::default()
    };
    assert_eq!(query_contents(store, &marked).len(), 2);
}

fn span(start: i64, end: i64, op: &str, error: bool, span_tags: &[(&str, &str)]) -> Span {
    Span {
        span_id: 0,
        parent_span_id: -1,
        start_time_ms: start,
        end_time_ms: end,
        refs: Vec::new(),
        operation_name: op.into(),
        peer: "api.example.com".into(),
        span_type: SpanType::Exit,
        span_layer: SpanLayer::Http,
        component_id: 10002,
        is_error: error,
        tags: tags(span_tags),
        logs: Vec::new(),
        skip_analysis: false,
    }
}

fn segment(
    trace: &str,
    id: &str,
    service: &str,
    instance: &str,
    spans: Vec<Span>,
) -> SegmentRecord {
    SegmentRecord::from_segment(&Segment {
        trace_id: trace.into(),
        segment_id: id.into(),
        service: service.into(),
        service_instance: instance.into(),
        spans,
        is_size_limited: false,
    })
    .unwrap()
}

/// s1..s5: starts T0+1s..T0+5s; latencies 50, 300, 10, 300, 120; s2 and s4 fail.
fn write_sample_segments(store: &dyn Storage) {
    let ok = [("http.method", "GET"), ("http.status_code", "200")];
    let bad = [("http.method", "POST"), ("http.status_code", "500")];
    store
        .write_segments(vec![
            segment(
                "t1",
                "s1",
                WECHAT,
                "-",
                vec![span(
                    T0 + 1_000,
                    T0 + 1_050,
                    "pages/index/index",
                    false,
                    &ok,
                )],
            ),
            segment(
                "t1",
                "s2",
                WECHAT,
                "sim",
                vec![span(T0 + 2_000, T0 + 2_300, "pages/cart/cart", true, &bad)],
            ),
            segment(
                "t2",
                "s3",
                WECHAT,
                "-",
                vec![span(
                    T0 + 3_000,
                    T0 + 3_010,
                    "pages/index/index",
                    false,
                    &ok,
                )],
            ),
        ])
        .unwrap();
    store
        .write_segments(vec![
            segment(
                "t3",
                "s4",
                ALIPAY,
                "-",
                vec![span(
                    T0 + 4_000,
                    T0 + 4_300,
                    "pages/index/index",
                    true,
                    &bad,
                )],
            ),
            segment(
                "t1",
                "s5",
                WECHAT,
                "-",
                vec![span(
                    T0 + 5_000,
                    T0 + 5_120,
                    "pages/index/index",
                    false,
                    &ok,
                )],
            ),
        ])
        .unwrap();
}

fn segment_ids(store: &dyn Storage, q: &TraceQuery) -> Vec<String> {
    store
        .query_segments(q)
        .unwrap()
        .into_iter()
        .map(|s| s.segment_id)
        .collect()
}

pub(super) fn segments_filter_by_entity_state_tags_and_duration(store: &dyn Storage) {
    write_sample_segments(store);
    let svc = wechat_id();
    let all = store.query_segments(&TraceQuery::default()).unwrap();
    assert_eq!(
        all.iter()
            .map(|s| s.segment_id.as_str())
            .collect::<Vec<_>>(),
        vec!["s5", "s4", "s3", "s2", "s1"],
        "readable right after writing, latest start first"
    );
    let s2 = &all[3];
    assert_eq!(
        (s2.latency_ms, s2.is_error, s2.endpoint.as_str()),
        (300, true, "pages/cart/cart")
    );
    assert_eq!(s2.segment.spans.len(), 1, "segments come back whole");
    assert_eq!(s2.segment.spans[0].component_id, 10002);

    let q = |f: &dyn Fn(&mut TraceQuery)| {
        let mut q = TraceQuery::default();
        f(&mut q);
        segment_ids(store, &q)
    };
    assert_eq!(
        q(&|q| q.service_id = Some(svc.clone())),
        vec!["s5", "s3", "s2", "s1"]
    );
    assert_eq!(
        q(&|q| q.instance_id = Some(InstanceId::new(&svc, "-"))),
        vec!["s5", "s3", "s1"],
        "the SDK's '-' instance is an instance like any other"
    );
    assert_eq!(
        q(&|q| q.instance_id = Some(InstanceId::new(&svc, "sim"))),
        vec!["s2"]
    );
    assert_eq!(
        q(&|q| q.endpoint_id = Some(EndpointId::new(&svc, "pages/index/index"))),
        vec!["s5", "s3", "s1"]
    );
    assert_eq!(
        q(&|q| q.trace_id = Some("t1".into())),
        vec!["s5", "s2", "s1"]
    );
    assert!(q(&|q| q.trace_id = Some("missing".into())).is_empty());
    assert_eq!(
        q(&|q| {
            q.start_ms = Some(T0 + 2_000);
            q.end_ms = Some(T0 + 4_000);
        }),
        vec!["s4", "s3", "s2"],
        "window on start time, both ends inclusive"
    );
    assert_eq!(
        q(&|q| {
            q.trace_id = Some("t1".into());
            q.start_ms = Some(T0 + 1_500);
        }),
        vec!["s5", "s2"]
    );
    assert_eq!(q(&|q| q.state = TraceState::Error), vec!["s4", "s2"]);
    assert_eq!(
        q(&|q| q.state = TraceState::Success),
        vec!["s5", "s3", "s1"]
    );
    assert_eq!(
        q(&|q| q.tags = tags(&[("http.status_code", "500")])),
        vec!["s4", "s2"]
    );
    assert_eq!(
        q(&|q| {
            q.tags = tags(&[("http.method", " GET "), ("http.status_code", "200")]);
            q.service_id = Some(svc.clone());
        }),
        vec!["s5", "s3", "s1"]
    );
    assert!(
        q(&|q| q.tags = tags(&[("url", "x")])).is_empty(),
        "non-searchable tags never match"
    );
    assert_eq!(q(&|q| q.min_duration = Some(120)), vec!["s5", "s4", "s2"]);
    assert_eq!(q(&|q| q.max_duration = Some(50)), vec!["s3", "s1"]);
    assert_eq!(
        q(&|q| {
            q.min_duration = Some(50);
            q.max_duration = Some(120);
        }),
        vec!["s5", "s1"],
        "duration bounds are inclusive"
    );
    assert_eq!(
        q(&|q| {
            q.service_id = Some(ServiceId::from_raw(""));
            q.trace_id = Some(String::new());
            q.endpoint_id = Some(EndpointId::from_raw(""));
        })
        .len(),
        5,
        "empty ids filter nothing"
    );
}

pub(super) fn segments_order_and_paging(store: &dyn Storage) {
    write_sample_segments(store);
    let q = |order: TraceOrder, offset: usize, limit: usize| {
        segment_ids(
            store,
            &TraceQuery {
                order,
                offset,
                limit,
                ..TraceQuery::default()
            },
        )
    };
    assert_eq!(
        q(TraceOrder::ByDuration, 0, 10),
        vec!["s4", "s2", "s5", "s1", "s3"],
        "longest first, equal durations latest first"
    );
    assert_eq!(q(TraceOrder::ByDuration, 1, 2), vec!["s2", "s5"]);
    assert_eq!(q(TraceOrder::ByStartTime, 2, 2), vec!["s3", "s2"]);
    assert_eq!(q(TraceOrder::ByStartTime, 4, 2), vec!["s1"]);
    assert!(q(TraceOrder::ByStartTime, 5, 2).is_empty());
    assert!(q(TraceOrder::ByDuration, 0, 0).is_empty());
    let by_trace = TraceQuery {
        trace_id: Some("t1".into()),
        order: TraceOrder::ByDuration,
        offset: 1,
        limit: 1,
        ..TraceQuery::default()
    };
    assert_eq!(segment_ids(store, &by_trace), vec!["s5"]);
}

pub(super) fn get_trace_returns_every_segment(store: &dyn Storage) {
    write_sample_segments(store);
    let trace = store.get_trace("t1").unwrap();
    assert_eq!(
        trace
            .iter()
            .map(|s| s.segment_id.as_str())
            .collect::<Vec<_>>(),
        vec!["s1", "s2", "s5"],
        "earliest first"
    );
    assert_eq!(trace[1].segment.service_instance, "sim");
    assert_eq!(trace[1].segment.spans[0].operation_name, "pages/cart/cart");
    assert_eq!(trace[1].segment.spans[0].peer, "api.example.com");
    assert!(store.get_trace("t9").unwrap().is_empty());
    assert!(store.get_trace("").unwrap().is_empty());

    // A resent segment replaces the stored one instead of duplicating it.
    store
        .write_segments(vec![segment(
            "t2",
            "s3",
            WECHAT,
            "-",
            vec![span(
                T0 + 3_000,
                T0 + 3_010,
                "pages/index/index",
                false,
                &[],
            )],
        )])
        .unwrap();
    assert_eq!(store.get_trace("t2").unwrap().len(), 1);

    // Many spans are stored as they are.
    let spans: Vec<Span> = (0..2_000)
        .map(|i| {
            let mut s = span(T0 + 9_000 + i, T0 + 9_001 + i, "pages/big/big", false, &[]);
            s.span_id = i as i32;
            s.parent_span_id = i as i32 - 1;
            s
        })
        .collect();
    store
        .write_segments(vec![segment("big", "sb", WECHAT, "-", spans)])
        .unwrap();
    let big = store.get_trace("big").unwrap();
    assert_eq!(big[0].segment.spans.len(), 2_000);
    assert_eq!(big[0].latency_ms, 2_000);
}

pub(super) fn trace_tag_autocomplete(store: &dyn Storage) {
    write_sample_segments(store);
    assert_eq!(
        store.trace_tag_keys(T0, T0 + 10_000).unwrap(),
        vec!["http.method", "http.status_code"]
    );
    assert_eq!(
        store
            .trace_tag_values("http.status_code", T0, T0 + 10_000)
            .unwrap(),
        vec!["200", "500"]
    );
    assert!(store
        .trace_tag_keys(T0 + 2 * DAY, T0 + 3 * DAY)
        .unwrap()
        .is_empty());
    assert!(
        store.log_tag_keys(T0, T0 + 10_000).unwrap().is_empty(),
        "span tags are not log tags"
    );
}

pub(super) fn retention_removes_old_records(store: &dyn Storage) {
    let now = T0;
    let mut old_log = log(WECHAT, "sim", "p", now - 4 * DAY, "old");
    old_log.trace_id = Some("old-trace".into());
    old_log.tags = tags(&[("old.key", "v")]);
    let mut recent_log = log(WECHAT, "sim", "p", now - DAY, "recent");
    recent_log.trace_id = Some("old-trace".into());
    store.write_logs(vec![old_log, recent_log]).unwrap();
    let ok = [("http.method", "GET")];
    store
        .write_segments(vec![
            segment(
                "old-trace",
                "old-1",
                WECHAT,
                "-",
                vec![span(
                    now - 5 * DAY,
                    now - 5 * DAY + 10,
                    "p",
                    false,
                    &[("http.status_code", "418")],
                )],
            ),
            segment(
                "old-trace",
                "old-2",
                WECHAT,
                "-",
                vec![span(now - 3 * DAY - 1, now - 3 * DAY + 10, "p", false, &ok)],
            ),
            segment(
                "new-trace",
                "new-1",
                WECHAT,
                "-",
                vec![span(now - 3 * DAY + 1, now - 3 * DAY + 20, "p", false, &ok)],
            ),
        ])
        .unwrap();

    let policy = RetentionPolicy {
        metrics_days: 7,
        records_days: 3,
    };
    assert_eq!(
        store.remove_expired(&policy, now).unwrap(),
        3,
        "one log and two segments"
    );
    assert_eq!(query_contents(store, &LogQuery::default()), vec!["recent"]);
    let by_trace = LogQuery {
        trace_id: Some("old-trace".into()),
        ..LogQuery::default()
    };
    assert_eq!(query_contents(store, &by_trace), vec!["recent"]);
    assert_eq!(segment_ids(store, &TraceQuery::default()), vec!["new-1"]);
    assert!(store.get_trace("old-trace").unwrap().is_empty());
    assert_eq!(store.get_trace("new-trace").unwrap().len(), 1);
    assert!(
        store
            .log_tag_keys(now - 5 * DAY, now - 4 * DAY)
            .unwrap()
            .is_empty(),
        "autocomplete of expired days goes too"
    );
    assert!(store
        .trace_tag_values("http.status_code", now - 6 * DAY, now - 4 * DAY)
        .unwrap()
        .is_empty());
    assert_eq!(store.remove_expired(&policy, now).unwrap(), 0);
}
