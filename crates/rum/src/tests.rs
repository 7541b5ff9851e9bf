use super::*;
use skylark_core::rum::{RumResourceDetail, RumViewRef};

fn event(kind: RumEventType, id: &str, time_ms: i64) -> RumEvent {
    RumEvent {
        event_type: Some(kind),
        id: id.to_owned(),
        time_ms,
        service: "shop".into(),
        version: "1.4.2".into(),
        source: "miniprogram".into(),
        session_id: "s1".into(),
        view: RumViewRef {
            id: "v1".into(),
            name: "pages/index/index".into(),
            ..RumViewRef::default()
        },
        ..RumEvent::default()
    }
}

fn view(version: i64, setdata: i64, first_render: Option<f64>) -> RumEvent {
    RumEvent {
        document_version: Some(version),
        detail: RumDetail::View(RumViewTimings {
            loading_type: "initial_load".into(),
            app_launch_ms: Some(1392.7),
            first_render_ms: first_render,
            setdata_count: Some(setdata),
            ..RumViewTimings::default()
        }),
        ..event(RumEventType::View, "v1", 60_000)
    }
}

/// Sum of the samples named `name` over every unit.
fn total(derived: &Derived, name: &str) -> f64 {
    derived
        .units
        .iter()
        .filter_map(|u| u.get(name))
        .flat_map(|f| f.samples.iter())
        .map(|s| s.value)
        .sum()
}

fn count(derived: &Derived, name: &str) -> usize {
    derived
        .units
        .iter()
        .filter_map(|u| u.get(name))
        .map(|f| f.samples.len())
        .sum()
}

#[test]
fn a_re_sent_view_is_counted_once_and_its_counters_only_grow() {
    let deriver = Deriver::default();
    let mut tracker = ViewTracker::default();
    let first = deriver.derive(
        vec![view(0, 1, None), view(2, 3, Some(126.0)), view(1, 2, None)],
        &mut tracker,
        &NothingKnown,
    );
    assert_eq!(total(&first, PAGE_VIEWS), 1.0);
    assert_eq!(total(&first, APP_LAUNCH), 1392.0, "whole ms, rounded down");
    assert_eq!(count(&first, APP_LAUNCH), 1);
    assert_eq!(total(&first, FIRST_RENDER), 126.0);
    assert_eq!(total(&first, SETDATA_COUNT), 3.0);
    // One stored view (the highest version); version 1 came late and is stale.
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.events[0].document_version, Some(2));
    assert_eq!(first.stale_views, 1);

    // The next batch re-sends it twice more: only the growth counts.
    let second = deriver.derive(
        vec![view(2, 3, Some(126.0)), view(5, 7, Some(126.0))],
        &mut tracker,
        &NothingKnown,
    );
    assert_eq!(total(&second, PAGE_VIEWS), 0.0);
    assert_eq!(count(&second, APP_LAUNCH), 0);
    assert_eq!(count(&second, FIRST_RENDER), 0);
    assert_eq!(total(&second, SETDATA_COUNT), 4.0);
    assert_eq!(second.events.len(), 1);
}

struct StoredV3;

impl Known for StoredV3 {
    fn stored_view(&self, _view: &RumEvent) -> Option<RumEvent> {
        Some(view(3, 2, Some(100.0)))
    }
    fn session_seen(&self, _session_id: &str) -> bool {
        true
    }
}

#[test]
fn what_storage_holds_is_not_counted_again_after_a_restart() {
    let derived = Deriver::default().derive(
        vec![view(3, 2, Some(100.0)), view(4, 5, Some(100.0))],
        &mut ViewTracker::default(),
        &StoredV3,
    );
    assert_eq!(total(&derived, PAGE_VIEWS), 0.0);
    assert_eq!(total(&derived, SESSIONS), 0.0);
    assert_eq!(count(&derived, APP_LAUNCH), 0);
    assert_eq!(total(&derived, SETDATA_COUNT), 3.0);
    assert_eq!(derived.events.len(), 1);
    assert_eq!(derived.stale_views, 1);
}

fn request(id: &str, ms: f64, status: Option<i64>) -> RumEvent {
    RumEvent {
        duration_ms: Some(ms),
        status,
        detail: RumDetail::Resource(RumResourceDetail {
            resource_type: "xhr".into(),
            method: "POST".into(),
            url: "https://api.shop.example:8443/cart?x=1".into(),
            error_message: String::new(),
        }),
        ..event(RumEventType::Resource, id, 61_000)
    }
}

