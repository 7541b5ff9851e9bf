//! The behaviour every [`Storage`] implementation must show, runnable against any backend.
//!
//! Each check gets a fresh, empty store and panics (like a test assertion) on a mismatch.
mod alarms;
mod records;
mod rum;
mod templates;

use crate::{RetentionPolicy, Storage};
use skylark_core::traffic::{EndpointTraffic, InstanceTraffic, ServiceTraffic, Traffic};
use skylark_core::{
    HistogramGroup, InstanceId, Labels, Layer, MeterEntity, MeterValue, MetricDefinition,
    MetricEmission, MetricFunction, MetricValue, Scope, ServiceId, Step, TimeBucket,
};

/// A named check of the conformance suite.
pub type ConformanceCheck = (&'static str, fn(&dyn Storage));

/// Every check, by name.
pub const CONFORMANCE_CHECKS: &[ConformanceCheck] = &[
    ("write_then_read_before_flush", write_then_read_before_flush),
    ("avg_merges_across_flushes", avg_merges_across_flushes),
    ("request_cpm_is_floor_of_mean", request_cpm_is_floor_of_mean),
    (
        "hour_and_day_roll_up_raw_state",
        hour_and_day_roll_up_raw_state,
    ),
    (
        "percentiles_are_bucket_bounds",
        percentiles_are_bucket_bounds,
    ),
    (
        "labeled_values_merge_per_label",
        labeled_values_merge_per_label,
    ),
    ("metric_entities_see_all_rows", metric_entities_see_all_rows),
    ("services_keep_every_layer", services_keep_every_layer),
    ("instances_keep_latest_ping", instances_keep_latest_ping),
    ("endpoints_keyword_and_limit", endpoints_keyword_and_limit),
    ("retention_removes_old_rows", retention_removes_old_rows),
    (
        "ten_thousand_entities_in_one_flush",
        ten_thousand_entities_in_one_flush,
    ),
    (
        "logs_filter_by_entity_trace_and_time",
        records::logs_filter_by_entity_trace_and_time,
    ),
    (
        "logs_match_tags_and_keywords",
        records::logs_match_tags_and_keywords,
    ),
    ("logs_order_and_paging", records::logs_order_and_paging),
    ("log_tag_autocomplete", records::log_tag_autocomplete),
    (
        "oversized_logs_are_truncated",
        records::oversized_logs_are_truncated,
    ),
    (
        "segments_filter_by_entity_state_tags_and_duration",
        records::segments_filter_by_entity_state_tags_and_duration,
    ),
    (
        "segments_order_and_paging",
        records::segments_order_and_paging,
    ),
    (
        "get_trace_returns_every_segment",
        records::get_trace_returns_every_segment,
    ),
    ("trace_tag_autocomplete", records::trace_tag_autocomplete),
    (
        "retention_removes_old_records",
        records::retention_removes_old_records,
    ),
    (
        "alarms_filter_order_and_recover",
        alarms::alarms_filter_order_and_recover,
    ),
    (
        "alarm_states_replace_and_remove",
        alarms::alarm_states_replace_and_remove,
    ),
    (
        "retention_removes_old_alarms",
        alarms::retention_removes_old_alarms,
    ),
    (
        "rum_events_by_index_and_view_upserts",
        rum::rum_events_by_index_and_view_upserts,
    ),
    (
        "rum_sessions_count_each_event_once",
        rum::rum_sessions_count_each_event_once,
    ),
    (
        "templates_round_trip_and_replace",
        templates::templates_round_trip_and_replace,
    ),
    (
        "templates_list_sorted_by_id",
        templates::templates_list_sorted_by_id,
    ),
    (
        "templates_survive_retention",
        templates::templates_survive_retention,
    ),
    // Rollups across persists (issue 14).
    (
        "summed_histograms_roll_up_merged_counts_across_flushes",
        summed_histograms_roll_up_merged_counts_across_flushes,
    ),
    (
        "extremes_and_latest_roll_up_across_flushes",
        extremes_and_latest_roll_up_across_flushes,
    ),
];

/// Runs every check, each against a new store from `new_store`.
pub fn run_conformance_suite(new_store: &mut dyn FnMut() -> Box<dyn Storage>) {
    for (name, check) in CONFORMANCE_CHECKS {
        eprintln!("conformance check: {name}");
        let store = new_store();
        check(store.as_ref());
    }
}

const SERVICE: &str = "mini-program-sim-wechat";
const LAYER: Layer = Layer::WECHAT_MINI_PROGRAM;
/// 2026-11-29 12:05.
const MINUTE: i64 = 202611291205;

fn def(name: &str, scope: Scope, function: MetricFunction, ranks: &[u32]) -> MetricDefinition {
    MetricDefinition {
        name: name.to_string(),
        scope,
        function,
        percentile_ranks: ranks.to_vec(),
    }
}

fn avg_def() -> MetricDefinition {
    def(
        "meter_wechat_mp_app_launch_duration",
        Scope::Service,
        MetricFunction::Avg,
        &[],
    )
}

fn bucket(step: Step, value: i64) -> TimeBucket {
    TimeBucket { step, value }
}

fn minute(value: i64) -> TimeBucket {
    bucket(Step::Minute, value)
}

fn emit(
    metric: &MetricDefinition,
    entity: MeterEntity,
    at: TimeBucket,
    value: MeterValue,
) -> MetricEmission {
    MetricEmission {
        metric: std::sync::Arc::new(metric.clone()),
        entity,
        minute: at,
        value,
    }
}

fn emit_service(metric: &MetricDefinition, at: i64, value: i64) -> MetricEmission {
    emit(
        metric,
        MeterEntity::service(SERVICE, LAYER),
        minute(at),
        MeterValue::Single(value),
    )
}

fn service_id() -> String {
    ServiceId::new(SERVICE, true).into_string()
}

fn read_one(store: &dyn Storage, metric: &MetricDefinition, at: TimeBucket) -> Option<MetricValue> {
    store
        .read_metric(metric, &service_id(), &[at])
        .unwrap()
        .pop()
        .flatten()
}

fn write_then_read_before_flush(store: &dyn Storage) {
    let m = avg_def();
    store
        .write_metrics(vec![emit_service(&m, MINUTE, 5)])
        .unwrap();
    assert!(store.pending_rows() == 0 || store.pending_rows() == 3);
    let got = store
        .read_metric(&m, &service_id(), &[minute(MINUTE), minute(MINUTE + 1)])
        .unwrap();
    assert_eq!(
        got,
        vec![Some(MetricValue::Single(5)), None],
        "read before flush"
    );
    assert_eq!(
        store
            .read_metric(&m, "other-entity", &[minute(MINUTE)])
            .unwrap(),
        vec![None]
    );
    store.flush().unwrap();
    assert_eq!(
        read_one(store, &m, minute(MINUTE)),
        Some(MetricValue::Single(5)),
        "read after flush"
    );
    let mut other = m.clone();
    other.name.push_str("_other");
    assert_eq!(read_one(store, &other, minute(MINUTE)), None);
    let second = bucket(Step::Second, MINUTE * 100);
    assert_eq!(read_one(store, &m, second), None, "no rows at second step");
}

fn avg_merges_across_flushes(store: &dyn Storage) {
    let m = avg_def();
    store
        .write_metrics(vec![emit_service(&m, MINUTE, 3)])
        .unwrap();
    store.flush().unwrap();
    store
        .write_metrics(vec![emit_service(&m, MINUTE, 4)])
        .unwrap();
    assert_eq!(
        read_one(store, &m, minute(MINUTE)),
        Some(MetricValue::Single(3)),
        "stored 3 merged with pending 4 is (3+4)/2 = 3"
    );
    store.flush().unwrap();
    assert_eq!(
        read_one(store, &m, minute(MINUTE)),
        Some(MetricValue::Single(3)),
        "stored rows merge across flushes"
    );
    // Flushing with nothing pending changes nothing.
    store.flush().unwrap();
    assert_eq!(
        read_one(store, &m, minute(MINUTE)),
        Some(MetricValue::Single(3))
    );
}

fn request_cpm_is_floor_of_mean(store: &dyn Storage) {
    let m = def(
        "meter_wechat_mp_request_cpm",
        Scope::Service,
        MetricFunction::Avg,
        &[],
    );
    let counts = [5, 6, 6, 9];
    for c in counts {
        store
            .write_metrics(vec![emit_service(&m, MINUTE, c)])
            .unwrap();
        store.flush().unwrap();
    }
    // Σ = 26 over 4 flushes → ⌊6.5⌋ = 6.
    assert_eq!(
        read_one(store, &m, minute(MINUTE)),
        Some(MetricValue::Single(6))
    );
    assert_eq!(
        read_one(store, &m, bucket(Step::Hour, MINUTE / 100)),
        Some(MetricValue::Single(6))
    );
}

fn hour_and_day_roll_up_raw_state(store: &dyn Storage) {
    let m = avg_def();
    store
        .write_metrics(vec![
            emit_service(&m, MINUTE, 10),
            emit_service(&m, MINUTE + 1, 20),
        ])
        .unwrap();
    let hour = bucket(Step::Hour, MINUTE / 100);
    let day = bucket(Step::Day, MINUTE / 10_000);
    assert_eq!(read_one(store, &m, hour), Some(MetricValue::Single(15)));
    assert_eq!(read_one(store, &m, day), Some(MetricValue::Single(15)));
    store.flush().unwrap();
    assert_eq!(
        read_one(store, &m, minute(MINUTE)),
        Some(MetricValue::Single(10))
    );
    assert_eq!(
        read_one(store, &m, minute(MINUTE + 1)),
        Some(MetricValue::Single(20))
    );
    assert_eq!(read_one(store, &m, hour), Some(MetricValue::Single(15)));
    assert_eq!(read_one(store, &m, day), Some(MetricValue::Single(15)));

    store
        .write_metrics(vec![emit_service(&m, MINUTE, 40)])
        .unwrap();
    store.flush().unwrap();
    // Minute 1205 = (10+40)/2 = 25; hour = (10+20+40)/3 = 23 (averaging minutes would give 22).
    assert_eq!(
        read_one(store, &m, minute(MINUTE)),
        Some(MetricValue::Single(25))
    );
    assert_eq!(read_one(store, &m, hour), Some(MetricValue::Single(23)));
    assert_eq!(read_one(store, &m, day), Some(MetricValue::Single(23)));
    // The next hour is a different row.
    let next_hour = bucket(Step::Hour, MINUTE / 100 + 1);
    assert_eq!(read_one(store, &m, next_hour), None);

    let per_min = def("per_min", Scope::Service, MetricFunction::SumPerMin, &[]);
    store
        .write_metrics(vec![
            emit_service(&per_min, MINUTE, 120),
            emit_service(&per_min, MINUTE + 1, 60),
        ])
        .unwrap();
    assert_eq!(
        read_one(store, &per_min, minute(MINUTE)),
        Some(MetricValue::Single(120))
    );
    assert_eq!(
        read_one(store, &per_min, hour),
        Some(MetricValue::Single(3)),
        "180 / 60 minutes"
    );
}

fn histogram(buckets: &[(i64, i64)]) -> MeterValue {
    MeterValue::Histogram(vec![HistogramGroup {
        labels: Labels::new(),
        buckets: buckets.to_vec(),
    }])
}

fn p(rank: u32) -> Labels {
    let mut l = Labels::new();
    l.insert("p", rank.to_string());
    l
}

fn percentiles_are_bucket_bounds(store: &dyn Storage) {
    let m = def(
        "meter_wechat_mp_request_duration_percentile",
        Scope::Service,
        MetricFunction::AvgHistogramPercentile,
        &[50, 75, 90, 99],
    );
    let entity = || MeterEntity::service(SERVICE, LAYER);
    store
        .write_metrics(vec![emit(
            &m,
            entity(),
            minute(MINUTE),
            histogram(&[(10, 2), (25, 0), (50, 0), (i64::MAX, 0)]),
        )])
        .unwrap();
    store.flush().unwrap();
    store
        .write_metrics(vec![emit(
            &m,
            entity(),
            minute(MINUTE),
            histogram(&[(10, 0), (25, 4), (50, 2), (i64::MAX, 0)]),
        )])
        .unwrap();
    // Averaged counts: 10→1, 25→2, 50→1, +Inf→0; total 4.
    // p50 roof 2 → 25; p75 roof 3 → 25; p90 roof round(3.6)=4 → 50; p99 roof 4 → 50.
    let expected = MetricValue::Labeled(vec![(p(50), 25), (p(75), 25), (p(90), 50), (p(99), 50)]);
    assert_eq!(
        read_one(store, &m, minute(MINUTE)),
        Some(expected.clone()),
        "before flush"
    );
    store.flush().unwrap();
    assert_eq!(
        read_one(store, &m, minute(MINUTE)),
        Some(expected.clone()),
        "after flush"
    );
    assert_eq!(
        read_one(store, &m, bucket(Step::Hour, MINUTE / 100)),
        Some(expected)
    );

    // Everything in +Inf reports the highest finite bound (as Prometheus does), not OAP's
    // Long.MAX_VALUE, before and after a flush and in the hour rollup alike.
    let other = MeterEntity::service("other", LAYER);
    store
        .write_metrics(vec![emit(
            &m,
            other.clone(),
            minute(MINUTE),
            histogram(&[(10, 0), (10_000, 0), (i64::MAX, 3)]),
        )])
        .unwrap();
    let all_overflow = Some(MetricValue::Labeled(vec![
        (p(50), 10_000),
        (p(75), 10_000),
        (p(90), 10_000),
        (p(99), 10_000),
    ]));
    let got = store
        .read_metric(&m, &other.id(), &[minute(MINUTE)])
        .unwrap();
    assert_eq!(got, vec![all_overflow.clone()], "before flush");
    store.flush().unwrap();
    let got = store
        .read_metric(
            &m,
            &other.id(),
            &[minute(MINUTE), bucket(Step::Hour, MINUTE / 100)],
        )
        .unwrap();
    assert_eq!(got, vec![all_overflow.clone(), all_overflow], "after flush");

    // Counts near the largest long add up saturating across writes and flushes (wrapping made
    // the total negative and every percentile 0).
    let summed = def(
        "meter_wechat_mp_request_duration_summed_percentile",
        Scope::Service,
        MetricFunction::SumHistogramPercentile,
        &[50, 99],
    );
    for _ in 0..2 {
        store
            .write_metrics(vec![emit(
                &summed,
                entity(),
                minute(MINUTE),
                histogram(&[(10, i64::MAX), (i64::MAX, 0)]),
            )])
            .unwrap();
        store.flush().unwrap();
    }
    assert_eq!(
        read_one(store, &summed, minute(MINUTE)),
        Some(MetricValue::Labeled(vec![(p(50), 10), (p(99), 10)]))
    );
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn labeled_values_merge_per_label(store: &dyn Storage) {
    let m = def(
        "meter_wechat_mp_error_count",
        Scope::Service,
        MetricFunction::SumLabeled,
        &[],
    );
    let js = labels(&[("type", "js")]);
    let ajax = labels(&[("type", "ajax")]);
    let value = |v: Vec<(Labels, i64)>| {
        emit(
            &m,
            MeterEntity::service(SERVICE, LAYER),
            minute(MINUTE),
            MeterValue::Labeled(v),
        )
    };
    store
        .write_metrics(vec![value(vec![(js.clone(), 2)])])
        .unwrap();
    store.flush().unwrap();
    store
        .write_metrics(vec![value(vec![(js.clone(), 3), (ajax.clone(), 1)])])
        .unwrap();
    store.flush().unwrap();
    assert_eq!(
        read_one(store, &m, minute(MINUTE)),
        Some(MetricValue::Labeled(vec![(ajax, 1), (js, 5)]))
    );
}

fn metric_entities_see_all_rows(store: &dyn Storage) {
    let m = def(
        "meter_wechat_mp_instance_request_cpm",
        Scope::ServiceInstance,
        MetricFunction::Avg,
        &[],
    );
    let mut longer = m.clone();
    longer.name.push_str("_x");
    let inst = |name: &str| MeterEntity::instance(SERVICE, name, LAYER);
    store
        .write_metrics(vec![
            emit(&m, inst("a"), minute(MINUTE), MeterValue::Single(1)),
            emit(&longer, inst("z"), minute(MINUTE), MeterValue::Single(1)),
        ])
        .unwrap();
    store.flush().unwrap();
    store
        .write_metrics(vec![
            emit(&m, inst("b"), minute(MINUTE + 1), MeterValue::Single(1)),
            emit(&m, inst("a"), minute(MINUTE + 1), MeterValue::Single(1)),
        ])
        .unwrap();
    let svc = ServiceId::new(SERVICE, true);
    let a = InstanceId::new(&svc, "a").into_string();
    let b = InstanceId::new(&svc, "b").into_string();
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(
        store
            .metric_entities(&m, &[minute(MINUTE), minute(MINUTE + 1)])
            .unwrap(),
        both,
        "stored and pending, deduplicated, without other metrics"
    );
    assert_eq!(
        store.metric_entities(&m, &[minute(MINUTE)]).unwrap(),
        vec![a]
    );
    assert_eq!(
        store
            .metric_entities(&m, &[bucket(Step::Hour, MINUTE / 100)])
            .unwrap(),
        both
    );
    assert!(store
        .metric_entities(&m, &[minute(MINUTE + 2)])
        .unwrap()
        .is_empty());
}

fn service(name: &str, layer: Layer) -> Traffic {
    Traffic::Service(ServiceTraffic {
        name: name.into(),
        layer,
    })
}

fn instance(name: &str) -> Traffic {
    Traffic::Instance(InstanceTraffic {
        service_name: SERVICE.into(),
        name: name.into(),
        layer: LAYER,
    })
}

fn endpoint(name: &str) -> Traffic {
    Traffic::Endpoint(EndpointTraffic {
        service_name: SERVICE.into(),
        name: name.into(),
        layer: LAYER,
    })
}

fn services_keep_every_layer(store: &dyn Storage) {
    store
        .write_traffic(
            vec![
                service("b-alipay", Layer::ALIPAY_MINI_PROGRAM),
                service(SERVICE, LAYER),
            ],
            1_000,
        )
        .unwrap();
    store.flush().unwrap();
    store
        .write_traffic(
            vec![service(SERVICE, Layer::GENERAL), service(SERVICE, LAYER)],
            2_000,
        )
        .unwrap();

    let wechat = store.list_services(Some(LAYER)).unwrap();
    assert_eq!(wechat.len(), 1);
    assert_eq!(wechat[0].name, SERVICE);
    assert_eq!(wechat[0].id.as_str(), "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1");
    assert_eq!(
        wechat[0].layers,
        vec![Layer::GENERAL, LAYER],
        "ascending by value"
    );
    let general = store.list_services(Some(Layer::GENERAL)).unwrap();
    assert_eq!(general.len(), 1);
    let all: Vec<String> = store
        .list_services(None)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(all, vec!["b-alipay".to_string(), SERVICE.to_string()]);
    assert!(store.list_services(Some(Layer(3))).unwrap().is_empty());
    let got = store
        .get_service(&ServiceId::new("b-alipay", true))
        .unwrap()
        .unwrap();
    assert_eq!(got.layers, vec![Layer::ALIPAY_MINI_PROGRAM]);
    assert!(store
        .get_service(&ServiceId::new("nope", true))
        .unwrap()
        .is_none());
    store.flush().unwrap();
    assert_eq!(store.list_services(Some(LAYER)).unwrap(), wechat);
}

fn instances_keep_latest_ping(store: &dyn Storage) {
    store
        .write_traffic(vec![instance("old"), instance("new")], 1_000_000)
        .unwrap();
    store.flush().unwrap();
    store
        .write_traffic(vec![instance("new")], 1_030_000)
        .unwrap();
    // A late report with an older ping must not move last_ping back.
    store
        .write_traffic(vec![instance("new")], 1_010_000)
        .unwrap();
    let svc = ServiceId::new(SERVICE, true);
    let all = store.list_instances(&svc, 0).unwrap();
    assert_eq!(
        all.iter()
            .map(|i| (i.name.as_str(), i.last_ping_ms))
            .collect::<Vec<_>>(),
        vec![("new", 1_030_000), ("old", 1_000_000)]
    );
    let recent = store.list_instances(&svc, 1_020_000).unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].name, "new");
    assert_eq!(recent[0].service_id, svc);
    let id = InstanceId::new(&svc, "new");
    assert_eq!(
        store.get_instance(&id).unwrap().map(|i| i.last_ping_ms),
        Some(1_030_000)
    );
    assert!(store
        .list_instances(&ServiceId::new("other", true), 0)
        .unwrap()
        .is_empty());
    store.flush().unwrap();
    assert_eq!(store.list_instances(&svc, 1_020_000).unwrap(), recent);
}

