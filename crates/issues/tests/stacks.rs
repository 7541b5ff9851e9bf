//! Real stack strings of both platforms (errors-and-sourcemaps.md §1, §6 and the SDK/RUM
//! fixtures) parsed into frames, and the fingerprints they make.
use skylark_issues::{
    fingerprint, fingerprint_parts, FingerprintFrame, FingerprintInput, Frame, FrameRules,
};

fn parse(stack: &str) -> skylark_issues::ParsedStack {
    FrameRules::default().parse(stack)
}

/// (function, file, line, column, in_app) of a frame.
type FrameSummary = (String, String, Option<u32>, Option<u32>, bool);

/// Every frame's summary.
fn summary(stack: &str) -> Vec<FrameSummary> {
    parse(stack)
        .frames
        .into_iter()
        .map(|f| (f.function, f.file, f.line, f.column, f.in_app))
        .collect()
}

fn frame(
    f: &str,
    file: &str,
    line: u32,
    col: u32,
    in_app: bool,
) -> (String, String, Option<u32>, Option<u32>, bool) {
    (f.into(), file.into(), Some(line), Some(col), in_app)
}

#[test]
fn wechat_devtools_stack() {
    let stack = "Error: 这是一个自动捕获的 Promise 拒绝测试\n    at ai.handleUnhandledPromiseRejection (weapp:///pages/rum-demo/error.js:27:20)\n    at ai.options.<computed> [as handleUnhandledPromiseRejection] (weapp:///http://127.0.0.1:18025/appservice/miniprogram_npm/@flashcatcloud/miniprogram-platform/browser/pageObservable.js?t=wechat&s=1778826434023&v=3cba57e60af9690a:81:22)\n    at ai.<anonymous> (http://127.0.0.1:18025/appservice/__dev__/WASubContext.js?t=wechat&v=3.14.2:1:356138)";
    let parsed = parse(stack);
    assert_eq!(
        parsed.header,
        vec!["Error: 这是一个自动捕获的 Promise 拒绝测试".to_string()]
    );
    assert_eq!(
        summary(stack),
        vec![
            frame(
                "ai.handleUnhandledPromiseRejection",
                "pages/rum-demo/error.js",
                27,
                20,
                true
            ),
            frame(
                "ai.options.<computed>",
                "miniprogram_npm/@flashcatcloud/miniprogram-platform/browser/pageObservable.js",
                81,
                22,
                false
            ),
            frame(
                "ai.<anonymous>",
                "__dev__/WASubContext.js",
                1,
                356138,
                false
            ),
        ]
    );
}

#[test]
fn wechat_ios_javascriptcore_stack() {
    let stack = "handleUnhandledPromiseRejection@https://usr//chunk_6.appservice.js:189:952\n@[native code]\n@https://lib/WASubContext.js:1:356139\nhandleTap@https://usr//chunk_0.appservice.js:550:2517\nglobal code@";
    assert_eq!(
        summary(stack),
        vec![
            frame(
                "handleUnhandledPromiseRejection",
                "chunk_6.appservice.js",
                189,
                952,
                true
            ),
            frame("", "https://lib/WASubContext.js", 1, 356139, false),
            frame("handleTap", "chunk_0.appservice.js", 550, 2517, true),
        ]
    );
    assert!(parse(stack).header.is_empty());
    assert_eq!(
        summary("_createData@https://servicewechat.qq.com/app-service.js:12618:44"),
        vec![frame("_createData", "app-service.js", 12618, 44, true)]
    );
}

#[test]
fn wechat_android_and_old_stacks() {
    assert_eq!(
        summary("    at a.t.swiperChangeUpDown (https://usr/app-service.js:8534:328219)\n    at https://usr/app-service.js:8534:1440"),
        vec![
            frame("a.t.swiperChangeUpDown", "app-service.js", 8534, 328219, true),
            frame("", "app-service.js", 8534, 1440, true),
        ]
    );
    let old = summary("    at require (WAService.js:19)\n    at appservice?t=1534184446171:1725\n    at Object.o.safeCallback (WASubContext.js:1:213529)");
    assert_eq!(
        old[0],
        (
            "require".into(),
            "WAService.js".into(),
            Some(19),
            None,
            false
        )
    );
    assert_eq!(old[1].2, Some(1725));
    assert_eq!(
        old[2],
        frame("o.safeCallback", "WASubContext.js", 1, 213529, false)
    );
}

