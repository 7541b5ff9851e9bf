//! Wiring of error issues: the grouping the write path runs on error logs, source maps read from
//! storage, and the source map API (`/api/sourcemaps`).
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::Mutex;
use skylark_core::{IssueOccurrence, LogRecord};
use skylark_issues::{FrameRules, Grouper, GrouperSettings, MapSource, SourceMapLimits};
use skylark_storage::{SourceMapRecord, Storage};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a service's list of source maps is trusted before storage is asked again. Uploads
/// and deletes through this node refresh it at once; another node's show within this time.
pub(crate) const MAP_CATALOG_TTL: Duration = Duration::from_secs(10);

/// Services whose map lists are kept at most (a full catalog starts over).
const MAP_CATALOG_SERVICES: usize = 10_000;

/// Source maps as storage holds them. Which maps exist is kept per service for
/// [`MAP_CATALOG_TTL`]: every frame of every error log asks for up to three maps, mostly ones
/// never uploaded, and on a database each question was a round trip on the ingest path.
pub struct StorageMaps {
    storage: Arc<dyn Storage>,
    catalog: Mutex<HashMap<String, ListedMaps>>,
}

/// A service's maps and when storage listed them.
type ListedMaps = (Instant, Arc<Vec<SourceMapRecord>>);

impl StorageMaps {
    /// Maps read from `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        StorageMaps {
            storage,
            catalog: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets the map lists (after an upload or delete).
    pub fn invalidate(&self) {
        self.catalog.lock().clear();
    }

    /// The maps stored for `service`, newest upload first (as storage lists them).
    fn maps_of(&self, service: &str) -> Arc<Vec<SourceMapRecord>> {
        if let Some((at, maps)) = self.catalog.lock().get(service) {
            if at.elapsed() < MAP_CATALOG_TTL {
                return maps.clone();
            }
        }
        match self.storage.list_source_maps(Some(service)) {
            Ok(maps) => {
                let maps = Arc::new(maps);
                let mut catalog = self.catalog.lock();
                if catalog.len() >= MAP_CATALOG_SERVICES {
                    catalog.clear();
                }
                catalog.insert(service.to_string(), (Instant::now(), maps.clone()));
                maps
            }
            Err(error) => {
                tracing::warn!(%error, service, "listing source maps failed");
                Arc::new(Vec::new())
            }
        }
    }
}

impl MapSource for StorageMaps {
    fn map_bytes(&self, service: &str, version: &str, file: &str) -> Option<Arc<Vec<u8>>> {
        let listed = self
            .maps_of(service)
            .iter()
            .any(|m| m.version == version && m.file == file);
        if !listed {
            return None;
        }
        match self.storage.source_map(service, version, file) {
            Ok(bytes) => bytes.map(Arc::new),
            Err(error) => {
                tracing::warn!(%error, service, version, file, "reading a source map failed");
                None
            }
        }
    }

    fn versions_with_map(&self, service: &str, file: &str) -> Vec<String> {
        self.maps_of(service)
            .iter()
            .filter(|m| m.file == file)
            .map(|m| m.version.clone())
            .collect()
    }
}

/// What the write path and the query side share: the grouper and the maps it resolves with.
pub struct IssueGrouping {
    grouper: Arc<Grouper>,
    maps: Arc<StorageMaps>,
    limits: SourceMapLimits,
    rules: FrameRules,
}

impl IssueGrouping {
    /// Grouping with `settings`, resolving through maps in `storage`.
    pub fn new(settings: GrouperSettings, storage: Arc<dyn Storage>) -> Self {
        IssueGrouping {
            limits: settings.limits,
            rules: FrameRules {
                strip_prefixes: settings.strip_prefixes.clone(),
            },
            grouper: Arc::new(Grouper::new(settings)),
            maps: Arc::new(StorageMaps::new(storage)),
        }
    }

    /// The occurrence a stored log record is, if it is an error log.
    pub fn occurrence(
        &self,
        record: &LogRecord,
        source_attributes: &[(String, String)],
    ) -> Option<IssueOccurrence> {
        self.grouper
            .occurrence(self.maps.as_ref(), record, source_attributes)
    }

    /// The grouper.
    pub fn grouper(&self) -> Arc<Grouper> {
        self.grouper.clone()
    }

    /// The maps.
    pub fn maps(&self) -> Arc<dyn MapSource> {
        self.maps.clone()
    }
}

/// State of the source map API.
#[derive(Clone)]
pub struct SourceMapApi {
    /// Where maps are kept.
    pub storage: Arc<dyn Storage>,
    /// Grouping whose decoded-map cache an upload invalidates.
    pub grouping: Arc<IssueGrouping>,
    /// Required bearer token; empty: none.
    pub token: String,
    /// "Now", for upload times.
    pub clock: crate::pipeline::Clock,
}

/// `POST|GET|DELETE /api/sourcemaps`.
pub fn sourcemap_router(api: SourceMapApi) -> Router {
    Router::new()
        .route(
            "/api/sourcemaps",
            get(list_maps).post(upload_maps).delete(delete_map),
        )
        .with_state(api)
}

#[derive(serde::Deserialize, Default)]
struct MapParams {
    service: Option<String>,
    version: Option<String>,
    file: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() });
    (status, Json(body)).into_response()
}

fn status_of(code: skylark_core::ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
}

fn authorized(api: &SourceMapApi, headers: &HeaderMap) -> Result<(), Box<Response>> {
    if api.token.is_empty() {
        return Ok(());
    }
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compared in full whatever the first difference, so the time taken says nothing.
    let same = given.len() == api.token.len()
        && given
            .bytes()
            .zip(api.token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "the source map API needs `Authorization: Bearer <SW_ADMIN_TOKEN>`",
        )))
    }
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, Box<Response>> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                format!("query parameter `{name}` is required"),
            ))
        })
}

