//! How an issue's state moves (errors-and-sourcemaps.md §4, the `resolved now` variant).
//!
//! Versions are ordered by when the issue was first seen in them, not by semver. Resolving
//! remembers the newest version at that moment; a later occurrence in that version or one first
//! seen after it reopens the issue as `regressed`, while an occurrence from an older version
//! (devices that never updated) is only counted. Ignored issues keep counting and stay ignored.
use skylark_core::issue::{ISSUE_PAGES_MAX, ISSUE_SESSIONS_MAX, ISSUE_VERSIONS_MAX};
use skylark_core::{Issue, IssueOccurrence, IssueStatus, IssueVersion};

/// `issue` (or a new one when `None`) after `occurrence`.
pub fn record_occurrence(issue: Option<Issue>, occurrence: &IssueOccurrence) -> Issue {
    let mut issue = issue.unwrap_or_else(|| Issue::new(occurrence));
    if issue.status == IssueStatus::Resolved && regresses(&issue, occurrence) {
        issue.status = IssueStatus::Regressed;
        issue.regressed_at_ms = Some(occurrence.time_ms);
        issue.regressed_in_version = Some(occurrence.version.clone());
    }
    issue.count += 1;
    issue.first_seen_ms = issue.first_seen_ms.min(occurrence.time_ms);
    if occurrence.time_ms >= issue.last_seen_ms {
        issue.last_seen_ms = occurrence.time_ms;
        issue.title = occurrence.title.clone();
        issue.culprit = occurrence.culprit.clone();
    }
    let versions_kept = issue.versions.len();
    match issue
        .versions
        .iter_mut()
        .find(|v| v.version == occurrence.version)
    {
        Some(v) => {
            v.count += 1;
            v.first_seen_ms = v.first_seen_ms.min(occurrence.time_ms);
            v.last_seen_ms = v.last_seen_ms.max(occurrence.time_ms);
        }
        None if versions_kept < ISSUE_VERSIONS_MAX => issue.versions.push(IssueVersion {
            version: occurrence.version.clone(),
            first_seen_ms: occurrence.time_ms,
            last_seen_ms: occurrence.time_ms,
            count: 1,
        }),
        None => {}
    }
    add_distinct(&mut issue.pages, &occurrence.page, ISSUE_PAGES_MAX);
    if let Some(session) = &occurrence.session_id {
        add_distinct(&mut issue.sessions, session, ISSUE_SESSIONS_MAX);
    }
    if let Some(user) = &occurrence.user_id {
        add_distinct(&mut issue.users, user, ISSUE_SESSIONS_MAX);
    }
    issue
}

fn add_distinct(list: &mut Vec<String>, value: &str, max: usize) {
    if !value.is_empty() && list.len() < max && !list.iter().any(|v| v == value) {
        list.push(value.to_string());
    }
}

/// Whether `occurrence` reopens the resolved `issue`: it came after the resolution, in the
/// version that was newest then or in one first seen later.
fn regresses(issue: &Issue, occurrence: &IssueOccurrence) -> bool {
    let Some(resolved_at) = issue.resolved_at_ms else {
        return true;
    };
    if occurrence.time_ms <= resolved_at {
        return false;
    }
    let first_seen = |version: &str| {
        issue
            .versions
            .iter()
            .find(|v| v.version == version)
            .map(|v| v.first_seen_ms)
    };
    let Some(resolved_version) = issue.resolved_in_version.as_deref() else {
        return true;
    };
    match (
        first_seen(&occurrence.version),
        first_seen(resolved_version),
    ) {
        // A version this issue never had is new since the resolution.
        (None, _) => true,
        (Some(seen), Some(baseline)) => seen >= baseline,
        (Some(_), None) => true,
    }
}

/// `issue` after a user set its status at `now_ms`.
pub fn set_status(mut issue: Issue, status: IssueStatus, now_ms: i64) -> Issue {
    issue.status = status;
    if status == IssueStatus::Resolved {
        issue.resolved_at_ms = Some(now_ms);
        issue.resolved_in_version = issue.last_version().map(str::to_string);
    }
    issue
}

#[cfg(test)]
mod tests {
    use super::*;
    use skylark_core::Layer;

    fn occurrence(time_ms: i64, version: &str) -> IssueOccurrence {
        IssueOccurrence {
            fingerprint: "fp".into(),
            service: "shop".into(),
            layer: Layer::WECHAT_MINI_PROGRAM,
            kind: "js".into(),
            error_type: "TypeError".into(),
            title: "TypeError: x".into(),
            culprit: "onLoad (pages/a.js)".into(),
            time_ms,
            version: version.into(),
            page: "pages/a".into(),
            message: "x".into(),
            stack: String::new(),
            session_id: Some(format!("s-{time_ms}")),
            user_id: None,
            trace_id: None,
        }
    }

    #[test]
    fn resolved_issues_regress_in_the_same_or_a_newer_version_only() {
        let mut issue = record_occurrence(None, &occurrence(1_000, "1.0.0"));
        issue = record_occurrence(Some(issue), &occurrence(2_000, "1.1.0"));
        issue = set_status(issue, IssueStatus::Resolved, 3_000);
        assert_eq!(issue.resolved_in_version.as_deref(), Some("1.1.0"));
        // An old device still on 1.0.0: counted, not a regression.
        issue = record_occurrence(Some(issue), &occurrence(4_000, "1.0.0"));
        assert_eq!((issue.status, issue.count), (IssueStatus::Resolved, 3));
        issue = record_occurrence(Some(issue), &occurrence(5_000, "1.2.0"));
        assert_eq!(issue.status, IssueStatus::Regressed);
        assert_eq!(issue.regressed_in_version.as_deref(), Some("1.2.0"));
        assert_eq!(issue.first_version(), Some("1.0.0"));
        assert_eq!(issue.last_version(), Some("1.2.0"));
        assert_eq!(issue.sessions.len(), 4);
    }

    #[test]
    fn ignored_issues_count_on_quietly() {
        let issue = record_occurrence(None, &occurrence(1_000, "1.0.0"));
        let issue = set_status(issue, IssueStatus::Ignored, 2_000);
        let issue = record_occurrence(Some(issue), &occurrence(3_000, "2.0.0"));
        assert_eq!((issue.status, issue.count), (IssueStatus::Ignored, 2));
    }
}
