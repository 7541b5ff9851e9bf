// Skylark console: trace lookup (`/console/traces/<traceId>`): a W3C (32 hex) or SkyWalking
// trace id → its spans as a waterfall (mini program → backend), and the RUM request that
// carried it with its view and session.
'use strict';

SK.page('trace', async (app) => {
  const { h, esc } = SK;
  const asked = SK.params.get('id');
  if (asked && asked.trim()) {
    location.replace(SK.traceHref(normalize(asked)));
    return;
  }
  const id = normalize(SK.pathId());
  const form = h('form', { class: 'filters', method: 'get', action: '/console/traces' },
    h('label', {}, h('span', {}, 'Trace id'), h('input', { name: 'id', value: id, size: 40, placeholder: '32-hex W3C id or SkyWalking id', required: true, spellcheck: 'false' })),
    h('button', { type: 'submit' }, 'Look up'));
  app.append(h('h1', {}, 'Trace lookup'), form);
  if (!id) {
    app.append(SK.empty('Paste a trace id: the 32-hex W3C id a mini program’s request carried (from a session’s timeline), or a SkyWalking trace id.'));
    return;
  }
  SK.setTitle(`Trace ${id}`);
  const rumWanted = /^([0-9a-f]{16}|[0-9a-f]{32}|[0-9]{1,20})$/.test(id);
  const now = Date.now();
  const d = await SK.recordDuration({ start: now - 8 * 24 * 3600e3, end: now + 60e3 });
  const data = await SK.gql(`query ($id: ID!, $c: RumEventCondition!, $rum: Boolean!) {
      trace: queryTrace(traceId: $id) { spans { traceId segmentId spanId parentSpanId
        refs { parentSegmentId parentSpanId type } serviceCode serviceInstanceName startTime endTime
        endpointName type peer component isError layer tags { key value } } }
      rum: queryRumEvents(condition: $c) @include(if: $rum) { events { type time serviceName version sessionId viewId viewName
        name duration status traceId traceLink } } }`,
  { id, rum: rumWanted, c: { traceId: rumWanted ? id : '0', types: ['resource'], duration: d, paging: { pageNum: 1, pageSize: 5 } } });
  const spans = (data.trace && data.trace.spans) || [];
  const rum = (data.rum && data.rum.events) || [];
  app.append(h('p', {}, 'Trace ', h('code', { class: 'trace-id' }, id)));

  for (const r of rum) {
    app.append(h('div', { class: 'rum-request' },
      h('strong', {}, 'Mini-program request '), `${r.name || ''} `,
      h('span', { class: !r.status || r.status >= 400 ? 'status bad' : 'status' }, r.status || 'no answer'), ` · ${SK.fmtMs(r.duration)} · ${SK.fmtTime(r.time)}`,
      h('div', { class: 'muted small' }, `${r.serviceName} ${r.version || ''} · view ${r.viewName || r.viewId || '—'} · `,
        r.sessionId ? h('a', { href: SK.sessionHref(r.sessionId), class: 'session-link' }, `session ${r.sessionId}`) : 'no session',
        r.traceLink ? [' · ', h('a', { href: r.traceLink, rel: 'noopener', target: '_blank' }, 'external trace')] : null)));
  }
  if (!spans.length) {
    app.append(SK.empty(rum.length ? 'No spans of this trace are stored: the backend may not send its spans to Skylark (POST /v1/traces), or they expired.'
      : `No trace ${id} is stored, and no mini-program request carried it.`, 'Traces are kept SW_CORE_RECORD_DATA_TTL days.'));
    return;
  }

  // Parent links: within a segment by span id, across segments by the first ref.
  const key = (seg, span) => `${seg}#${span}`;
  const byKey = new Map(spans.map((s) => [key(s.segmentId, s.spanId), s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    let parent = null;
    if (s.parentSpanId >= 0) parent = byKey.get(key(s.segmentId, s.parentSpanId));
    else if (s.refs.length) parent = byKey.get(key(s.refs[0].parentSegmentId, s.refs[0].parentSpanId));
    if (parent && parent !== s) {
      const k = key(parent.segmentId, parent.spanId);
      if (!children.has(k)) children.set(k, []);
      children.get(k).push(s);
    } else roots.push(s);
  }
  const order = [];
  const seen = new Set();
  const walk = (s, depth) => {
    const k = key(s.segmentId, s.spanId);
    if (seen.has(k)) return;
    seen.add(k);
    order.push({ s, depth });
    (children.get(k) || []).sort((a, b) => a.startTime - b.startTime).forEach((c) => walk(c, depth + 1));
  };
  roots.sort((a, b) => a.startTime - b.startTime).forEach((r) => walk(r, 0));

  const start = Math.min(...spans.map((s) => s.startTime));
  const end = Math.max(start + 1, ...spans.map((s) => s.endTime));
  const services = [...new Set(spans.map((s) => s.serviceCode))];
  app.append(h('div', { class: 'cards' }, SK.card('Spans', spans.length), SK.card('Services', services.length, services.join(', ')),
    SK.card('Duration', SK.fmtMs(end - start)), SK.card('Errors', spans.filter((s) => s.isError).length)));

  const W = 1000, label = 300, row = 20, top = 22;
  const x = (ms) => label + ((ms - start) / (end - start)) * (W - label - 10);
  const H = top + order.length * row + 4;
  let svg = `<svg class="waterfall" viewBox="0 0 ${W} ${H}" role="img" aria-label="Trace waterfall: ${order.length} spans">`;
  for (let i = 0; i <= 4; i++) {
    const ms = start + ((end - start) * i) / 4;
    svg += `<line class="grid" x1="${x(ms).toFixed(1)}" y1="${top - 6}" x2="${x(ms).toFixed(1)}" y2="${H}"/>`;
    svg += `<text class="tick" x="${x(ms).toFixed(1)}" y="12" text-anchor="${i === 0 ? 'start' : i === 4 ? 'end' : 'middle'}">${esc(SK.fmtMs(ms - start))}</text>`;
  }
  order.forEach(({ s, depth }, i) => {
    const y = top + i * row;
    const name = `${s.serviceCode} ${s.endpointName || ''}`;
    const text = name.length > 40 - depth ? name.slice(0, 39 - depth) + '…' : name;
    const x1 = x(s.startTime);
    const w = Math.max(2, x(s.endTime) - x1);
    svg += `<text class="slabel" x="${4 + depth * 10}" y="${y + 14}">${esc(text)}</text>`;
    svg += `<rect class="span ${esc(String(s.type).toLowerCase())}${s.isError ? ' bad' : ''}" x="${x1.toFixed(1)}" y="${y + 4}" width="${w.toFixed(1)}" height="${row - 8}" rx="2"><title>${esc(name)} · ${esc(s.type)} · ${esc(SK.fmtMs(s.endTime - s.startTime))}</title></rect>`;
  });
  svg += '</svg>';
  app.append(h('h2', {}, 'Waterfall'), Charts.node(svg, 'timeline-wrap'));
  app.append(h('h2', {}, 'Spans'), SK.table([
    ['Service', ({ s, depth }) => h('span', { class: `indent d${Math.min(depth, 8)}` }, s.serviceCode)],
    ['Endpoint', ({ s }) => s.endpointName || '—'],
    ['Kind', ({ s }) => s.type],
    ['Start', ({ s }) => `+${SK.fmtMs(s.startTime - start)}`, 'num'],
    ['Duration', ({ s }) => SK.fmtMs(s.endTime - s.startTime), 'num'],
    ['Peer / component', ({ s }) => [s.peer, s.component, s.layer].filter(Boolean).join(' · ') || '—'],
    ['Tags', ({ s }) => (s.tags.length ? h('details', {}, h('summary', {}, `${s.tags.length} tags`),
      h('dl', { class: 'tags' }, s.tags.map((t) => [h('dt', {}, t.key), h('dd', {}, t.value)]))) : '—')],
  ], order, { class: 'spans' }, ({ s }) => ({ class: s.isError ? 'bad-row' : null, 'data-service': s.serviceCode })));
});

/** Trims a pasted id; a W3C id (with or without dashes, any case) becomes 32 lowercase hex. */
function normalize(id) {
  const t = String(id || '').trim();
  const hex = t.replace(/-/g, '');
  return /^[0-9a-fA-F]{32}$/.test(hex) ? hex.toLowerCase() : t;
}