#[test]
fn wechat_repeated_header_and_mini_program_error_are_folded() {
    let parsed = parse("MiniProgramError\nCannot read property 'video' of undefined\nTypeError: Cannot read property 'video' of undefined\n    at Page.onShow (pages/video/index.js:10:3)");
    assert_eq!(
        parsed.header,
        vec!["Cannot read property 'video' of undefined".to_string()]
    );
    assert_eq!(parsed.frames.len(), 1);
}

#[test]
fn alipay_stacks() {
    let ide =
        summary("    at m (http://127.0.0.1:50023/index.worker.js?hash=6747f995&t=1:179630:95)");
    assert_eq!(ide, vec![frame("m", "index.worker.js", 179630, 95, true)]);
    let device = summary("    at e.fn (https://appx/af-appx.worker.min.js:1:52341)\n    at Object.handle (https://appx/af-appx.worker.min.js:1:9000)");
    assert!(
        device.iter().all(|f| !f.4),
        "af-appx frames are the runtime's: {device:?}"
    );
    assert_eq!(device[0].1, "af-appx.worker.min.js");
}

#[test]
fn sdk_fixture_stacks() {
    // SkyAPM js: hand-written page frames; promise: Node frames (framework).
    assert_eq!(
        summary(
            "    at pages/detail/index.js:42:18\n    at Object.onLoad (pages/detail/index.js:12:5)"
        ),
        vec![
            frame("", "pages/detail/index.js", 42, 18, true),
            frame("onLoad", "pages/detail/index.js", 12, 5, true),
        ]
    );
    let promise = summary("Error: network timeout\n    at Object.fireRejection (file:///srv/app/sim/core/triggers.mjs:48:43)\n    at warmup (file:///srv/app/sim/core/loop.mjs:52:14)\n    at async file:///srv/app/sim/alipay/entry.mjs:4:1");
    assert_eq!(promise.len(), 3);
    assert!(promise.iter().all(|f| !f.4));
    assert_eq!(promise[2].1, "file:///srv/app/sim/alipay/entry.mjs");
}

#[test]
fn rum_fixture_stack() {
    let stack = "TypeError: Cannot read properties of undefined (reading 'id')\n  at onTapFavorite @ app-service.js:333:50\n  at options.<computed> @ miniprogram_npm/@flashcatcloud/miniprogram-platform/browser/pageObservable.js:95:30\n  at call @ app-service.js:208:30\n  at <anonymous> @ app-service.js:397:1";
    let parsed = parse(stack);
    assert_eq!(parsed.header.len(), 1);
    assert_eq!(
        summary(stack),
        vec![
            frame("onTapFavorite", "app-service.js", 333, 50, true),
            frame(
                "options.<computed>",
                "miniprogram_npm/@flashcatcloud/miniprogram-platform/browser/pageObservable.js",
                95,
                30,
                false
            ),
            frame("call", "app-service.js", 208, 30, true),
            frame("", "app-service.js", 397, 1, true),
        ]
    );
}

#[test]
fn every_fixture_error_stack_parses_into_frames() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    let mut stacks = Vec::new();
    for dir in ["sdk", "rum"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("fixtures are present") {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text.lines() {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                collect_stacks(&value, &mut stacks);
            }
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
                collect_stacks(&value, &mut stacks);
            }
        }
    }
    assert!(stacks.len() >= 10, "only {} stacks found", stacks.len());
    for stack in &stacks {
        let parsed = parse(stack);
        assert!(!parsed.frames.is_empty(), "no frames in {stack:?}");
        for f in &parsed.frames {
            assert!(f.line.is_some(), "frame without line in {stack:?}: {f:?}");
        }
    }
}

/// Strings under `exception.stacktrace` attributes and `error.stack` fields.
fn collect_stacks(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("key").and_then(|k| k.as_str()) == Some("exception.stacktrace") {
                if let Some(s) = value.pointer("/value/stringValue").and_then(|v| v.as_str()) {
                    if !s.is_empty() {
                        out.push(s.to_string());
                    }
                }
            }
            if let Some(s) = map
                .get("error")
                .and_then(|e| e.get("stack"))
                .and_then(|s| s.as_str())
            {
                out.push(s.to_string());
            }
            map.values().for_each(|v| collect_stacks(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_stacks(v, out)),
        _ => {}
    }
}