fn endpoints_keyword_and_limit(store: &dyn Storage) {
    store
        .write_traffic(
            vec![
                endpoint("pages/index/index"),
                endpoint("pages/cart/cart"),
                endpoint("pages/cart/checkout"),
                endpoint("pages/user/user"),
            ],
            5_000,
        )
        .unwrap();
    store
        .write_traffic(
            vec![Traffic::Endpoint(EndpointTraffic {
                service_name: "other".into(),
                name: "pages/cart/cart".into(),
                layer: LAYER,
            })],
            5_000,
        )
        .unwrap();
    let svc = ServiceId::new(SERVICE, true);
    let names = |keyword: Option<&str>, limit: usize| -> Vec<String> {
        store
            .find_endpoints(&svc, keyword, limit)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect()
    };
    assert_eq!(
        names(None, 10),
        vec![
            "pages/cart/cart",
            "pages/cart/checkout",
            "pages/index/index",
            "pages/user/user"
        ]
    );
    assert_eq!(
        names(Some(""), 2),
        vec!["pages/cart/cart", "pages/cart/checkout"]
    );
    assert_eq!(
        names(Some("cart"), 10),
        vec!["pages/cart/cart", "pages/cart/checkout"]
    );
    assert_eq!(names(Some("cart"), 1), vec!["pages/cart/cart"]);
    assert!(names(Some("nothing"), 10).is_empty());
    let id = skylark_core::EndpointId::new(&svc, "pages/user/user");
    let got = store.get_endpoint(&id).unwrap().unwrap();
    assert_eq!(
        (got.name.as_str(), got.last_ping_ms),
        ("pages/user/user", 5_000)
    );
}

