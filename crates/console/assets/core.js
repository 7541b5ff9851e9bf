// Skylark console: what every page shares. GraphQL calls, the time window, DOM helpers,
// formatting, error and empty states. Plain JS, no dependencies.
'use strict';

const SK = (() => {
  const params = new URLSearchParams(location.search);
  const pages = {};

  /** Builds an element: attrs may hold `class`, any attribute, and `on<event>` handlers. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  /** Escapes text for markup built as a string (SVG charts). */
  function esc(s) {
    return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
  }

  class GraphqlError extends Error {}

  /** Posts a GraphQL document to this server; throws GraphqlError with the server's messages. */
  async function gql(query, variables) {
    let response;
    try {
      response = await fetch('/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ query, variables: variables || {} }),
      });
    } catch (e) {
      throw new GraphqlError(`cannot reach /graphql: ${e.message}`);
    }
    const text = await response.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch (_) {
      throw new GraphqlError(`/graphql answered ${response.status}: ${text.slice(0, 300)}`);
    }
    if (body.errors && body.errors.length) {
      throw new GraphqlError(body.errors.map((e) => e.message).join('; '));
    }
    if (!response.ok || !body.data) throw new GraphqlError(`/graphql answered ${response.status}`);
    return body.data;
  }

  // ---- time ----------------------------------------------------------------------------------

  const RANGES = [
    ['15m', 'Last 15 min', 15 * 60e3],
    ['1h', 'Last 1 h', 60 * 60e3],
    ['6h', 'Last 6 h', 6 * 60 * 60e3],
    ['24h', 'Last 24 h', 24 * 60 * 60e3],
    ['7d', 'Last 7 d', 7 * 24 * 60 * 60e3],
  ];

  /** The window the URL asks for: `range=15m|1h|6h|24h|7d` (default 1h) or `start`/`end` (epoch ms). */
  function window_() {
    const start = Number(params.get('start'));
    const end = Number(params.get('end'));
    if (start > 0 && end > start) return { start, end, key: 'custom', label: `${fmtTime(start)} – ${fmtTime(end)}` };
    const found = RANGES.find((r) => r[0] === params.get('range')) || RANGES[1];
    const now = Date.now();
    return { start: now - found[2], end: now, key: found[0], label: found[1] };
  }

  let serverOffsetMinutes = null;

  /** The server's UTC offset: GraphQL durations are read in the server's time zone. */
  async function serverOffset() {
    if (serverOffsetMinutes !== null) return serverOffsetMinutes;
    const data = await gql('query { getTimeInfo { timezone } }');
    const tz = (data.getTimeInfo && data.getTimeInfo.timezone) || '+0000';
    const m = /^([+-])(\d\d):?(\d\d)$/.exec(tz);
    serverOffsetMinutes = m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
    return serverOffsetMinutes;
  }

  const pad = (n) => String(n).padStart(2, '0');

  /** A GraphQL `Duration` for a window: MINUTE up to 6 h, HOUR up to 20 d, else DAY (at most 500 points). */
  async function duration(win) {
    const offset = await serverOffset();
    const span = win.end - win.start;
    const step = span <= 500 * 60e3 ? 'MINUTE' : span <= 480 * 3600e3 ? 'HOUR' : 'DAY';
    const f = (ms) => {
      const d = new Date(ms + offset * 60e3);
      const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
      if (step === 'DAY') return day;
      if (step === 'HOUR') return `${day} ${pad(d.getUTCHours())}`;
      return `${day} ${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}`;
    };
    return { start: f(win.start), end: f(win.end), step };
  }

  /** A MINUTE `Duration` for record queries (sessions, issues, RUM events), which have no point limit. */
  async function recordDuration(win) {
    const offset = await serverOffset();
    const f = (ms) => {
      const d = new Date(ms + offset * 60e3);
      return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}`;
    };
    return { start: f(win.start), end: f(win.end), step: 'MINUTE' };
  }

  function fmtTime(ms) {
    if (!ms) return '—';
    const d = new Date(Number(ms));
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function fmtClock(ms) {
    const d = new Date(Number(ms));
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined || Number.isNaN(Number(ms))) return '—';
    const n = Number(ms);
    if (n < 1000) return `${Math.round(n)} ms`;
    if (n < 60e3) return `${(n / 1000).toFixed(n < 10e3 ? 2 : 1)} s`;
    if (n < 3600e3) return `${Math.floor(n / 60e3)} min ${Math.round((n % 60e3) / 1000)} s`;
    return `${Math.floor(n / 3600e3)} h ${Math.round((n % 3600e3) / 60e3)} min`;
  }

  function fmtNum(n) {
    if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
    return Number(n).toLocaleString('en-US', { maximumFractionDigits: 2 });
  }

  // ---- URLs ----------------------------------------------------------------------------------

  /** A console URL keeping the current time window, plus `extra` parameters (empty ones dropped). */
  function href(path, extra) {
    const q = new URLSearchParams();
    for (const k of ['range', 'start', 'end']) if (params.get(k)) q.set(k, params.get(k));
    for (const [k, v] of Object.entries(extra || {})) {
      if (v === null || v === undefined || v === '') q.delete(k);
      else q.set(k, v);
    }
    const s = q.toString();
    return s ? `${path}?${s}` : path;
  }

  const enc = encodeURIComponent;
  const sessionHref = (id) => href(`/console/sessions/${enc(id)}`);
  const issueHref = (id) => href(`/console/issues/${enc(id)}`);
  const traceHref = (id) => href(`/console/traces/${enc(id)}`);

  /** The id a detail page's URL names (`/console/<section>/<id>`). */
  function pathId() {
    const parts = location.pathname.split('/');
    return decodeURIComponent(parts[3] || '');
  }

  // ---- page pieces ---------------------------------------------------------------------------

  /** The time window links (stable URLs) and a custom start/end form. */
  function rangePicker() {
    const win = window_();
    const links = RANGES.map(([key, label]) =>
      h('a', { href: hrefWith({ range: key, start: null, end: null }), class: key === win.key ? 'on' : null, 'aria-current': key === win.key ? 'true' : null }, label));
    const local = (ms) => {
      const d = new Date(ms);
      return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
    };
    const from = h('input', { type: 'datetime-local', name: 'from', value: local(win.start), 'aria-label': 'From' });
    const to = h('input', { type: 'datetime-local', name: 'to', value: local(win.end), 'aria-label': 'To' });
    const form = h('form', {
      class: 'custom' + (win.key === 'custom' ? ' on' : ''),
      onsubmit: (e) => {
        e.preventDefault();
        const s = new Date(from.value).getTime();
        const t = new Date(to.value).getTime();
        if (!(s > 0 && t > s)) return;
        location.href = hrefWith({ range: null, start: s, end: t });
      },
    }, from, to, h('button', { type: 'submit' }, 'Apply'));
    return h('div', { class: 'range' }, h('nav', { 'aria-label': 'Time range' }, links), form);
  }

  /** The current URL with some parameters changed (`null` removes one). */
  function hrefWith(changes) {
    const q = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined || v === '') q.delete(k);
      else q.set(k, v);
    }
    const s = q.toString();
    return s ? `${location.pathname}?${s}` : location.pathname;
  }

  function errorBox(err) {
    return h('div', { class: 'error', role: 'alert' },
      h('strong', {}, err instanceof GraphqlError ? 'GraphQL error: ' : 'Error: '), err.message || String(err));
  }

  function empty(...lines) {
    return h('div', { class: 'empty' }, lines.map((l) => h('p', {}, l)));
  }

  function card(label, value, note) {
    return h('div', { class: 'card' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), note ? h('div', { class: 'note' }, note) : null);
  }

  /** A table: columns are [heading, cell(row)]; cells may return nodes or text. */
  function table(columns, rows, attrs, rowAttrs) {
    return h('div', { class: 'table-wrap' }, h('table', attrs || {},
      h('thead', {}, h('tr', {}, columns.map(([head, , cls]) => h('th', { class: cls }, head)))),
      h('tbody', {}, rows.map((row) => h('tr', rowAttrs ? rowAttrs(row) : {},
        columns.map(([, cell, cls]) => h('td', { class: cls }, cell(row))))))));
  }

  /** Previous/next links for a list of `total` rows shown `size` per page. */
  function pager(pageNum, size, total) {
    const last = Math.max(1, Math.ceil(total / size));
    return h('nav', { class: 'pager', 'aria-label': 'Pages' },
      pageNum > 1 ? h('a', { href: hrefWith({ page: pageNum - 1 }), rel: 'prev' }, '← Newer') : h('span', {}, ''),
      h('span', {}, `page ${pageNum} of ${last} · ${fmtNum(total)} in all`),
      pageNum < last ? h('a', { href: hrefWith({ page: pageNum + 1 }), rel: 'next' }, 'Older →') : h('span', {}, ''));
  }

  /** A GET form of filters (so the filtered list has a stable URL); keeps the time window. */
  function filterForm(fields) {
    const hidden = ['range', 'start', 'end'].filter((k) => params.get(k)).map((k) => h('input', { type: 'hidden', name: k, value: params.get(k) }));
    return h('form', { class: 'filters', method: 'get', action: location.pathname }, hidden,
      fields.map(([label, input]) => h('label', {}, h('span', {}, label), input)),
      h('button', { type: 'submit' }, 'Filter'));
  }

  /** A `<select>` of options [value, label] with the URL's current value chosen. */
  function select(name, options) {
    const current = params.get(name) || '';
    return h('select', { name }, options.map(([v, l]) => h('option', { value: v, selected: v === current }, l)));
  }

  function input(name, attrs) {
    return h('input', Object.assign({ name, value: params.get(name) || '' }, attrs || {}));
  }

  /** Services of both mini-program layers, each with its metric prefix (`wechat`/`alipay`). */
  async function services() {
    const data = await gql(`query {
      wechat: listServices(layer: "WECHAT_MINI_PROGRAM") { name }
      alipay: listServices(layer: "ALIPAY_MINI_PROGRAM") { name } }`);
    const out = [];
    for (const s of data.wechat || []) out.push({ name: s.name, platform: 'wechat' });
    for (const s of data.alipay || []) if (!out.some((o) => o.name === s.name)) out.push({ name: s.name, platform: 'alipay' });
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  function setTitle(text) {
    document.title = `${text} · Skylark console`;
  }

  /** Registers a page's drawing function, run once the document is parsed. */
  function page(name, draw) {
    pages[name] = draw;
  }

  async function start() {
    const app = document.getElementById('app');
    const section = document.body.dataset.section;
    for (const a of document.querySelectorAll('nav.sections a')) {
      if (a.dataset.section === section) a.setAttribute('aria-current', 'page');
    }
    const name = document.body.dataset.page;
    const draw = pages[name];
    if (!draw) {
      app.replaceChildren(h('h1', {}, 'Not found'), empty(`There is no console page at ${location.pathname}.`, 'Pick a page above.'));
      return;
    }
    app.replaceChildren();
    try {
      await draw(app);
    } catch (err) {
      app.append(errorBox(err));
    } finally {
      document.body.dataset.ready = 'true';
    }
  }

  document.addEventListener('DOMContentLoaded', start);

  return {
    h, append, esc, gql, GraphqlError, params, window: window_, duration, recordDuration, fmtTime, fmtClock, fmtMs, fmtNum,
    href, hrefWith, sessionHref, issueHref, traceHref, pathId, rangePicker, errorBox, empty, card, table, pager, filterForm, select, input,
    services, setTitle, page,
  };
})();
