// Skylark console: small SVG charts drawn as strings (one innerHTML per chart is far cheaper
// than building nodes one by one). Every text that reaches the markup goes through SK.esc.
'use strict';

const Charts = (() => {
  const { esc } = SK;

  /** A sparkline of numbers (no axes), `w`×`h` px. */
  function sparkline(values, w = 120, h = 24) {
    const max = Math.max(1, ...values);
    const n = values.length;
    if (!n) return '';
    const x = (i) => (n === 1 ? w / 2 : (i * w) / (n - 1));
    const y = (v) => h - 2 - (v / max) * (h - 4);
    const pts = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    return `<svg class="spark" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="trend, peak ${max}"><polyline points="${pts}"/></svg>`;
  }

  /** Bars over time: points are {time (epoch ms), value}; labelled y max and first/last time. */
  function bars(points, opts = {}) {
    const w = opts.width || 1000;
    const h = opts.height || 200;
    const pad = { l: 48, r: 8, t: 10, b: 22 };
    const max = Math.max(1, ...points.map((p) => p.value));
    const n = Math.max(1, points.length);
    const bw = (w - pad.l - pad.r) / n;
    let out = `<svg class="chart" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(opts.label || 'chart')}">`;
    out += `<line class="axis" x1="${pad.l}" y1="${h - pad.b}" x2="${w - pad.r}" y2="${h - pad.b}"/>`;
    out += `<text class="tick" x="${pad.l - 4}" y="${pad.t + 8}" text-anchor="end">${esc(SK.fmtNum(max))}</text>`;
    out += `<text class="tick" x="${pad.l - 4}" y="${h - pad.b}" text-anchor="end">0</text>`;
    points.forEach((p, i) => {
      const bh = ((h - pad.t - pad.b) * p.value) / max;
      const x = pad.l + i * bw;
      out += `<rect class="bar" x="${x.toFixed(1)}" y="${(h - pad.b - bh).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${bh.toFixed(1)}"><title>${esc(SK.fmtTime(p.time))}: ${esc(p.value)}</title></rect>`;
    });
    if (points.length) {
      out += `<text class="tick" x="${pad.l}" y="${h - 6}">${esc(SK.fmtTime(points[0].time))}</text>`;
      out += `<text class="tick" x="${w - pad.r}" y="${h - 6}" text-anchor="end">${esc(SK.fmtTime(points[points.length - 1].time))}</text>`;
    }
    return out + '</svg>';
  }

  /** Lines: series are {name, cls, values: [number|null]} sharing `labels` (x positions). */
  function lines(series, labels, opts = {}) {
    const w = opts.width || 1000;
    const h = opts.height || 200;
    const pad = { l: 64, r: 8, t: 10, b: 22 };
    const all = series.flatMap((s) => s.values).filter((v) => v !== null);
    const max = Math.max(1, ...all);
    const n = Math.max(2, labels.length);
    const x = (i) => pad.l + (i * (w - pad.l - pad.r)) / (n - 1);
    const y = (v) => h - pad.b - ((h - pad.t - pad.b) * v) / max;
    let out = `<svg class="chart" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(opts.label || 'chart')}">`;
    out += `<line class="axis" x1="${pad.l}" y1="${h - pad.b}" x2="${w - pad.r}" y2="${h - pad.b}"/>`;
    out += `<text class="tick" x="${pad.l - 4}" y="${pad.t + 8}" text-anchor="end">${esc(opts.fmt ? opts.fmt(max) : SK.fmtNum(max))}</text>`;
    for (const s of series) {
      let d = '';
      s.values.forEach((v, i) => {
        if (v === null) return;
        d += `${d && s.values[i - 1] !== null ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      });
      out += `<path class="line ${esc(s.cls)}" d="${d}"><title>${esc(s.name)}</title></path>`;
      // A point with no neighbour draws no line: mark it.
      s.values.forEach((v, i) => {
        if (v !== null && (s.values[i - 1] ?? null) === null && (s.values[i + 1] ?? null) === null) {
          out += `<circle class="dot ${esc(s.cls)}" cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3"><title>${esc(s.name)} ${esc(labels[i] || '')}: ${esc(SK.fmtNum(v))}</title></circle>`;
        }
      });
    }
    if (labels.length) {
      out += `<text class="tick" x="${pad.l}" y="${h - 6}">${esc(labels[0])}</text>`;
      out += `<text class="tick" x="${w - pad.r}" y="${h - 6}" text-anchor="end">${esc(labels[labels.length - 1])}</text>`;
    }
    return out + '</svg>';
  }

  /** A wrapper element holding a chart string. */
  function node(markup, cls) {
    const div = document.createElement('div');
    div.className = cls || 'chart-wrap';
    div.innerHTML = markup;
    return div;
  }

  return { sparkline, bars, lines, node };
})();