fn retention_removes_old_rows(store: &dyn Storage) {
    const DAY: i64 = 86_400_000;
    let now = 1_795_000_000_000_i64;
    let at = |ms: i64| TimeBucket::from_epoch_ms(ms, Step::Minute).unwrap();
    let m = avg_def();
    let old = at(now - 9 * DAY);
    let recent = at(now - DAY);
    let entity = || MeterEntity::service(SERVICE, LAYER);
    store
        .write_metrics(vec![
            emit(&m, entity(), old, MeterValue::Single(1)),
            emit(&m, entity(), recent, MeterValue::Single(2)),
        ])
        .unwrap();
    store.flush().unwrap();
    // Not yet flushed, and expired: must not come back with the next flush.
    let old_pending = at(now - 8 * DAY);
    store
        .write_metrics(vec![emit(&m, entity(), old_pending, MeterValue::Single(3))])
        .unwrap();
    store
        .write_traffic(
            vec![service(SERVICE, LAYER), instance("gone"), endpoint("gone")],
            now - 10 * DAY,
        )
        .unwrap();
    store
        .write_traffic(vec![instance("kept"), endpoint("kept")], now - DAY)
        .unwrap();
    store.flush().unwrap();

    let removed = store
        .remove_expired(
            &RetentionPolicy {
                metrics_days: 7,
                records_days: 3,
            },
            now,
        )
        .unwrap();
    // old and old_pending: minute + hour + day rows each (6), plus one instance and one endpoint.
    assert_eq!(removed, 8);
    store.flush().unwrap();
    for b in [old, old_pending] {
        for step in [Step::Minute, Step::Hour, Step::Day] {
            assert_eq!(
                read_one(store, &m, b.to_step(step)),
                None,
                "{step:?} of {b}"
            );
        }
    }
    for step in [Step::Minute, Step::Hour, Step::Day] {
        assert_eq!(
            read_one(store, &m, recent.to_step(step)),
            Some(MetricValue::Single(2)),
            "recent {step:?} kept"
        );
    }
    let svc = ServiceId::new(SERVICE, true);
    let names: Vec<String> = store
        .list_instances(&svc, 0)
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, vec!["kept"]);
    let names: Vec<String> = store
        .find_endpoints(&svc, None, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["kept"]);
    assert!(
        store.get_service(&svc).unwrap().is_some(),
        "services are kept"
    );
    assert_eq!(
        store
            .remove_expired(&RetentionPolicy::default(), now)
            .unwrap(),
        0,
        "nothing left to remove"
    );
}

