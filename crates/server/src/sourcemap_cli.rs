//! `skylark sourcemaps upload DIR --service S --version V --url URL [--token T]`: pushes every
//! `*.map` under DIR to a server's `/api/sourcemaps`, each under the generated file it maps
//! (its path relative to DIR without `.map`; WeChat's `__APP__/x.map.map` → `x.js`).
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Folders deeper than this are not walked (a link loop or a mistaken root stops here).
const WALK_MAX_DEPTH: usize = 32;
/// Most maps one run uploads.
const UPLOAD_MAX_FILES: usize = 10_000;

/// What to upload where.
#[derive(Debug, Clone)]
pub struct UploadArgs {
    /// Folder walked for `*.map`.
    pub dir: PathBuf,
    /// Service the maps belong to.
    pub service: String,
    /// Version they were built for.
    pub version: String,
    /// Server base URL, e.g. `http://127.0.0.1:12800`.
    pub url: String,
    /// Bearer token (`SW_ADMIN_TOKEN` of the server), if it requires one.
    pub token: Option<String>,
}

impl UploadArgs {
    /// Parses `DIR --service S --version V --url URL [--token T]`; the token defaults to the
    /// `SW_ADMIN_TOKEN` environment variable.
    pub fn parse(args: &[String]) -> Result<UploadArgs> {
        let (mut dir, mut service, mut version, mut url, mut token) =
            (None, None, None, None, std::env::var("SW_ADMIN_TOKEN").ok());
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--service" => service = Some(value("--service")?),
                "--version" => version = Some(value("--version")?),
                "--url" => url = Some(value("--url")?),
                "--token" => token = Some(value("--token")?),
                other if other.starts_with("--") => bail!("unknown option {other}"),
                other => dir = Some(PathBuf::from(other)),
            }
        }
        Ok(UploadArgs {
            dir: dir.context("the folder of maps is missing")?,
            service: service.context("--service is required")?,
            version: version.context("--version is required")?,
            url: url.unwrap_or_else(|| "http://127.0.0.1:12800".to_string()),
            token: token.filter(|t| !t.is_empty()),
        })
    }
}

/// Every `*.map` file under `dir`, sorted.
pub fn find_maps(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), 0usize)];
    while let Some((folder, depth)) = pending.pop() {
        let entries = std::fs::read_dir(&folder)
            .with_context(|| format!("cannot read {}", folder.display()))?;
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() && depth < WALK_MAX_DEPTH {
                pending.push((path, depth + 1));
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "map") {
                found.push(path);
                if found.len() > UPLOAD_MAX_FILES {
                    bail!("more than {UPLOAD_MAX_FILES} maps under {}", dir.display());
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Uploads every map; returns the generated files stored. Stops at the first refusal, naming
/// the map and the server's reason.
pub async fn upload(args: &UploadArgs) -> Result<Vec<String>> {
    let maps = find_maps(&args.dir)?;
    if maps.is_empty() {
        bail!("no *.map files under {}", args.dir.display());
    }
    let client = reqwest::Client::new();
    let endpoint = format!("{}/api/sourcemaps", args.url.trim_end_matches('/'));
    let mut stored = Vec::new();
    for path in maps {
        let relative = path.strip_prefix(&args.dir).unwrap_or(&path);
        let relative = relative.to_string_lossy().replace('\\', "/");
        let file = skylark_issues::generated_file_for(&relative)
            .with_context(|| format!("{relative} is not a map"))?;
        let body =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut request = client
            .post(&endpoint)
            .query(&[
                ("service", args.service.as_str()),
                ("version", args.version.as_str()),
                ("file", file.as_str()),
            ])
            .body(body);
        if let Some(token) = &args.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {endpoint}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("{relative}: the server refused it ({status}): {text}");
        }
        stored.push(file);
    }
    Ok(stored)
}
