//! Source maps (errors-and-sourcemaps.md §2, §5): checking uploads, unpacking WeChat's zips,
//! and resolving minified frames to original ones with the `sourcemap` crate.
use crate::stack::Frame;
use crate::{Error, Result};
use parking_lot::Mutex;
use sourcemap::{DecodedMap, SourceMap};
use std::collections::VecDeque;
use std::io::Read;
use std::sync::Arc;

/// Bounds on what an upload may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceMapLimits {
    /// Largest single map, in bytes.
    pub max_map_bytes: usize,
    /// Most entries a zip may have.
    pub max_zip_entries: usize,
    /// Largest total of a zip's unpacked maps, in bytes.
    pub max_zip_unpacked_bytes: usize,
}

impl Default for SourceMapLimits {
    fn default() -> Self {
        SourceMapLimits {
            max_map_bytes: 32 * 1024 * 1024,
            max_zip_entries: 1000,
            max_zip_unpacked_bytes: 256 * 1024 * 1024,
        }
    }
}

/// What a checked map says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSummary {
    /// The map's `file` field, if any.
    pub file: Option<String>,
    /// Original sources it maps to.
    pub sources: usize,
}

/// Decodes `bytes` as a source map, refusing what cannot be resolved against: not JSON, not a
/// map, an index map whose sections point at URLs, a Hermes map, or one over the size limit.
pub fn check_map(bytes: &[u8], limits: &SourceMapLimits) -> Result<MapSummary> {
    let map = decode(bytes, limits)?;
    Ok(MapSummary {
        file: map.get_file().map(str::to_string),
        sources: map.get_source_count() as usize,
    })
}

fn decode(bytes: &[u8], limits: &SourceMapLimits) -> Result<SourceMap> {
    if bytes.len() > limits.max_map_bytes {
        return Err(Error::MapTooLarge {
            bytes: bytes.len(),
            limit: limits.max_map_bytes,
        });
    }
    match sourcemap::decode_slice(bytes).map_err(|e| Error::InvalidMap(e.to_string()))? {
        DecodedMap::Regular(map) => Ok(map),
        DecodedMap::Index(index) => {
            if index.sections().any(|s| s.get_url().is_some()) {
                return Err(Error::InvalidMap(
                    "index maps with url sections are not supported; embed the maps".into(),
                ));
            }
            index
                .flatten()
                .map_err(|e| Error::InvalidMap(e.to_string()))
        }
        DecodedMap::Hermes(_) => Err(Error::InvalidMap("hermes maps are not supported".into())),
    }
}

/// One map taken out of an archive: the generated file it belongs to, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMap {
    /// The generated file (`app-service.js`, `packages/a/app-service.js`, `pages/x.js`).
    pub file: String,
    /// The map.
    pub bytes: Vec<u8>,
}

/// The generated file a map at `path` belongs to: `.map` and WeChat's `.map.map` dropped, the
/// main-package folder `__APP__/` stripped (`__FULL__/` is kept, it is the fallback layout).
pub fn generated_file_for(path: &str) -> Option<String> {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    let path = path.strip_prefix("__APP__/").unwrap_or(path);
    if let Some(stem) = path.strip_suffix(".map.map") {
        return Some(format!("{stem}.js"));
    }
    let stem = path.strip_suffix(".map")?;
    if stem.ends_with(".js") {
        Some(stem.to_string())
    } else {
        Some(format!("{stem}.js"))
    }
}