fn ten_thousand_entities_in_one_flush(store: &dyn Storage) {
    let m = def(
        "meter_wechat_mp_endpoint_request_cpm",
        Scope::Endpoint,
        MetricFunction::Avg,
        &[],
    );
    let emissions: Vec<MetricEmission> = (0..10_000)
        .map(|i| {
            emit(
                &m,
                MeterEntity::endpoint(SERVICE, format!("pages/p{i}"), LAYER),
                minute(MINUTE),
                MeterValue::Single(i),
            )
        })
        .collect();
    store.write_metrics(emissions).unwrap();
    store.flush().unwrap();
    assert_eq!(store.pending_rows(), 0);
    let entities = store.metric_entities(&m, &[minute(MINUTE)]).unwrap();
    assert_eq!(entities.len(), 10_000);
    let svc = ServiceId::new(SERVICE, true);
    for i in [0, 1, 4_999, 9_999] {
        let id = skylark_core::EndpointId::new(&svc, &format!("pages/p{i}"));
        assert_eq!(
            store
                .read_metric(&m, id.as_str(), &[minute(MINUTE)])
                .unwrap(),
            vec![Some(MetricValue::Single(i))]
        );
    }
}

// ---- Rollups across persists (issue 14) ----

/// A period's percentile comes from the bucket counts of every emission in it, summed, however
/// many flushes wrote them: never from the largest (or average) of the minute values.
fn summed_histograms_roll_up_merged_counts_across_flushes(store: &dyn Storage) {
    let m = def(
        "meter_wechat_mp_request_duration_percentile",
        Scope::Service,
        MetricFunction::SumHistogramPercentile,
        &[50, 75, 90, 99],
    );
    let at = |minute_value: i64, counts: &[(i64, i64)]| {
        emit(
            &m,
            MeterEntity::service(SERVICE, LAYER),
            minute(minute_value),
            histogram(counts),
        )
    };
    let emissions = [
        at(MINUTE, &[(10, 1), (25, 0), (50, 0), (100, 0)]),
        at(MINUTE, &[(10, 0), (25, 3), (50, 0), (100, 0)]),
        at(MINUTE + 1, &[(10, 0), (25, 0), (50, 2), (100, 6)]),
    ];
    for e in emissions {
        store.write_metrics(vec![e]).unwrap();
        store.flush().unwrap();
    }
    // Minute 1205: 10→1, 25→3 (total 4): p50 roof 2 → 25, p99 roof 4 → 25.
    assert_eq!(
        read_one(store, &m, minute(MINUTE)),
        Some(MetricValue::Labeled(vec![
            (p(50), 25),
            (p(75), 25),
            (p(90), 25),
            (p(99), 25)
        ]))
    );
    // Minute 1206 alone: 50→2, 100→6 (total 8): p50 roof 4 → 100.
    // The hour sums both: 10→1, 25→3, 50→2, 100→6 (total 12): p50 roof 6 → 50 (cumulative
    // 1, 4, 6), p75 roof 9 → 100. The larger minute value would say 100 for p50.
    let merged = MetricValue::Labeled(vec![(p(50), 50), (p(75), 100), (p(90), 100), (p(99), 100)]);
    for step in [Step::Hour, Step::Day] {
        let b = minute(MINUTE).to_step(step);
        assert_eq!(read_one(store, &m, b), Some(merged.clone()), "{step:?}");
    }
}

/// `max`, `min` and `latest` keep their meaning over an hour and a day written by several flushes.
fn extremes_and_latest_roll_up_across_flushes(store: &dyn Storage) {
    for (function, minute_value, period_value) in [
        (MetricFunction::Max, 5, 9),
        (MetricFunction::Min, 3, 3),
        (MetricFunction::Latest, 3, 9),
    ] {
        let m = def("rolled", Scope::Service, function, &[]);
        let m = MetricDefinition {
            name: format!("rolled_{}", function.name()),
            ..m
        };
        for (at, value) in [(MINUTE, 5), (MINUTE, 3), (MINUTE + 1, 9)] {
            store
                .write_metrics(vec![emit_service(&m, at, value)])
                .unwrap();
            store.flush().unwrap();
        }
        assert_eq!(
            read_one(store, &m, minute(MINUTE)),
            Some(MetricValue::Single(minute_value)),
            "{function:?} minute"
        );
        for step in [Step::Hour, Step::Day] {
            assert_eq!(
                read_one(store, &m, minute(MINUTE).to_step(step)),
                Some(MetricValue::Single(period_value)),
                "{function:?} {step:?}"
            );
        }
    }
}