#[test]
fn requests_fill_the_skyapm_histogram() {
    let derived = Deriver::default().derive(
        vec![
            request("r1", 10.9, Some(200)),
            request("r2", 250.0, Some(200)),
            request("r3", 20_000.0, Some(200)),
            request("r4", 30.0, None),
        ],
        &mut ViewTracker::default(),
        &NothingKnown,
    );
    let family = derived
        .units
        .iter()
        .find_map(|u| u.get(REQUEST))
        .expect("histogram");
    let bucket = |le: &str, status: &str| {
        family
            .samples
            .iter()
            .find(|s| {
                s.labels.get("le") == Some(le)
                    && s.labels.get("http_response_status_code") == Some(status)
            })
            .map(|s| s.value)
    };
    // 10.9 ms is sent as 10: the first bucket is inclusive.
    assert_eq!(bucket("10.0", "200"), Some(1.0));
    assert_eq!(bucket("250.0", "200"), Some(1.0));
    assert_eq!(bucket("Infinity", "200"), Some(1.0));
    assert_eq!(bucket("50.0", "0"), Some(1.0), "no answer is status 0");
    assert_eq!(family.samples.len(), 22, "11 buckets per label set");
    assert_eq!(total(&derived, "miniprogram_request_duration_count"), 4.0);
    assert_eq!(
        total(&derived, "miniprogram_request_duration_sum"),
        20_290.0
    );
    let sample = &family.samples[0];
    assert_eq!(
        sample.labels.get("server_address"),
        Some("api.shop.example:8443")
    );
    assert_eq!(sample.labels.get("http_request_method"), Some("POST"));
    assert_eq!(sample.labels.get("miniprogram_platform"), Some("wechat"));
    assert_eq!(sample.labels.get("service_instance_id"), Some("1.4.2"));
    // A session's first event counts it.
    assert_eq!(total(&derived, SESSIONS), 1.0);
}

#[test]
fn errors_become_skyapm_error_logs() {
    let error = |source: &str, message: &str| RumEvent {
        message: message.to_owned(),
        stack: "at f @ app.js:1:2".to_owned(),
        detail: RumDetail::Error(RumErrorDetail {
            source: source.to_owned(),
            ..RumErrorDetail::default()
        }),
        ..event(RumEventType::Error, "e1", 1_000)
    };
    let derived = Deriver::default().derive(
        vec![
            error("app", "TypeError: x is undefined"),
            error(
                "network",
                "POST https://api.shop.example/pay failed: request:fail timeout",
            ),
            error("page-not-found", "Page not found: pages/promo/spring"),
            error("lazy-load", "chunk failed"),
        ],
        &mut ViewTracker::default(),
        &NothingKnown,
    );
    let tag = |log: &LogData, key: &str| {
        log.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let types: Vec<String> = derived
        .logs
        .iter()
        .map(|l| tag(l, "exception.type"))
        .collect();
    assert_eq!(types, ["js", "ajax", "pageNotFound", "lazy-load"]);
    let ajax = &derived.logs[1];
    assert_eq!(tag(ajax, "http.request.method"), "POST");
    assert_eq!(tag(ajax, "http.response.status_code"), "0");
    assert_eq!(tag(ajax, "server.address"), "api.shop.example");
    assert_eq!(
        tag(&derived.logs[2], "miniprogram.page.path"),
        "pages/promo/spring"
    );
    assert_eq!(
        tag(&derived.logs[0], "miniprogram.page.path"),
        "pages/index/index"
    );
    assert_eq!(
        tag(&derived.logs[0], "exception.stacktrace"),
        "at f @ app.js:1:2"
    );
    assert_eq!(derived.logs[0].body.content(), "TypeError: x is undefined");
    assert!(derived.logs[0]
        .source_attributes
        .contains(&("miniprogram.platform".to_owned(), "wechat".to_owned())));
    assert_eq!(total(&derived, ERRORS), 4.0);
    assert_eq!(derived.events.len(), 4, "errors are stored too");
}

#[test]
fn tracked_state_is_bounded() {
    let deriver = Deriver::default();
    let mut tracker = ViewTracker::new(10);
    for i in 0..1000 {
        let mut v = view(0, 0, None);
        v.id = format!("v{i}");
        v.session_id = format!("s{i}");
        deriver.derive(vec![v], &mut tracker, &NothingKnown);
    }
    assert!(tracker.views.entries.len() <= 10);
    assert!(tracker.sessions.entries.len() <= 10);
}

#[test]
fn platforms_are_configurable() {
    let mapping = PlatformMapping::parse("miniprogram:alipay, browser:web");
    assert_eq!(mapping.platform("miniprogram"), "alipay");
    assert_eq!(mapping.platform("browser"), "web");
    assert_eq!(mapping.platform("flutter"), "flutter");
    assert_eq!(PlatformMapping::default().platform("miniprogram"), "wechat");
}
