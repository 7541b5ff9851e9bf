//! Error issues over GraphQL (a Skylark extension, not in SkyWalking's protocol):
//! `queryIssues`, `getIssue` (with occurrences, resolved stacks and a per-minute trend) and the
//! `setIssueStatus` mutation, refused unless the server enables it.
use super::query::{given, qctx};
use super::types::{DurationInput, Long, Pagination};
use crate::Error;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use skylark_issues::{Grouper, GrouperSettings, MapSource};
use std::sync::Arc;

/// Pages are at most this long.
const PAGE_MAX: usize = 100;
/// Trend windows span at most this many minutes.
const TREND_MINUTES_MAX: i64 = 7 * 24 * 60;

/// What issue resolvers need beyond storage.
#[derive(Clone)]
pub struct IssuesContext {
    /// Parses and resolves stacks (shares its decoded-map cache with ingest).
    pub grouper: Arc<Grouper>,
    /// Where source maps come from.
    pub maps: Arc<dyn MapSource>,
    /// Whether `setIssueStatus` may change issues.
    pub status_editing: bool,
    /// "Now" in epoch ms (resolution times).
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
}

struct NoMaps;

impl MapSource for NoMaps {
    fn map_bytes(&self, _: &str, _: &str, _: &str) -> Option<Arc<Vec<u8>>> {
        None
    }
    fn versions_with_map(&self, _: &str, _: &str) -> Vec<String> {
        Vec::new()
    }
}

impl Default for IssuesContext {
    /// No source maps and no status changes.
    fn default() -> Self {
        IssuesContext {
            grouper: Arc::new(Grouper::new(GrouperSettings::default())),
            maps: Arc::new(NoMaps),
            status_editing: false,
            clock: Arc::new(|| chrono::Utc::now().timestamp_millis()),
        }
    }
}

fn issues_context<'a>(ctx: &Context<'a>) -> std::borrow::Cow<'a, IssuesContext> {
    match ctx.data_opt::<IssuesContext>() {
        Some(c) => std::borrow::Cow::Borrowed(c),
        None => std::borrow::Cow::Owned(IssuesContext::default()),
    }
}

/// `enum IssueStatus`.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "IssueStatus")]
pub enum IssueStatusEnum {
    /// New or ongoing.
    Unresolved,
    /// Marked fixed.
    Resolved,
    /// Muted (still counted).
    Ignored,
    /// Seen again after being resolved.
    Regressed,
}

impl From<skylark_core::IssueStatus> for IssueStatusEnum {
    fn from(s: skylark_core::IssueStatus) -> Self {
        match s {
            skylark_core::IssueStatus::Unresolved => IssueStatusEnum::Unresolved,
            skylark_core::IssueStatus::Resolved => IssueStatusEnum::Resolved,
            skylark_core::IssueStatus::Ignored => IssueStatusEnum::Ignored,
            skylark_core::IssueStatus::Regressed => IssueStatusEnum::Regressed,
        }
    }
}

impl From<IssueStatusEnum> for skylark_core::IssueStatus {
    fn from(s: IssueStatusEnum) -> Self {
        match s {
            IssueStatusEnum::Unresolved => skylark_core::IssueStatus::Unresolved,
            IssueStatusEnum::Resolved => skylark_core::IssueStatus::Resolved,
            IssueStatusEnum::Ignored => skylark_core::IssueStatus::Ignored,
            IssueStatusEnum::Regressed => skylark_core::IssueStatus::Regressed,
        }
    }
}

/// `enum IssueOrder` (always descending).
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
#[graphql(name = "IssueOrder")]
pub enum IssueOrderEnum {
    /// Latest occurrence first.
    #[default]
    LastSeen,
    /// Most occurrences first.
    Count,
    /// Newest issue first.
    FirstSeen,
}

/// `input IssueCondition`.
#[derive(InputObject, Debug, Clone)]
pub struct IssueCondition {
    /// Only this service's issues.
    pub service_name: Option<String>,
    /// Only issues in this status.
    pub status: Option<IssueStatusEnum>,
    /// Only issues seen in this version.
    pub version: Option<String>,
    /// Only issues whose title or culprit contains this.
    pub keyword: Option<String>,
    /// Issues seen in this window.
    pub duration: DurationInput,
    /// Page.
    pub paging: Pagination,
    /// Sort order.
    pub order_by: Option<IssueOrderEnum>,
}

