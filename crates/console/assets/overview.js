// Skylark console: the RUM overview of one service, optionally one version (`/console/`).
// Page views, errors, request latency and the slowest pages come from MQE over the shipped
// rules (otel-rules/); sessions and issues from querySessions / queryIssues.
'use strict';

SK.page('overview', async (app) => {
  const { h, params } = SK;
  const services = await SK.services();
  app.append(h('div', { class: 'head' }, h('h1', {}, 'Overview'), SK.rangePicker()));
  if (!services.length) {
    app.append(SK.empty('No mini-program service has reported yet.',
      `Point the RUM SDK at ${location.origin}/api/v2/rum, or the SkyAPM mini-program SDK at ${location.origin} (OTLP /v1/metrics, /v1/logs), then reload.`));
    return;
  }
  const svc = services.find((s) => s.name === params.get('service')) || services[0];
  const version = params.get('version') || '';
  const win = SK.window();
  const d = await SK.duration(win);
  const instances = (await SK.gql('query ($id: String!, $d: Duration!) { listInstances(serviceId: $id, duration: $d) { name } }',
    { id: `${btoa(unescape(encodeURIComponent(svc.name)))}.1`, d })).listInstances || [];
  app.append(SK.filterForm([
    ['Service', SK.select('service', services.map((s) => [s.name, s.name]))],
    ['Version', SK.select('version', [['', 'All versions'], ...instances.map((i) => [i.name, i.name])])],
  ]));
  // The form's select shows the service actually drawn, also when the URL named none.
  const sel = app.querySelector('select[name=service]');
  if (sel) sel.value = svc.name;

  const p = svc.platform;
  const entity = version
    ? { serviceName: svc.name, serviceInstanceName: version, normal: true, scope: 'ServiceInstance' }
    : { serviceName: svc.name, normal: true, scope: 'Service' };
  const m = version ? `meter_${p}_mp_instance` : `meter_${p}_mp`;
  const rum = version ? `meter_${p}_mp_rum_instance` : `meter_${p}_mp_rum`;
  const exprs = {
    pageViews: `sum(${rum}_page_views)`,
    errors: `sum(${rum}_error_count)`,
    requests: `sum(${m}_request_count)`,
    failedPct: `(1 - sum(${m}_request_success_count) / sum(${m}_request_count)) * 100`,
    latency: `${m}_request_duration_percentile{p='50,95'}`,
    latencyAvg: `avg(${m}_request_duration_percentile{p='50,95'})`,
    viewsSeries: `${rum}_page_views`,
    slowest: `top_n(meter_${p}_mp_endpoint_first_render_duration, 10, des)`,
  };
  // RUM intake metrics exist for WeChat only (otel-rules/rum/).
  const hasRum = p === 'wechat';
  if (!hasRum) for (const k of ['pageViews', 'errors', 'viewsSeries']) delete exprs[k];
  const rd = await SK.recordDuration(win);
  const sessionCondition = (extra) => Object.assign({ serviceName: svc.name, duration: rd, paging: { pageNum: 1, pageSize: 1 } }, version ? { version } : {}, extra);
  const issueCondition = Object.assign({ serviceName: svc.name, duration: rd, paging: { pageNum: 1, pageSize: 5 }, orderBy: 'COUNT' }, version ? { version } : {});
  const ops = Object.keys(exprs).map((k) => `${k}: execExpression(expression: $${k}, entity: ${k === 'slowest' ? '$svc' : '$e'}, duration: $d) {
      type error results { metric { labels { key value } } values { id value owner { endpointName } } } }`).join('\n');
  const vars = Object.assign({ d, e: entity, svc: { serviceName: svc.name, normal: true }, sc: sessionCondition({}), se: sessionCondition({ hasError: true }), ic: issueCondition }, exprs);
  const decl = Object.keys(exprs).map((k) => `$${k}: String!`).join(', ');
  const data = await SK.gql(`query ($d: Duration!, $e: Entity!, $svc: Entity!, $sc: SessionCondition!, $se: SessionCondition!, $ic: IssueCondition!, ${decl}) {
      ${ops}
      sessions: querySessions(condition: $sc) { total }
      errorSessions: querySessions(condition: $se) { total }
      issues: queryIssues(condition: $ic) { total issues { id title errorType status count sessionCount lastSeen } } }`, vars);

  const problems = Object.keys(exprs).filter((k) => data[k].error).map((k) => `${exprs[k]}: ${data[k].error}`);
  if (problems.length) app.append(SK.errorBox(new SK.GraphqlError(problems.join('; '))));
  const single = (k) => {
    if (!data[k]) return null;
    const v = data[k].results[0] && data[k].results[0].values[0] && data[k].results[0].values[0].value;
    return v === null || v === undefined ? null : Number(v);
  };
  const byLabel = (k) => {
    const out = {};
    for (const r of data[k].results) {
      const label = (r.metric.labels.find((l) => l.key === 'p') || {}).value || '';
      out[label] = r.values;
    }
    return out;
  };
  const avg = byLabel('latencyAvg');
  const avgOf = (p) => (avg[p] && avg[p][0] && avg[p][0].value !== null ? Number(avg[p][0].value) : null);
  const sessions = data.sessions.total;
  const errorSessions = data.errorSessions.total;
  const title = version ? `${svc.name} ${version}` : svc.name;
  SK.setTitle(`Overview of ${title}`);
  app.append(h('h2', {}, title, ' ', h('small', {}, `${svc.platform} · ${win.label.toLowerCase()}`)));
  const card = (key, label, value, note) => {
    const c = SK.card(label, value, note);
    c.dataset.metric = key;
    return c;
  };
  const pv = single('pageViews');
  const failed = single('failedPct');
  app.append(h('div', { class: 'cards' },
    card('pageViews', 'Page views', hasRum ? SK.fmtNum(pv ?? 0) : '—', hasRum ? null : 'RUM metrics are WeChat only'),
    card('sessions', 'Sessions', SK.fmtNum(sessions)),
    card('errorRate', 'Sessions with errors', sessions ? `${SK.fmtNum((errorSessions * 100) / sessions)} %` : '—', `${SK.fmtNum(errorSessions)} of ${SK.fmtNum(sessions)}`),
    card('errors', 'Errors', hasRum ? SK.fmtNum(single('errors') ?? 0) : '—', hasRum ? null : 'see Issues'),
    card('failedRequests', 'Failed requests', failed === null ? '—' : `${SK.fmtNum(failed)} %`, `of ${SK.fmtNum(single('requests') ?? 0)} requests`),
    card('p50', 'Request P50', avgOf('50') === null ? '—' : SK.fmtMs(avgOf('50')), `mean of the ${d.step.toLowerCase()} P50s`),
    card('p95', 'Request P95', avgOf('95') === null ? '—' : SK.fmtMs(avgOf('95')), `mean of the ${d.step.toLowerCase()} P95s`)));
  if (!pv && !sessions && !single('requests')) {
    app.append(SK.empty(`No page views, sessions or requests for ${title} in this window.`,
      `Is the SDK pointed at ${location.origin} and sending for this service? Try a longer time range.`));
  }

  // Charts over the window.
  const lat = byLabel('latency');
  const labels = (lat['50'] || lat['95'] || []).map((v) => SK.fmtTime(Number(v.id)));
  const num = (v) => (v.value === null || v.value === undefined ? null : Number(v.value));
  const views = data.viewsSeries ? (data.viewsSeries.results[0] || { values: [] }).values : [];
  app.append(h('div', { class: 'grid2' },
    h('section', {}, h('h3', {}, `Request latency per ${d.step.toLowerCase()}`),
      h('p', { class: 'legend' }, h('span', { class: 'k p50' }, 'P50'), h('span', { class: 'k p95' }, 'P95')),
      Charts.node(Charts.lines([
        { name: 'P50', cls: 'p50', values: (lat['50'] || []).map(num) },
        { name: 'P95', cls: 'p95', values: (lat['95'] || []).map(num) }], labels, { fmt: SK.fmtMs, label: 'request latency', width: 600, height: 200 }))),
    h('section', {}, h('h3', {}, `Page views per ${d.step.toLowerCase()}`),
      hasRum ? Charts.node(Charts.bars(views.map((v) => ({ time: Number(v.id), value: num(v) || 0 })), { label: 'page views', width: 600, height: 200 }))
        : SK.empty('Page views come from the RUM intake, which has WeChat metrics only.'))));

  // Slowest pages and top issues.
  const slow = ((data.slowest.results[0] || { values: [] }).values || []).filter((v) => v.value !== null);
  const issues = data.issues.issues;
  app.append(h('div', { class: 'grid2' },
    h('section', {}, h('h3', {}, 'Slowest pages ', h('small', {}, 'first render, all versions')),
      slow.length ? SK.table([
        ['Page', (v) => (v.owner && v.owner.endpointName) || v.id],
        ['First render', (v) => SK.fmtMs(Number(v.value)), 'num'],
      ], slow, { class: 'slowest' }) : SK.empty('No page timings in this window.')),
    h('section', {}, h('h3', {}, 'Top issues ', h('a', { href: SK.href('/console/issues', { service: svc.name, version, order: 'COUNT' }), class: 'small' }, 'all')),
      issues.length ? SK.table([
        ['Issue', (i) => h('a', { href: SK.issueHref(i.id), class: 'issue-link' }, i.title || i.errorType)],
        ['Events', (i) => SK.fmtNum(i.count), 'num'],
        ['Sessions', (i) => SK.fmtNum(i.sessionCount), 'num'],
      ], issues, { class: 'top-issues' }, (i) => ({ 'data-issue': i.id, 'data-count': i.count })) : SK.empty('No issues in this window.'))));
  app.append(h('p', { class: 'more' }, h('a', { href: SK.href('/console/sessions', { service: svc.name, version }) }, `Sessions of ${title} →`)));
});
