// The dashboard's live telemetry chart, drawn by hand on a <canvas> (no chart library).
// Loaded before app.js, which calls drawTelemetryChart and formatNumber.
'use strict';

const COLORS = ['#0a64c2', '#d9480f', '#2b8a3e', '#862e9c', '#c2255c', '#0b7285', '#e67700', '#5c940d'];

/** Draws the numeric fields of `events` ({time, fields}) as lines on `canvas`, newest at
 *  the right, and fills `legend` with one entry (name and latest value) per series. */
function drawTelemetryChart(canvas, legend, events, shortTime) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);

  const names = [];
  for (const e of events) {
    for (const [k, v] of Object.entries(e.fields)) {
      if (typeof v === 'number' && Number.isFinite(v) && !names.includes(k)) names.push(k);
    }
  }
  legend.replaceChildren(...names.slice(0, COLORS.length).map((n, i) => {
    const s = document.createElement('span');
    s.style.setProperty('--c', COLORS[i]);
    const last = [...events].reverse().find((e) => typeof e.fields[n] === 'number');
    s.textContent = last ? `${n} ${formatNumber(last.fields[n])}` : n;
    return s;
  }));

  const pad = { l: 48, r: 14, t: 12, b: 22 };
  const pw = w - pad.l - pad.r;
  const ph = h - pad.t - pad.b;
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#5f6b7a';
  if (!names.length) {
    g.textAlign = 'center';
    g.fillText(events.length ? 'No numeric fields in the telemetry' : 'Numeric fields will be charted here', w / 2, h / 2);
    return;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const e of events) for (const n of names) {
    const v = e.fields[n];
    if (typeof v === 'number' && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  }
  if (lo === hi) { lo -= 1; hi += 1; }
  const ticks = niceTicks(lo, hi, 4);
  lo = ticks[0];
  hi = ticks[ticks.length - 1];
  const y = (v) => pad.t + ph - ((v - lo) / (hi - lo)) * ph;
  const slots = Math.max(events.length, 20);
  const x = (i) => pad.l + (i / (slots - 1)) * pw;

  // grid and y labels
  g.strokeStyle = '#e6ebf1';
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (const v of ticks) {
    const yy = Math.round(y(v)) + 0.5;
    g.beginPath(); g.moveTo(pad.l, yy); g.lineTo(w - pad.r, yy); g.stroke();
    g.fillText(formatNumber(v), pad.l - 6, yy);
  }
  // x labels: oldest and newest time shown
  g.textBaseline = 'alphabetic';
  g.textAlign = 'left';
  g.fillText(shortTime(events[0].time).slice(0, 8), pad.l, h - 6);
  g.textAlign = 'right';
  g.fillText(shortTime(events[events.length - 1].time).slice(0, 8), w - pad.r, h - 6);

  // series: newest point at the right edge
  const offset = slots - events.length;
  names.slice(0, COLORS.length).forEach((n, si) => {
    g.strokeStyle = COLORS[si];
    g.fillStyle = COLORS[si];
    g.lineWidth = 2;
    g.lineJoin = 'round';
    g.beginPath();
    let started = false;
    let lastPoint = null;
    events.forEach((e, i) => {
      const v = e.fields[n];
      if (typeof v !== 'number' || !Number.isFinite(v)) return;
      const px = x(i + offset);
      const py = y(v);
      if (started) g.lineTo(px, py); else { g.moveTo(px, py); started = true; }
      lastPoint = [px, py];
    });
    g.stroke();
    if (lastPoint) { g.beginPath(); g.arc(lastPoint[0], lastPoint[1], 3, 0, Math.PI * 2); g.fill(); }
  });
}

/** Round tick values (1, 2 or 5 times a power of ten) covering [lo, hi]. */
function niceTicks(lo, hi, count) {
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const first = Math.floor(lo / step) * step;
  const out = [];
  for (let v = first; v < hi + step * 0.999; v += step) out.push(Math.round(v / step) * step);
  return out.length > 1 ? out : [first, first + step];
}

function formatNumber(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return String(Math.round(v * 1000) / 1000);
}
