//! Source maps: archives are bounded while unpacking, and lookups answer only for the line asked.
use parking_lot::Mutex;
use skylark_core::{ContentType, Layer, LogRecord};
use skylark_issues::{
    unpack_zip, Error, FrameRules, Grouper, GrouperSettings, MapSource, Resolver, SourceMapLimits,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// A map for `app-service.js`: line 1 column 101 (1-based) is `handleTap` at pages/a.js:7:3; line
/// 3 has no mappings at all.
fn map() -> Vec<u8> {
    let mut builder = sourcemap::SourceMapBuilder::new(Some("app-service.js"));
    builder.add(0, 100, 6, 2, Some("pages/a.js"), Some("handleTap"), false);
    builder.add(1, 0, 9, 0, Some("pages/a.js"), None, false);
    let mut out = Vec::new();
    builder.into_sourcemap().to_writer(&mut out).unwrap();
    out
}

struct Maps(BTreeMap<(String, String), Arc<Vec<u8>>>);

impl MapSource for Maps {
    fn map_bytes(&self, _service: &str, version: &str, file: &str) -> Option<Arc<Vec<u8>>> {
        self.0
            .get(&(version.to_string(), file.to_string()))
            .cloned()
    }
    fn versions_with_map(&self, _service: &str, file: &str) -> Vec<String> {
        self.0
            .keys()
            .rev()
            .filter(|(_, f)| f == file)
            .map(|(v, _)| v.clone())
            .collect()
    }
}

fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn lookups_resolve_only_on_the_line_asked_and_fall_back_saying_so() {
    let maps = Maps(BTreeMap::from([(
        ("1.0.0".to_string(), "app-service.js".to_string()),
        Arc::new(map()),
    )]));
    let resolver = Resolver::new(SourceMapLimits::default(), 1 << 20);
    let frames = FrameRules::default()
        .parse("    at e (https://usr/app-service.js:1:101)\n    at f (https://usr/app-service.js:3:5)")
        .frames;
    let hit = resolver
        .resolve(&maps, "shop", "1.0.0", &frames[0])
        .unwrap();
    assert_eq!(
        (
            hit.function.as_str(),
            hit.file.as_str(),
            hit.line,
            hit.column,
            hit.fallback
        ),
        ("handleTap", "pages/a.js", 7, 3, false)
    );
    // Line 3 has no token: the crate's nearest-token answer (line 2) must not be taken.
    assert!(resolver
        .resolve(&maps, "shop", "1.0.0", &frames[1])
        .is_none());
    let fallback = resolver
        .resolve(&maps, "shop", "2.0.0", &frames[0])
        .unwrap();
    assert_eq!(
        (fallback.map_version.as_str(), fallback.fallback),
        ("1.0.0", true)
    );
}

#[test]
fn zip_bombs_and_crowded_zips_are_refused_within_the_limits() {
    let limits = SourceMapLimits {
        max_map_bytes: 1024 * 1024,
        max_zip_entries: 3,
        max_zip_unpacked_bytes: 2 * 1024 * 1024,
    };
    let bomb = zip_of(&[("__APP__/app-service.map.map", vec![b' '; 64 * 1024 * 1024])]);
    assert!(bomb.len() < 1024 * 1024);
    let err = unpack_zip(&bomb, &limits).unwrap_err();
    assert!(matches!(err, Error::ArchiveTooLarge(_)), "{err}");
    let crowded: Vec<(String, Vec<u8>)> = (0..4).map(|i| (format!("p{i}.js.map"), map())).collect();
    let crowded: Vec<(&str, Vec<u8>)> = crowded
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    let err = unpack_zip(&zip_of(&crowded), &limits).unwrap_err();
    assert!(matches!(err, Error::ArchiveTooLarge(_)), "{err}");
    let err = unpack_zip(b"PK\x03\x04 this is not a zip", &limits).unwrap_err();
    assert!(matches!(err, Error::InvalidArchive(_)), "{err}");
    let good = unpack_zip(
        &zip_of(&[
            ("__APP__/app-service.map.map", map()),
            ("packages/a/app-service.map.map", map()),
            ("notes.txt", b"x".to_vec()),
        ]),
        &limits,
    )
    .unwrap();
    let files: Vec<&str> = good.iter().map(|m| m.file.as_str()).collect();
    assert_eq!(files, ["app-service.js", "packages/a/app-service.js"]);
}

/// Maps that can be uploaded while a grouper reads them.
struct UploadableMaps(Mutex<Maps>);

impl MapSource for UploadableMaps {
    fn map_bytes(&self, service: &str, version: &str, file: &str) -> Option<Arc<Vec<u8>>> {
        self.0.lock().map_bytes(service, version, file)
    }
    fn versions_with_map(&self, service: &str, file: &str) -> Vec<String> {
        self.0.lock().versions_with_map(service, file)
    }
}

fn error_log(device: &str) -> LogRecord {
    LogRecord {
        service: "shop".to_string(),
        service_instance: device.to_string(),
        endpoint: "pages/a".to_string(),
        layer: Layer::WECHAT_MINI_PROGRAM,
        timestamp_ms: 1_700_000_000_000,
        trace_id: None,
        segment_id: None,
        span_id: None,
        content_type: ContentType::Text,
        content: "TypeError: Cannot read property 'x' of undefined".to_string(),
        tags: vec![
            ("exception.type".to_string(), "js".to_string()),
            (
                "exception.stacktrace".to_string(),
                "TypeError: Cannot read property 'x' of undefined\n    at e (https://usr/app-service.js:1:101)".to_string(),
            ),
            ("service.version".to_string(), "1.0.0".to_string()),
            ("user.id".to_string(), device.to_string()),
        ],
    }
}

#[test]
fn a_repeated_error_is_grouped_alike_until_a_map_upload_invalidates_what_was_derived() {
    let maps = UploadableMaps(Mutex::new(Maps(BTreeMap::new())));
    let grouper = Grouper::new(GrouperSettings {
        memo_ttl: Duration::from_secs(3600),
        ..GrouperSettings::default()
    });
    let first = grouper.occurrence(&maps, &error_log("d1"), &[]).unwrap();
    let second = grouper.occurrence(&maps, &error_log("d2"), &[]).unwrap();
    assert_eq!(first.culprit, "e (app-service.js)");
    // What the error log itself carries is never memoised.
    assert_eq!(second.user_id.as_deref(), Some("d2"));
    assert_eq!(
        (&second.fingerprint, &second.title, &second.culprit),
        (&first.fingerprint, &first.title, &first.culprit)
    );
    // Another message is another issue, not the memoised one.
    let mut other = error_log("d3");
    other.content = "RangeError: too deep".to_string();
    let other = grouper.occurrence(&maps, &other, &[]).unwrap();
    assert_ne!(other.fingerprint, first.fingerprint);
    assert!(other.title.ends_with("too deep"), "{}", other.title);

    maps.0.lock().0.insert(
        ("1.0.0".to_string(), "app-service.js".to_string()),
        Arc::new(map()),
    );
    grouper.invalidate();
    let resolved = grouper.occurrence(&maps, &error_log("d4"), &[]).unwrap();
    assert_eq!(resolved.culprit, "handleTap (pages/a.js)");
    assert_ne!(resolved.fingerprint, first.fingerprint);
}

#[test]
fn memoised_groupings_expire_so_maps_stored_by_another_node_are_seen() {
    let maps = UploadableMaps(Mutex::new(Maps(BTreeMap::new())));
    let grouper = Grouper::new(GrouperSettings {
        memo_ttl: Duration::ZERO,
        ..GrouperSettings::default()
    });
    let first = grouper.occurrence(&maps, &error_log("d1"), &[]).unwrap();
    maps.0.lock().0.insert(
        ("1.0.0".to_string(), "app-service.js".to_string()),
        Arc::new(map()),
    );
    // Decoded maps are cached only once found; the memo has expired: the map is used.
    let later = grouper.occurrence(&maps, &error_log("d1"), &[]).unwrap();
    assert_eq!(first.culprit, "e (app-service.js)");
    assert_eq!(later.culprit, "handleTap (pages/a.js)");
}