/// Whether `bytes` start like a zip archive.
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// The maps inside a zip (entries not ending in `.map` are skipped), each checked. The entry
/// count, each entry's size and the unpacked total are bounded *while* reading, so a zip bomb
/// costs at most the limits.
pub fn unpack_zip(bytes: &[u8], limits: &SourceMapLimits) -> Result<Vec<ArchivedMap>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| Error::InvalidArchive(e.to_string()))?;
    if archive.len() > limits.max_zip_entries {
        return Err(Error::ArchiveTooLarge(format!(
            "{} entries, at most {} allowed",
            archive.len(),
            limits.max_zip_entries
        )));
    }
    let mut total = 0usize;
    let mut maps = Vec::new();
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| Error::InvalidArchive(e.to_string()))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().to_string();
        let Some(file) = generated_file_for(&name) else {
            continue;
        };
        if name.split('/').any(|part| part == "..") {
            return Err(Error::InvalidArchive(format!(
                "entry {name} leaves the archive"
            )));
        }
        // Never trust the declared size: read one byte past the limit to detect a lie.
        let budget = limits
            .max_map_bytes
            .min(limits.max_zip_unpacked_bytes.saturating_sub(total));
        let mut out = Vec::new();
        entry
            .take(budget as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::InvalidArchive(format!("{name}: {e}")))?;
        if out.len() > budget {
            return Err(Error::ArchiveTooLarge(format!(
                "{name} unpacks past the limits ({} bytes per map, {} bytes in all)",
                limits.max_map_bytes, limits.max_zip_unpacked_bytes
            )));
        }
        total += out.len();
        check_map(&out, limits).map_err(|e| Error::InvalidArchive(format!("{name}: {e}")))?;
        maps.push(ArchivedMap { file, bytes: out });
    }
    Ok(maps)
}

/// A frame after resolution: where the minified position came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResolvedFrame {
    /// Original function name (the minified one when the map has no names).
    pub function: String,
    /// Original source file.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// The original source line, when the map embeds sources.
    pub source: Option<String>,
    /// The version whose map resolved the frame.
    pub map_version: String,
    /// Set when no map was uploaded for the event's version and the newest version's map was
    /// used instead (positions may be off).
    pub fallback: bool,
}

/// Where maps come from (storage, in the server).
pub trait MapSource: Send + Sync {
    /// The map stored for exactly this service, version and generated file.
    fn map_bytes(&self, service: &str, version: &str, file: &str) -> Option<Arc<Vec<u8>>>;
    /// Versions with a map for this service and file, newest upload first.
    fn versions_with_map(&self, service: &str, file: &str) -> Vec<String>;
}

type CacheKey = (String, String, String);

/// Decoded maps kept for reuse, bounded by the bytes of the maps they came from.
struct MapCache {
    entries: VecDeque<(CacheKey, Arc<SourceMap>, usize)>,
    bytes: usize,
    max_bytes: usize,
}

impl MapCache {
    fn get(&mut self, key: &CacheKey) -> Option<Arc<SourceMap>> {
        let i = self.entries.iter().position(|(k, _, _)| k == key)?;
        let entry = self.entries.remove(i)?;
        let map = entry.1.clone();
        self.entries.push_back(entry);
        Some(map)
    }