async fn list_maps(
    State(api): State<SourceMapApi>,
    headers: HeaderMap,
    Query(params): Query<MapParams>,
) -> Response {
    if let Err(response) = authorized(&api, &headers) {
        return *response;
    }
    let storage = api.storage.clone();
    let service = params.service.filter(|s| !s.is_empty());
    match tokio::task::spawn_blocking(move || storage.list_source_maps(service.as_deref())).await {
        Ok(Ok(maps)) => Json(serde_json::json!({ "maps": maps })).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn delete_map(
    State(api): State<SourceMapApi>,
    headers: HeaderMap,
    Query(params): Query<MapParams>,
) -> Response {
    if let Err(response) = authorized(&api, &headers) {
        return *response;
    }
    let (service, version, file) = match (
        required(&params.service, "service"),
        required(&params.version, "version"),
        required(&params.file, "file"),
    ) {
        (Ok(s), Ok(v), Ok(f)) => (s.to_string(), v.to_string(), f.to_string()),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return *r,
    };
    let file = api.grouping.rules.normalise_file(&file);
    let storage = api.storage.clone();
    let deleted =
        tokio::task::spawn_blocking(move || storage.delete_source_map(&service, &version, &file))
            .await;
    api.grouping.grouper.invalidate();
    api.grouping.maps.invalidate();
    match deleted {
        Ok(Ok(true)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Ok(false)) => error(StatusCode::NOT_FOUND, "no such source map"),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Stores one map, or every map in a zip. The body is read up to the map size limit only.
async fn upload_maps(
    State(api): State<SourceMapApi>,
    headers: HeaderMap,
    Query(params): Query<MapParams>,
    body: Body,
) -> Response {
    if let Err(response) = authorized(&api, &headers) {
        return *response;
    }
    let (service, version) = match (
        required(&params.service, "service"),
        required(&params.version, "version"),
    ) {
        (Ok(s), Ok(v)) => (s.to_string(), v.to_string()),
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    let limits = api.grouping.limits;
    let bytes = match axum::body::to_bytes(body, limits.max_map_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "upload is over the {} byte limit (SW_SOURCEMAP_MAX_BYTES)",
                    limits.max_map_bytes
                ),
            )
        }
    };
    let file = params
        .file
        .as_deref()
        .map(|f| api.grouping.rules.normalise_file(f))
        .filter(|f| !f.is_empty());
    // Decoding a large map takes a while: off the async workers.
    let checked = tokio::task::spawn_blocking(move || {
        if skylark_issues::is_zip(&bytes) {
            return skylark_issues::unpack_zip(&bytes, &limits)
                .map(|maps| maps.into_iter().map(|m| (m.file, m.bytes)).collect());
        }
        let summary = skylark_issues::check_map(&bytes, &limits)?;
        let file = file.or(summary.file).ok_or_else(|| {
            skylark_issues::Error::InvalidMap(
                "the map names no `file`; pass the generated file as ?file=".into(),
            )
        })?;
        Ok(vec![(file, bytes.to_vec())])
    })
    .await;
    let maps: Vec<(String, Vec<u8>)> = match checked {
        Ok(Ok(maps)) if maps.is_empty() => {
            return error(StatusCode::BAD_REQUEST, "the zip holds no *.map files")
        }
        Ok(Ok(maps)) => maps,
        Ok(Err(e)) => return error(status_of(e.code()), e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let now_ms = (api.clock)();
    let storage = api.storage.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let mut stored = Vec::new();
        for (file, bytes) in maps {
            let record = SourceMapRecord {
                service: service.clone(),
                version: version.clone(),
                file: api_file(&file),
                bytes: bytes.len() as u64,
                uploaded_ms: now_ms,
            };
            storage.put_source_map(&record, &bytes)?;
            stored.push(record);
        }
        Ok::<_, skylark_storage::Error>(stored)
    })
    .await;
    api.grouping.grouper.invalidate();
    api.grouping.maps.invalidate();
    match stored {
        Ok(Ok(stored)) => {
            tracing::info!(maps = stored.len(), "source maps stored");
            (
                StatusCode::CREATED,
                Json(serde_json::json!({ "stored": stored })),
            )
                .into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A file name as maps are keyed: no leading `./` or `/`.
fn api_file(file: &str) -> String {
    file.trim_start_matches("./")
        .trim_start_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use skylark_storage::MemStorage;

    fn record(version: &str, file: &str) -> SourceMapRecord {
        SourceMapRecord {
            service: "shop".into(),
            version: version.into(),
            file: file.into(),
            bytes: 3,
            uploaded_ms: 1,
        }
    }

    #[test]
    fn the_map_catalog_answers_for_maps_never_uploaded_and_follows_uploads() {
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let maps = StorageMaps::new(storage.clone());
        assert_eq!(maps.map_bytes("shop", "1.0.0", "app.js"), None);
        // Stored behind the catalog's back (another node): not seen until the list is renewed.
        storage
            .put_source_map(&record("1.0.0", "app.js"), b"map")
            .unwrap();
        assert_eq!(maps.map_bytes("shop", "1.0.0", "app.js"), None);
        maps.invalidate();
        assert_eq!(
            maps.map_bytes("shop", "1.0.0", "app.js").as_deref(),
            Some(&b"map".to_vec())
        );
        assert_eq!(maps.versions_with_map("shop", "app.js"), vec!["1.0.0"]);
        assert!(maps.versions_with_map("shop", "other.js").is_empty());
        assert_eq!(maps.map_bytes("shop", "2.0.0", "app.js"), None);
    }
}