fn fp_of(service: &str, kind: &str, message: &str, stack: &str) -> String {
    let parsed = parse(stack);
    let frames: Vec<FingerprintFrame<'_>> = parsed
        .frames
        .iter()
        .map(|frame: &Frame| FingerprintFrame {
            frame,
            resolved: None,
        })
        .collect();
    let input = FingerprintInput {
        service,
        kind,
        error_type: "TypeError",
        message,
        frames_considered: 5,
        ..FingerprintInput::default()
    };
    fingerprint(&input, &frames)
}

#[test]
fn same_bug_with_different_ids_is_one_fingerprint() {
    let a = fp_of(
        "shop",
        "js",
        "Cannot read properties of undefined (reading 'id') for order 18273",
        "    at Object.onLoad (pages/detail/index.js:12:5)",
    );
    let b = fp_of(
        "shop",
        "js",
        "Cannot read properties of undefined (reading 'sku') for order 99",
        "    at Object.onLoad (pages/detail/index.js:14:9)",
    );
    assert_eq!(
        a, b,
        "line, column, quoted text and numbers must not split an issue"
    );
    assert_eq!(a.len(), 32);
    // Bundled, unresolved frames say nothing stable: the normalised message groups.
    let c = fp_of(
        "shop",
        "app",
        "Cannot read properties of undefined (reading 'id')",
        "  at onTapFavorite @ app-service.js:333:50",
    );
    let d = fp_of(
        "shop",
        "app",
        "Cannot read properties of null (reading 'sku')",
        "  at x @ app-service.js:9:1",
    );
    assert_ne!(c, d);
    let e = fp_of(
        "shop",
        "app",
        "Cannot read properties of undefined (reading 'order')",
        "  at y @ app-service.js:1:2",
    );
    assert_eq!(c, e);
}

#[test]
fn different_culprits_are_two_fingerprints() {
    let message = "Cannot read properties of undefined (reading 'id')";
    let a = fp_of(
        "shop",
        "js",
        message,
        "    at Object.onLoad (pages/detail/index.js:12:5)",
    );
    let b = fp_of(
        "shop",
        "js",
        message,
        "    at Object.onShow (pages/cart/index.js:12:5)",
    );
    assert_ne!(a, b);
    // And the service is part of the key.
    let c = fp_of(
        "other",
        "js",
        message,
        "    at Object.onLoad (pages/detail/index.js:12:5)",
    );
    assert_ne!(a, c);
}

#[test]
fn network_and_missing_page_errors_group_by_request_and_path() {
    let input = |message: &'static str, status: Option<&'static str>| FingerprintInput {
        service: "shop",
        kind: "ajax",
        message,
        http_status: status,
        frames_considered: 5,
        ..FingerprintInput::default()
    };
    assert_eq!(
        fingerprint_parts(
            &input(
                "POST https://api.example.com/orders/123/pay?x=1 failed: 500",
                None
            ),
            &[]
        ),
        vec!["net", "POST", "api.example.com", "/orders/{id}/pay", "5xx"]
    );
    assert_eq!(
        fingerprint(
            &input(
                "POST https://api.example.com/orders/123/pay failed: 502",
                None
            ),
            &[]
        ),
        fingerprint(
            &input(
                "POST https://api.example.com/orders/77/pay failed: 500",
                None
            ),
            &[]
        ),
    );
    let rum = FingerprintInput {
        kind: "network",
        ..input("POST https://api.shop.example/api/cart/items failed: request:fail errcode:-101 cronet_error_code:-101", None)
    };
    assert_eq!(
        fingerprint_parts(&rum, &[]),
        vec!["net", "POST", "api.shop.example", "/api/cart/items", "fail"]
    );
    let missing = FingerprintInput {
        kind: "pageNotFound",
        ..input("page not found: pages/promo-2023/index", None)
    };
    assert_eq!(
        fingerprint_parts(&missing, &[]),
        vec!["404", "pages/promo-2023/index"]
    );
    let custom = FingerprintInput {
        sdk_fingerprint: Some("checkout-broken"),
        ..input("anything", None)
    };
    assert_eq!(
        fingerprint_parts(&custom, &[]),
        vec!["custom", "checkout-broken"]
    );
}
