//! Error issues: occurrences of one error grouped under one fingerprint, and the lifecycle state
//! kept per group. How occurrences are fingerprinted and how the state moves lives in
//! `skylark-issues`; these are only the shapes every crate passes around and storage keeps.
use crate::Layer;

/// Distinct affected pages kept per issue; later pages are not listed (the count goes on).
pub const ISSUE_PAGES_MAX: usize = 50;
/// Distinct affected versions kept per issue (oldest are kept: the first version matters).
pub const ISSUE_VERSIONS_MAX: usize = 200;
/// Distinct sessions (and users) remembered per issue; past this `session_count` stops growing
/// and `sessions_capped` says so.
pub const ISSUE_SESSIONS_MAX: usize = 1000;

/// Where an issue stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum IssueStatus {
    /// Open (new or ongoing).
    #[default]
    Unresolved,
    /// Marked fixed by a user.
    Resolved,
    /// Muted by a user; occurrences are still counted.
    Ignored,
    /// Marked fixed, then seen again in the resolved version or a newer one.
    Regressed,
}

impl IssueStatus {
    /// The name used in the API (`UNRESOLVED`, ...).
    pub fn name(self) -> &'static str {
        match self {
            IssueStatus::Unresolved => "UNRESOLVED",
            IssueStatus::Resolved => "RESOLVED",
            IssueStatus::Ignored => "IGNORED",
            IssueStatus::Regressed => "REGRESSED",
        }
    }

    /// The status named `name` (case-insensitive), if any.
    pub fn parse(name: &str) -> Option<IssueStatus> {
        [
            IssueStatus::Unresolved,
            IssueStatus::Resolved,
            IssueStatus::Ignored,
            IssueStatus::Regressed,
        ]
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// One error occurrence, as ingest derived it from an error log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IssueOccurrence {
    /// The issue this occurrence belongs to (its fingerprint).
    pub fingerprint: String,
    /// Service name.
    pub service: String,
    /// Layer the log was processed in.
    pub layer: Layer,
    /// How the SDK classified the error (`exception.type`: `js`, `promise`, `ajax`, ...).
    pub kind: String,
    /// The error class from the stack header or message (`TypeError`), else `Error`.
    pub error_type: String,
    /// One line saying what went wrong (type and first message line, bounded).
    pub title: String,
    /// The top in-app frame (`function (file)`), `""` when there is none.
    pub culprit: String,
    /// Epoch milliseconds.
    pub time_ms: i64,
    /// Application version (`service.version`), `""` if unknown.
    pub version: String,
    /// Page path, `""` if unknown.
    pub page: String,
    /// The message (bounded).
    pub message: String,
    /// The raw stack as received (bounded).
    pub stack: String,
    /// RUM session id, if the SDK sent one.
    pub session_id: Option<String>,
    /// User id, if the SDK sent one.
    pub user_id: Option<String>,
    /// Trace id the log was linked to, if any.
    pub trace_id: Option<String>,
}

/// A version an issue was seen in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IssueVersion {
    /// The version.
    pub version: String,
    /// When the issue was first seen in it (epoch ms): versions are ordered by this.
    pub first_seen_ms: i64,
    /// When the issue was last seen in it.
    pub last_seen_ms: i64,
    /// Occurrences in it.
    pub count: u64,
}

/// An issue: every occurrence of one fingerprint, with its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Issue {
    /// The issue id (equal to the fingerprint, which already includes the service).
    pub id: String,
    /// Service name.
    pub service: String,
    /// Layer of the first occurrence.
    pub layer: Layer,
    /// `exception.type` of the first occurrence.
    pub kind: String,
    /// Error class (`TypeError`).
    pub error_type: String,
    /// Title of the latest occurrence.
    pub title: String,
    /// Top in-app frame of the latest occurrence.
    pub culprit: String,
    /// First occurrence (epoch ms).
    pub first_seen_ms: i64,
    /// Latest occurrence (epoch ms).
    pub last_seen_ms: i64,
    /// Occurrences counted.
    pub count: u64,
    /// Versions seen, in first-seen order (at most [`ISSUE_VERSIONS_MAX`]).
    pub versions: Vec<IssueVersion>,
    /// Distinct pages seen, first seen first (at most [`ISSUE_PAGES_MAX`]).
    pub pages: Vec<String>,
    /// Distinct sessions seen (at most [`ISSUE_SESSIONS_MAX`]).
    pub sessions: Vec<String>,
    /// Distinct users seen (at most [`ISSUE_SESSIONS_MAX`]).
    pub users: Vec<String>,
    /// Current status.
    pub status: IssueStatus,
    /// When it was last resolved (epoch ms).
    pub resolved_at_ms: Option<i64>,
    /// The newest version when it was resolved: occurrences in versions first seen before this
    /// one only count, they do not reopen the issue.
    pub resolved_in_version: Option<String>,
    /// When it last regressed (epoch ms).
    pub regressed_at_ms: Option<i64>,
    /// The version it came back in.
    pub regressed_in_version: Option<String>,
}

impl Issue {
    /// A new unresolved issue named and placed by its first `occurrence`, with nothing counted
    /// yet (no occurrences, versions, pages, sessions or users).
    pub fn new(occurrence: &IssueOccurrence) -> Issue {
        Issue {
            id: occurrence.fingerprint.clone(),
            service: occurrence.service.clone(),
            layer: occurrence.layer,
            kind: occurrence.kind.clone(),
            error_type: occurrence.error_type.clone(),
            title: occurrence.title.clone(),
            culprit: occurrence.culprit.clone(),
            first_seen_ms: occurrence.time_ms,
            last_seen_ms: occurrence.time_ms,
            count: 0,
            versions: Vec::new(),
            pages: Vec::new(),
            sessions: Vec::new(),
            users: Vec::new(),
            status: IssueStatus::Unresolved,
            resolved_at_ms: None,
            resolved_in_version: None,
            regressed_at_ms: None,
            regressed_in_version: None,
        }
    }

    /// The version of the first occurrence.
    pub fn first_version(&self) -> Option<&str> {
        self.versions.first().map(|v| v.version.as_str())
    }

    /// The version first seen most recently.
    pub fn last_version(&self) -> Option<&str> {
        self.versions.last().map(|v| v.version.as_str())
    }
}