/// A frame resolved through a source map.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "ResolvedFrame")]
pub struct ResolvedFrameObject {
    /// Original function name (the minified one when the map has no names).
    pub function: String,
    /// Original file.
    pub file: String,
    /// 1-based line.
    pub line: i32,
    /// 1-based column.
    pub column: i32,
    /// The original source line, when the map embeds sources.
    pub source: Option<String>,
    /// The version whose map resolved it.
    pub map_version: String,
    /// True when the event's version had no map and the newest version's map was used.
    pub fallback: bool,
}

/// A frame as received.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "StackFrame")]
pub struct StackFrameObject {
    /// Function as printed.
    pub function: String,
    /// File (normalised).
    pub file: String,
    /// 1-based line.
    pub line: Option<i32>,
    /// 1-based column.
    pub column: Option<i32>,
    /// Whether it is the application's code.
    pub in_app: bool,
    /// Where it came from, when a map resolved it.
    pub resolved: Option<ResolvedFrameObject>,
}

/// One occurrence.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "IssueEvent")]
pub struct IssueEventObject {
    /// Epoch ms.
    pub time: Long,
    /// Application version.
    pub version: String,
    /// Page.
    pub page: String,
    /// Message.
    pub message: String,
    /// The stack as received.
    pub stack: String,
    /// Frames resolved through source maps (unresolved frames as received).
    pub resolved_stack: Vec<ResolvedFrameObject>,
    /// Every frame, with its resolution when there is one.
    pub frames: Vec<StackFrameObject>,
    /// True when any frame was resolved with another version's map.
    pub resolved_with_fallback: bool,
    /// RUM session.
    pub session_id: Option<String>,
    /// Linked trace.
    pub trace_id: Option<String>,
}

/// Occurrences in one minute.
#[derive(SimpleObject, Debug, Clone)]
pub struct IssueTrendPoint {
    /// Minute start, epoch ms.
    pub time: Long,
    /// Occurrences.
    pub count: Long,
}

/// An issue.
pub struct IssueObject(skylark_core::Issue);

#[Object(name = "Issue")]
impl IssueObject {
    /// Id (the fingerprint).
    async fn id(&self) -> &str {
        &self.0.id
    }
    /// Fingerprint (rule fp1).
    async fn fingerprint(&self) -> &str {
        &self.0.id
    }
    /// Service name.
    async fn service_name(&self) -> &str {
        &self.0.service
    }
    /// Layer name.
    async fn layer(&self) -> String {
        self.0.layer.name().to_string()
    }
    /// The SDK's error kind (`exception.type`).
    #[graphql(name = "type")]
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// Error class.
    async fn error_type(&self) -> &str {
        &self.0.error_type
    }
    /// Title.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// Top in-app frame.
    async fn culprit(&self) -> &str {
        &self.0.culprit
    }
    /// Status.
    async fn status(&self) -> IssueStatusEnum {
        self.0.status.into()
    }
    /// First occurrence, epoch ms.
    async fn first_seen(&self) -> Long {
        Long(self.0.first_seen_ms)
    }
    /// Latest occurrence, epoch ms.
    async fn last_seen(&self) -> Long {
        Long(self.0.last_seen_ms)
    }
    /// Occurrences.
    async fn count(&self) -> Long {
        Long(self.0.count as i64)
    }
    /// Versions seen, in first-seen order.
    async fn versions(&self) -> Vec<String> {
        self.0.versions.iter().map(|v| v.version.clone()).collect()
    }
    /// First version seen.
    async fn first_version(&self) -> Option<&str> {
        self.0.first_version()
    }
    /// Version first seen most recently.
    async fn last_version(&self) -> Option<&str> {
        self.0.last_version()
    }
    /// Pages seen.
    async fn pages(&self) -> &[String] {
        &self.0.pages
    }
    /// Distinct sessions (RUM).
    async fn session_count(&self) -> i32 {
        self.0.sessions.len() as i32
    }
    /// Distinct users.
    async fn user_count(&self) -> i32 {
        self.0.users.len() as i32
    }
    /// The newest version when it was resolved.
    async fn resolved_in_version(&self) -> Option<&str> {
        self.0.resolved_in_version.as_deref()
    }
    /// The version it came back in.
    async fn regressed_in_version(&self) -> Option<&str> {
        self.0.regressed_in_version.as_deref()
    }
    /// When it came back, epoch ms.
    async fn regressed_at(&self) -> Option<Long> {
        self.0.regressed_at_ms.map(Long)
    }