    fn put(&mut self, key: CacheKey, map: Arc<SourceMap>, size: usize) {
        self.entries.push_back((key, map, size));
        self.bytes += size;
        while self.bytes > self.max_bytes && self.entries.len() > 1 {
            if let Some((_, _, size)) = self.entries.pop_front() {
                self.bytes -= size;
            }
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

/// Resolves frames through the maps a [`MapSource`] holds, caching decoded maps.
pub struct Resolver {
    limits: SourceMapLimits,
    cache: Mutex<MapCache>,
}

impl Resolver {
    /// A resolver keeping decoded maps of at most `cache_bytes` (source size) in memory.
    pub fn new(limits: SourceMapLimits, cache_bytes: usize) -> Self {
        Resolver {
            limits,
            cache: Mutex::new(MapCache {
                entries: VecDeque::new(),
                bytes: 0,
                max_bytes: cache_bytes,
            }),
        }
    }

    /// Forgets decoded maps (after an upload or delete replaced what storage holds).
    pub fn invalidate(&self) {
        self.cache.lock().clear();
    }

    fn map(
        &self,
        source: &dyn MapSource,
        service: &str,
        version: &str,
        file: &str,
    ) -> Option<Arc<SourceMap>> {
        let key = (service.to_string(), version.to_string(), file.to_string());
        if let Some(map) = self.cache.lock().get(&key) {
            return Some(map);
        }
        let bytes = source.map_bytes(service, version, file)?;
        match decode(&bytes, &self.limits) {
            Ok(map) => {
                let map = Arc::new(map);
                self.cache.lock().put(key, map.clone(), bytes.len());
                Some(map)
            }
            Err(error) => {
                tracing::warn!(service, version, file, %error, "stored source map cannot be used");
                None
            }
        }
    }

    /// The original position of `frame` of an event from `service` at `version`: the map of that
    /// version for the frame's file (also under WeChat's `__FULL__/`), else the newest version's
    /// map for it, marked as a fallback.
    pub fn resolve(
        &self,
        source: &dyn MapSource,
        service: &str,
        version: &str,
        frame: &Frame,
    ) -> Option<ResolvedFrame> {
        let (line, column) = (frame.line?, frame.column.unwrap_or(1));
        if frame.file.is_empty() || line == 0 {
            return None;
        }
        let full = format!("__FULL__/{}", frame.file);
        for file in [frame.file.as_str(), full.as_str()] {
            if let Some(map) = self.map(source, service, version, file) {
                return lookup(&map, frame, line, column, version, false);
            }
        }
        let newest = source.versions_with_map(service, &frame.file);
        let fallback = newest.iter().find(|v| v.as_str() != version)?;
        let map = self.map(source, service, fallback, &frame.file)?;
        lookup(&map, frame, line, column, fallback, true)
    }
}

fn lookup(
    map: &SourceMap,
    frame: &Frame,
    line: u32,
    column: u32,
    version: &str,
    fallback: bool,
) -> Option<ResolvedFrame> {
    // The crate is 0-based and returns the nearest token at or before the position, possibly on
    // an earlier line: a token from another line would be a wrong answer.
    let (dst_line, dst_col) = (line - 1, column.saturating_sub(1));
    let token = map.lookup_token(dst_line, dst_col)?;
    if token.get_dst_line() != dst_line || token.get_src_line() == u32::MAX {
        return None;
    }
    let file = token.get_source()?.to_string();
    // Without the minified source the enclosing function cannot be recovered by scope, so the
    // name the map gives the position is taken, else the minified name.
    let function = token
        .get_name()
        .map(str::to_string)
        .unwrap_or_else(|| frame.function.clone());
    let source = token.get_source_view().and_then(|view| {
        view.get_line(token.get_src_line())
            .map(|l| l.chars().take(500).collect::<String>())
    });
    Some(ResolvedFrame {
        function,
        file,
        line: token.get_src_line() + 1,
        column: token.get_src_col().saturating_add(1),
        source,
        map_version: version.to_string(),
        fallback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_name_their_generated_files() {
        assert_eq!(
            generated_file_for("__APP__/app-service.map.map").as_deref(),
            Some("app-service.js")
        );
        assert_eq!(
            generated_file_for("packages/promo/app-service.map.map").as_deref(),
            Some("packages/promo/app-service.js")
        );
        assert_eq!(
            generated_file_for("__APP__/pages/index.js.map").as_deref(),
            Some("pages/index.js")
        );
        assert_eq!(
            generated_file_for("index.worker.js.map").as_deref(),
            Some("index.worker.js")
        );
        assert_eq!(generated_file_for("readme.txt"), None);
    }

    #[test]
    fn broken_maps_are_refused_with_a_reason() {
        let limits = SourceMapLimits::default();
        assert!(matches!(
            check_map(b"{not json", &limits),
            Err(Error::InvalidMap(_))
        ));
        let small = SourceMapLimits {
            max_map_bytes: 10,
            ..limits
        };
        assert!(matches!(
            check_map(
                br#"{"version":3,"sources":[],"names":[],"mappings":""}"#,
                &small
            ),
            Err(Error::MapTooLarge { .. })
        ));
    }
}
