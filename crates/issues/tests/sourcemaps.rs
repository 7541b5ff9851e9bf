//! Source maps: archives are bounded while unpacking, and lookups answer only for the line asked.
use skylark_issues::{unpack_zip, Error, FrameRules, MapSource, Resolver, SourceMapLimits};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

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