    /// The latest occurrences (at most 100 are kept), newest first, stacks resolved through the
    /// source maps stored now (maps uploaded after the error arrived count).
    async fn events(&self, ctx: &Context<'_>, paging: Pagination) -> Result<Vec<IssueEventObject>> {
        let (offset, limit) = paging.offset_limit(super::types::max_page_size(ctx))?;
        let events = qctx(ctx)?
            .storage
            .issue_events(&self.0.id, offset, limit.min(PAGE_MAX))
            .map_err(Error::from)?;
        let issues = issues_context(ctx);
        Ok(events
            .into_iter()
            .map(|e| event_object(&issues, e))
            .collect())
    }

    /// Occurrences per `stepMinutes` (default 1, at most 7 days) in `duration`, each point at
    /// its first minute; steps without any are 0. A larger step keeps a long window's answer
    /// small (the console's sparklines ask for a few dozen points).
    async fn trend(
        &self,
        ctx: &Context<'_>,
        duration: DurationInput,
        step_minutes: Option<i32>,
    ) -> Result<Vec<IssueTrendPoint>> {
        let w = duration.record_window()?;
        let step = i64::from(step_minutes.unwrap_or(1));
        if !(1..=TREND_MINUTES_MAX).contains(&step) {
            return Err(async_graphql::Error::new(format!(
                "stepMinutes must be between 1 and {TREND_MINUTES_MAX}"
            )));
        }
        let start = w.start_ms - w.start_ms.rem_euclid(60_000);
        if (w.end_ms - start) / 60_000 > TREND_MINUTES_MAX {
            return Err(async_graphql::Error::new(format!(
                "trend spans at most {TREND_MINUTES_MAX} minutes"
            )));
        }
        let counts = qctx(ctx)?
            .storage
            .issue_minutes(&self.0.id, start, w.end_ms)
            .map_err(Error::from)?;
        Ok(trend_points(start, w.end_ms, step * 60_000, counts))
    }
}

/// Sums per-minute counts (in time order) into points of `step_ms` from `start` to `end`.
fn trend_points(
    start: i64,
    end: i64,
    step_ms: i64,
    counts: impl IntoIterator<Item = (i64, u64)>,
) -> Vec<IssueTrendPoint> {
    let mut counts = counts.into_iter().peekable();
    let mut points = Vec::new();
    let mut at = start;
    while at <= end {
        let mut count = 0i64;
        while let Some((m, c)) = counts.peek() {
            if *m < at {
                counts.next();
            } else if *m < at + step_ms {
                count += *c as i64;
                counts.next();
            } else {
                break;
            }
        }
        points.push(IssueTrendPoint {
            time: Long(at),
            count: Long(count),
        });
        at += step_ms;
    }
    points
}

fn event_object(issues: &IssuesContext, e: skylark_core::IssueOccurrence) -> IssueEventObject {
    let frames =
        issues
            .grouper
            .resolve_stack(issues.maps.as_ref(), &e.service, &e.version, &e.stack);
    let to_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let resolved_object = |r: &skylark_issues::ResolvedFrame| ResolvedFrameObject {
        function: r.function.clone(),
        file: r.file.clone(),
        line: to_i32(r.line),
        column: to_i32(r.column),
        source: r.source.clone(),
        map_version: r.map_version.clone(),
        fallback: r.fallback,
    };
    let resolved_stack = frames
        .iter()
        .map(|f| match &f.resolved {
            Some(r) => resolved_object(r),
            None => ResolvedFrameObject {
                function: f.frame.function.clone(),
                file: f.frame.file.clone(),
                line: f.frame.line.map(to_i32).unwrap_or(0),
                column: f.frame.column.map(to_i32).unwrap_or(0),
                source: None,
                map_version: String::new(),
                fallback: false,
            },
        })
        .collect();
    let resolved_with_fallback = frames
        .iter()
        .any(|f| f.resolved.as_ref().is_some_and(|r| r.fallback));
    IssueEventObject {
        time: Long(e.time_ms),
        version: e.version,
        page: e.page,
        message: e.message,
        stack: e.stack,
        resolved_stack,
        frames: frames
            .iter()
            .map(|f| StackFrameObject {
                function: f.frame.function.clone(),
                file: f.frame.file.clone(),
                line: f.frame.line.map(to_i32),
                column: f.frame.column.map(to_i32),
                in_app: f.frame.in_app,
                resolved: f.resolved.as_ref().map(resolved_object),
            })
            .collect(),
        resolved_with_fallback,
        session_id: e.session_id,
        trace_id: e.trace_id,
    }
}

/// `type IssueList`.
#[derive(SimpleObject)]
pub struct IssueList {
    /// One page.
    pub issues: Vec<IssueObject>,
    /// Issues matching in all.
    pub total: i32,
}

