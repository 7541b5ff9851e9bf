// Skylark console: the sessions list (`/console/sessions`), filtered by the URL's parameters.
'use strict';

SK.page('sessions', async (app) => {
  const { h, params } = SK;
  const size = 20;
  const pageNum = Math.max(1, Number(params.get('page')) || 1);
  const services = await SK.services();
  const win = SK.window();
  app.append(h('div', { class: 'head' }, h('h1', {}, 'Sessions'), SK.rangePicker()));
  app.append(SK.filterForm([
    ['Service', SK.select('service', [['', 'All services'], ...services.map((s) => [s.name, s.name])])],
    ['Version', SK.input('version', { placeholder: 'any', size: 8 })],
    ['User id', SK.input('user', { placeholder: 'user or anonymous id', size: 16 })],
    ['Errors', SK.select('error', [['', 'any'], ['1', 'with errors'], ['0', 'without errors']])],
    ['Min duration (s)', SK.input('minSeconds', { type: 'number', min: 0, step: 1, size: 5 })],
  ]));
  const condition = {
    duration: await SK.recordDuration(win),
    paging: { pageNum, pageSize: size },
  };
  if (params.get('service')) condition.serviceName = params.get('service');
  if (params.get('version')) condition.version = params.get('version');
  if (params.get('user')) condition.userId = params.get('user');
  if (params.get('error') === '1' || params.get('error') === '0') condition.hasError = params.get('error') === '1';
  if (Number(params.get('minSeconds')) > 0) condition.minDurationMs = Math.round(Number(params.get('minSeconds')) * 1000);
  const data = await SK.gql(`query ($c: SessionCondition!) { result: querySessions(condition: $c) {
      total sessions { id serviceName version userId anonymousId device os network start durationMs
                       viewCount actionCount resourceCount errorCount crashCount hasFailedRequest } } }`, { c: condition });
  const { total, sessions } = data.result;
  if (!sessions.length) {
    app.append(SK.empty(
      `No sessions in this window (${win.label.toLowerCase()}) with these filters.`,
      `Is the RUM SDK pointed at ${location.origin}/api/v2/rum (site) or a proxy forwarding ?ddforward= here, and sending for this service?`));
    return;
  }
  app.append(h('p', { class: 'summary', 'data-total': total }, `${SK.fmtNum(total)} sessions started in this window`));
  app.append(SK.table([
    ['Started', (s) => h('a', { href: SK.sessionHref(s.id), class: 'session-link' }, SK.fmtTime(s.start))],
    ['Service', (s) => s.serviceName],
    ['Version', (s) => s.version || '—'],
    ['User', (s) => s.userId || (s.anonymousId ? `anon ${s.anonymousId.slice(0, 8)}` : '—')],
    ['Duration', (s) => SK.fmtMs(s.durationMs), 'num'],
    ['Views', (s) => s.viewCount, 'num'],
    ['Actions', (s) => s.actionCount, 'num'],
    ['Requests', (s) => h('span', { class: s.hasFailedRequest ? 'bad' : null }, s.resourceCount), 'num'],
    ['Errors', (s) => h('span', { class: s.errorCount ? 'bad' : null }, s.errorCount), 'num'],
    ['Device / network', (s) => [s.device, s.os, s.network].filter(Boolean).join(' · ') || '—'],
  ], sessions, { class: 'sessions' }, (s) => ({ 'data-session': s.id, 'data-errors': s.errorCount, 'data-views': s.viewCount })));
  app.append(SK.pager(pageNum, size, total));
});
