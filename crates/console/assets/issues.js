// Skylark console: the issues list (`/console/issues`) and one issue (`/console/issues/<id>`):
// trend, resolved stack with the original source lines, occurrences with their sessions and
// traces, and status changes (when the server allows them).
'use strict';

const Issues = (() => {
  const { h } = SK;
  const WEEK = 7 * 24 * 60 * 60e3;

  /** The window clamped to the 7 days a trend may span, and a step giving about `points` points. */
  async function trendArgs(win, points) {
    const w = { start: Math.max(win.start, win.end - WEEK + 60e3), end: win.end };
    const minutes = Math.ceil((w.end - w.start) / 60e3);
    return { d: await SK.recordDuration(w), step: Math.max(1, Math.ceil(minutes / points)) };
  }

  function statusBadge(status) {
    return h('span', { class: `badge ${String(status).toLowerCase()}` }, String(status).toLowerCase());
  }

  async function list(app) {
    const { params } = SK;
    const size = 20;
    const pageNum = Math.max(1, Number(params.get('page')) || 1);
    const services = await SK.services();
    const win = SK.window();
    app.append(h('div', { class: 'head' }, h('h1', {}, 'Issues'), SK.rangePicker()));
    app.append(SK.filterForm([
      ['Service', SK.select('service', [['', 'All services'], ...services.map((s) => [s.name, s.name])])],
      ['Status', SK.select('status', [['', 'any'], ['UNRESOLVED', 'unresolved'], ['REGRESSED', 'regressed'], ['RESOLVED', 'resolved'], ['IGNORED', 'ignored']])],
      ['Version', SK.input('version', { placeholder: 'any', size: 8 })],
      ['Text', SK.input('q', { placeholder: 'message or culprit', size: 16 })],
      ['Order', SK.select('order', [['', 'last seen'], ['COUNT', 'count'], ['FIRST_SEEN', 'first seen']])],
    ]));
    const c = { duration: await SK.recordDuration(win), paging: { pageNum, pageSize: size } };
    if (params.get('service')) c.serviceName = params.get('service');
    if (params.get('status')) c.status = params.get('status');
    if (params.get('version')) c.version = params.get('version');
    if (params.get('q')) c.keyword = params.get('q');
    if (params.get('order')) c.orderBy = params.get('order');
    const { d, step } = await trendArgs(win, 24);
    const data = await SK.gql(`query ($c: IssueCondition!, $d: Duration!, $step: Int) { result: queryIssues(condition: $c) {
        total issues { id serviceName type errorType title culprit status firstSeen lastSeen count versions
                       sessionCount userCount trend(duration: $d, stepMinutes: $step) { time count } } } }`, { c, d, step });
    const { total, issues } = data.result;
    if (!issues.length) {
      app.append(SK.empty(`No issues seen in this window (${win.label.toLowerCase()}) with these filters.`,
        'Errors become issues when RUM error events or SkyAPM error logs arrive; a quiet window is good news.'));
      return;
    }
    app.append(h('p', { class: 'summary', 'data-total': total }, `${SK.fmtNum(total)} issues seen in this window`));
    app.append(SK.table([
      ['Issue', (i) => [h('a', { href: SK.issueHref(i.id), class: 'issue-link' }, i.title || i.errorType || i.id),
        h('div', { class: 'muted small' }, `${i.serviceName} · ${i.type}${i.culprit ? ' · ' + i.culprit : ''}`)]],
      ['Status', (i) => statusBadge(i.status)],
      ['Events', (i) => SK.fmtNum(i.count), 'num'],
      ['Sessions', (i) => SK.fmtNum(i.sessionCount), 'num'],
      ['Trend', (i) => Charts.node(Charts.sparkline(i.trend.map((p) => p.count)), 'spark-wrap')],
      ['First seen', (i) => SK.fmtTime(i.firstSeen)],
      ['Last seen', (i) => SK.fmtTime(i.lastSeen)],
      ['Versions', (i) => i.versions.join(', ')],
    ], issues, { class: 'issues' }, (i) => ({ 'data-issue': i.id, 'data-count': i.count })));
    app.append(SK.pager(pageNum, size, total));
  }

  function frameLine(f) {
    const where = `${f.file}:${f.line ?? '?'}${f.column !== null && f.column !== undefined ? ':' + f.column : ''}`;
    return [h('span', { class: 'fn' }, f.function || '<anonymous>'), ' ', h('span', { class: 'file' }, where)];
  }

  async function detail(app) {
    const id = SK.pathId();
    const win = SK.window();
    SK.setTitle(`Issue ${id}`);
    app.append(h('p', { class: 'crumbs' }, h('a', { href: SK.href('/console/issues') }, '← Issues')));
    const { d, step } = await trendArgs(win, 90);
    const data = await SK.gql(`query ($id: String!, $d: Duration!, $step: Int) { issue: getIssue(id: $id) {
        id serviceName layer type errorType title culprit status firstSeen lastSeen count versions firstVersion
        lastVersion pages sessionCount userCount resolvedInVersion regressedInVersion
        trend(duration: $d, stepMinutes: $step) { time count }
        events(paging: {pageNum: 1, pageSize: 20}) { time version page message stack sessionId traceId resolvedWithFallback
          resolvedStack { function file line column source mapVersion fallback }
          frames { function file line column inApp resolved { function file line column source mapVersion fallback } } } } }`,
    { id, d, step });
    const i = data.issue;
    if (!i) {
      app.append(h('h1', {}, 'Issue not found'), SK.empty(`No issue ${id} is stored.`, 'Check the link, or find it in the issues list.'));
      return;
    }
    app.append(h('div', { class: 'head' }, h('h1', {}, i.title || i.errorType), SK.rangePicker()));
    app.append(h('p', { class: 'muted' }, `${i.serviceName} · ${i.type} · ${i.errorType}${i.culprit ? ' · ' + i.culprit : ''}`));
    app.append(h('dl', { class: 'facts' }, [
      ['Status', statusBadge(i.status)], ['Events', SK.fmtNum(i.count)], ['Sessions', SK.fmtNum(i.sessionCount)],
      ['Users', SK.fmtNum(i.userCount)], ['First seen', `${SK.fmtTime(i.firstSeen)}${i.firstVersion ? ' in ' + i.firstVersion : ''}`],
      ['Last seen', `${SK.fmtTime(i.lastSeen)}${i.lastVersion ? ' in ' + i.lastVersion : ''}`], ['Versions', i.versions.join(', ')],
      ['Pages', i.pages.join(', ') || '—'],
      i.resolvedInVersion ? ['Resolved in', i.resolvedInVersion] : null,
      i.regressedInVersion ? ['Regressed in', i.regressedInVersion] : null,
    ].filter(Boolean).map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))));
    app.append(statusControls(i));
    const trendTotal = i.trend.reduce((n, p) => n + Number(p.count), 0);
    app.append(h('h2', {}, 'Trend ', h('small', { 'data-trend-total': trendTotal }, `${SK.fmtNum(trendTotal)} in this window, per ${step} min`)),
      Charts.node(Charts.bars(i.trend.map((p) => ({ time: p.time, value: Number(p.count) })), { label: 'occurrences' })));
    const latest = i.events[0];
    if (latest) {
      app.append(h('h2', {}, 'Stack of the latest occurrence'));
      if (latest.message) app.append(h('pre', { class: 'message' }, latest.message));
      if (latest.resolvedStack.length) {
        app.append(h('ol', { class: 'stack resolved' }, latest.resolvedStack.map((f) => h('li', {},
          frameLine(f),
          f.fallback ? h('span', { class: 'warn small' }, ` (map of ${f.mapVersion})`) : null,
          f.source ? h('pre', { class: 'src' }, f.source) : null))));
        if (latest.resolvedWithFallback) app.append(h('p', { class: 'warn small' }, 'Some frames were resolved with another version’s map.'));
      } else if (latest.frames.length) {
        app.append(h('p', { class: 'muted small' }, 'No source map resolves these frames; upload one with `skylark sourcemaps upload`.'),
          h('ol', { class: 'stack' }, latest.frames.map((f) => h('li', { class: f.inApp ? 'inapp' : 'lib' }, frameLine(f)))));
      } else {
        app.append(h('pre', { class: 'stack raw' }, latest.stack || '(no stack)'));
      }
    }
    app.append(h('h2', {}, 'Occurrences ', h('small', {}, 'latest first')));
    if (!i.events.length) {
      app.append(SK.empty('No occurrences are kept for this issue.'));
      return;
    }
    app.append(SK.table([
      ['Time', (e) => SK.fmtTime(e.time)],
      ['Version', (e) => e.version],
      ['Page', (e) => e.page],
      ['Message', (e) => h('span', { class: 'clip' }, e.message)],
      ['Session', (e) => (e.sessionId ? h('a', { href: SK.sessionHref(e.sessionId), class: 'session-link' }, e.sessionId.slice(0, 8)) : '—')],
      ['Trace', (e) => (e.traceId ? h('a', { href: SK.traceHref(e.traceId), class: 'trace-link' }, e.traceId.slice(0, 12) + '…') : '—')],
    ], i.events, { class: 'occurrences' }));
  }

  function statusControls(i) {
    const out = h('p', { class: 'status-controls' });
    const note = h('span', { class: 'muted small', role: 'status' });
    const set = async (status) => {
      note.textContent = '…';
      try {
        const r = await SK.gql(`mutation ($id: String!, $s: IssueStatus!) { r: setIssueStatus(id: $id, status: $s) { status message issue { status } } }`, { id: i.id, s: status });
        if (r.r.status) location.reload();
        else note.textContent = r.r.message || 'refused';
      } catch (err) {
        note.replaceChildren(SK.errorBox(err));
      }
    };
    const choices = i.status === 'RESOLVED' || i.status === 'IGNORED' ? [['UNRESOLVED', 'Reopen']] : [['RESOLVED', 'Resolve'], ['IGNORED', 'Ignore']];
    for (const [s, label] of choices) out.append(h('button', { type: 'button', onclick: () => set(s) }, label), ' ');
    out.append(note);
    return out;
  }

  return { list, detail };
})();

SK.page('issues', Issues.list);
SK.page('issue', Issues.detail);