/// Issue root fields.
#[derive(Default)]
pub struct IssueQueryRoot;

#[Object]
impl IssueQueryRoot {
    /// Issues seen in the duration, filtered, sorted and paged (at most 100 a page).
    async fn query_issues(
        &self,
        ctx: &Context<'_>,
        condition: IssueCondition,
    ) -> Result<IssueList> {
        let w = condition.duration.record_window()?;
        let (offset, limit) = condition
            .paging
            .offset_limit(super::types::max_page_size(ctx))?;
        let query = skylark_storage::IssueQuery {
            service: given(condition.service_name),
            status: condition.status.map(Into::into),
            version: given(condition.version),
            keyword: given(condition.keyword),
            start_ms: w.start_ms,
            end_ms: w.end_ms,
            order: match condition.order_by.unwrap_or_default() {
                IssueOrderEnum::LastSeen => skylark_storage::IssueOrder::LastSeen,
                IssueOrderEnum::Count => skylark_storage::IssueOrder::Count,
                IssueOrderEnum::FirstSeen => skylark_storage::IssueOrder::FirstSeen,
            },
            offset,
            limit: limit.min(PAGE_MAX),
        };
        let (issues, total) = qctx(ctx)?
            .storage
            .query_issues(&query)
            .map_err(Error::from)?;
        Ok(IssueList {
            issues: issues.into_iter().map(IssueObject).collect(),
            total: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    /// One issue by id.
    async fn get_issue(&self, ctx: &Context<'_>, id: String) -> Result<Option<IssueObject>> {
        Ok(qctx(ctx)?
            .storage
            .get_issue(&id)
            .map_err(Error::from)?
            .map(IssueObject))
    }
}

/// The answer to `setIssueStatus`.
#[derive(SimpleObject)]
pub struct IssueStatusChange {
    /// Whether the status was changed.
    pub status: bool,
    /// Why not, when it was not.
    pub message: Option<String>,
    /// The issue after the change.
    pub issue: Option<IssueObject>,
}

const STATUS_EDITING_DISABLED: &str = "issue status changes are disabled on this server; set \
     SW_ENABLE_UPDATE_ISSUE_STATUS=true to allow them";

/// `Mutation.setIssueStatus`.
#[derive(Default)]
pub struct IssueMutation;

#[Object]
impl IssueMutation {
    /// Resolves, ignores or reopens an issue. Refused unless the server enables it
    /// (`SW_ENABLE_UPDATE_ISSUE_STATUS`). `REGRESSED` is set by occurrences, not by users.
    async fn set_issue_status(
        &self,
        ctx: &Context<'_>,
        id: String,
        status: IssueStatusEnum,
    ) -> Result<IssueStatusChange> {
        let issues = issues_context(ctx);
        let refused = |message: &str| IssueStatusChange {
            status: false,
            message: Some(message.to_string()),
            issue: None,
        };
        if !issues.status_editing {
            return Ok(refused(STATUS_EDITING_DISABLED));
        }
        if status == IssueStatusEnum::Regressed {
            return Ok(refused("REGRESSED is set by new occurrences, not by users"));
        }
        let now_ms = (issues.clock)();
        let changed = qctx(ctx)?
            .storage
            .update_issue(&id, &mut |issue| {
                skylark_issues::set_status(issue, status.into(), now_ms)
            })
            .map_err(Error::from)?;
        Ok(match changed {
            Some(issue) => IssueStatusChange {
                status: true,
                message: None,
                issue: Some(IssueObject(issue)),
            },
            None => refused(&format!("no issue with id {id}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::trend_points;

    fn counts(points: &[super::IssueTrendPoint]) -> Vec<(i64, i64)> {
        points.iter().map(|p| (p.time.0, p.count.0)).collect()
    }

    #[test]
    fn minute_steps_keep_every_minute_and_larger_steps_sum_them() {
        let minutes = vec![(0, 2), (60_000, 1), (180_000, 4), (300_000, 1)];
        assert_eq!(
            counts(&trend_points(0, 300_000, 60_000, minutes.clone())),
            vec![
                (0, 2),
                (60_000, 1),
                (120_000, 0),
                (180_000, 4),
                (240_000, 0),
                (300_000, 1)
            ]
        );
        assert_eq!(
            counts(&trend_points(0, 300_000, 180_000, minutes.clone())),
            vec![(0, 3), (180_000, 5)]
        );
        // Counts before the window are skipped, not added to its first point.
        assert_eq!(
            counts(&trend_points(60_000, 120_000, 120_000, minutes)),
            vec![(60_000, 1)]
        );
    }
}
