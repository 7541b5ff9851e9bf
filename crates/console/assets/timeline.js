// Skylark console: one session's timeline (`/console/sessions/<sessionId>`): who and where on
// top, the views on a time axis (SVG) with their actions, requests and errors, then each view's
// events in order with trace links. Timings land in `window.__skylarkTimings`.
'use strict';

SK.page('session', async (app) => {
  const { h, esc } = SK;
  const id = SK.pathId();
  const t0 = performance.now();
  SK.setTitle(`Session ${id}`);
  const data = await SK.gql(`query ($id: ID!) { t: querySessionTimeline(sessionId: $id) {
      truncated
      session { id serviceName version versions userId anonymousId device os network start end durationMs
                viewCount actionCount resourceCount errorCount crashCount longTaskCount frustrationCount
                hasFailedRequest sampled }
      views { id name url start durationMs loadingType
              events { type time durationMs name status method url message traceId traceLink } } } }`, { id });
  const fetched = performance.now();
  app.append(h('p', { class: 'crumbs' }, h('a', { href: SK.href('/console/sessions') }, '← Sessions')));
  if (!data.t) {
    app.append(h('h1', {}, 'Session not found'),
      SK.empty(`No session ${id} is stored.`, 'It may be older than the record TTL (SW_CORE_RECORD_DATA_TTL), or the id is mistyped.'));
    return;
  }
  const { session: s, views, truncated } = data.t;
  app.append(h('h1', {}, 'Session ', h('code', {}, s.id)));
  const who = [
    ['Service', s.serviceName], ['Version', (s.versions && s.versions.length > 1) ? s.versions.join(', ') : s.version],
    ['User', s.userId || s.anonymousId || '—'], ['Device', s.device || '—'], ['OS', s.os || '—'],
    ['Network', s.network || '—'], ['Started', SK.fmtTime(s.start)], ['Duration', SK.fmtMs(s.durationMs)],
  ];
  app.append(h('dl', { class: 'facts' }, who.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v || '—')))));
  app.append(h('div', { class: 'cards' },
    SK.card('Views', s.viewCount), SK.card('Actions', s.actionCount), SK.card('Requests', s.resourceCount, s.hasFailedRequest ? 'some failed' : null),
    SK.card('Errors', s.errorCount, s.crashCount ? `${s.crashCount} crashes` : null), SK.card('Long tasks', s.longTaskCount), SK.card('Frustrations', s.frustrationCount)));
  if (truncated) app.append(h('p', { class: 'warn' }, 'This session has more events than a timeline holds; the earliest are shown.'));
  if (!views.length) {
    app.append(SK.empty('This session has no views stored yet.'));
    return;
  }

  // The axis: from the session's start to the end of its last view or event.
  const start = Math.min(s.start, ...views.map((v) => v.start));
  let end = Math.max(s.end || 0, start + 1);
  for (const v of views) {
    end = Math.max(end, v.start + (v.durationMs || 0));
    for (const e of v.events) end = Math.max(end, e.time + (e.durationMs || 0));
  }
  const W = 1000, label = 190, row = 22, top = 24;
  const x = (ms) => label + ((ms - start) / (end - start)) * (W - label - 10);
  const H = top + views.length * row + 6;
  let svg = `<svg class="timeline" viewBox="0 0 ${W} ${H}" role="img" aria-label="Session timeline: ${views.length} views">`;
  for (let i = 0; i <= 5; i++) {
    const ms = start + ((end - start) * i) / 5;
    const tx = x(ms);
    svg += `<line class="grid" x1="${tx.toFixed(1)}" y1="${top - 6}" x2="${tx.toFixed(1)}" y2="${H}"/>`;
    svg += `<text class="tick" x="${tx.toFixed(1)}" y="12" text-anchor="${i === 0 ? 'start' : i === 5 ? 'end' : 'middle'}">+${esc(SK.fmtMs(ms - start))}</text>`;
  }
  views.forEach((v, i) => {
    const y = top + i * row;
    const x1 = x(v.start);
    const x2 = Math.max(x1 + 2, x(v.start + (v.durationMs || 0)));
    svg += `<a href="#view-${i}"><text class="vlabel" x="4" y="${y + 14}">${esc(v.name.length > 28 ? '…' + v.name.slice(-27) : v.name)}</text></a>`;
    svg += `<rect class="view" x="${x1.toFixed(1)}" y="${y + 3}" width="${(x2 - x1).toFixed(1)}" height="${row - 6}" rx="3"><title>${esc(v.name)} · ${esc(SK.fmtMs(v.durationMs))}</title></rect>`;
    for (const e of v.events) {
      const ex = x(e.time).toFixed(1);
      const tip = `<title>${esc(e.type)} ${esc(e.name || e.url || e.message || '')} ${e.status ? esc(e.status) : ''} ${e.durationMs ? esc(SK.fmtMs(e.durationMs)) : ''}</title>`;
      if (e.type === 'resource') {
        const w = Math.max(2, x(e.time + (e.durationMs || 0)) - x(e.time)).toFixed(1);
        const bad = !e.status || e.status >= 400;
        svg += `<rect class="ev req${bad ? ' bad' : ''}" x="${ex}" y="${y + 13}" width="${w}" height="5">${tip}</rect>`;
      } else if (e.type === 'error') {
        svg += `<path class="ev err" d="M${ex},${y + 2}l5,9h-10z">${tip}</path>`;
      } else if (e.type === 'action') {
        svg += `<circle class="ev act" cx="${ex}" cy="${y + 8}" r="3.5">${tip}</circle>`;
      } else {
        svg += `<rect class="ev other" x="${ex}" y="${y + 5}" width="3" height="8">${tip}</rect>`;
      }
    }
  });
  svg += '</svg>';
  app.append(h('h2', {}, 'Timeline'),
    h('p', { class: 'legend' }, h('span', { class: 'k view' }, 'view'), h('span', { class: 'k act' }, 'action'),
      h('span', { class: 'k req' }, 'request'), h('span', { class: 'k bad' }, 'failed request'), h('span', { class: 'k err' }, 'error')),
    Charts.node(svg, 'timeline-wrap'));

  // Each view's events, in order.
  const list = h('div', { class: 'views' });
  views.forEach((v, i) => {
    const rows = v.events.map((e) => {
      let what;
      if (e.type === 'resource') {
        what = [h('span', { class: 'method' }, e.method || ''), ' ', e.url || e.name || '',
          ' ', h('span', { class: !e.status || e.status >= 400 ? 'status bad' : 'status' }, e.status || 'no answer'),
          ' ', SK.fmtMs(e.durationMs),
          e.traceId ? [' ', h('a', { href: SK.traceHref(e.traceId), class: 'trace-link', 'data-trace': e.traceId }, 'trace')] : null,
          e.traceLink ? [' ', h('a', { href: e.traceLink, rel: 'noopener', target: '_blank' }, 'external trace')] : null];
      } else if (e.type === 'error') {
        what = h('span', { class: 'bad' }, e.message || e.name || 'error');
      } else {
        what = [e.name || '', e.durationMs ? ` · ${SK.fmtMs(e.durationMs)}` : ''];
      }
      return h('li', { class: `ev-${e.type}` }, h('span', { class: 'when' }, `+${SK.fmtMs(e.time - v.start)}`),
        h('span', { class: `type t-${e.type}` }, e.type), h('span', { class: 'what' }, what));
    });
    list.append(h('section', { class: 'view-block', id: `view-${i}`, 'data-events': v.events.length },
      h('h3', {}, v.name, ' ', h('small', {}, `${SK.fmtClock(v.start)} · ${SK.fmtMs(v.durationMs)}${v.loadingType ? ' · ' + v.loadingType : ''}`)),
      rows.length ? h('ol', { class: 'events' }, rows) : h('p', { class: 'muted' }, 'No actions, requests or errors in this view.')));
  });
  app.append(h('h2', {}, 'Views'), list);
  const done = performance.now();
  window.__skylarkTimings = {
    events: views.reduce((n, v) => n + v.events.length + 1, 0),
    fetchMs: fetched - t0,
    renderMs: done - fetched,
    sinceNavigationMs: done,
  };
});
