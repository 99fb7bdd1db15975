// IoT Hub emulator dashboard: a plain client of the emulator's IoT-Hub-shaped REST API.
// No framework, no build step. Data never goes through innerHTML (textContent only).
'use strict';

const API_VERSION = '2021-04-12';
const MAX_EVENTS = 300;      // kept per device for the chart and the table
const TABLE_ROWS = 100;      // rows shown in the telemetry table
const MAX_COLUMNS = 8;       // payload fields shown as table columns
const CHART_POINTS = 120;    // newest points drawn per series
const DEVICE_POLL_MS = 2000;
const TWIN_POLL_MS = 2500;

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const state = {
  host: '',
  token: null,
  expiresAt: 0,
  sessionPromise: null,
  devices: new Map(),     // deviceId -> identity JSON from GET /devices
  selected: null,
  telemetry: new Map(),   // deviceId -> { events: [], fields: [] }
  lastSeq: null,
  sent: new Map(),        // deviceId -> [{ messageId, body, el, done }]
  pendingDesired: null,   // { deviceId, patch, since }
  drawQueued: false,
};

// ---------------------------------------------------------------- session and API

class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Asks the emulator for a short-lived iothubowner token (loopback only; see dashboard.rs). */
async function refreshSession() {
  if (!state.sessionPromise) {
    state.sessionPromise = (async () => {
      const res = await fetch('/dashboard/session', { cache: 'no-store' });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) throw new ApiError(res.status, body.message || `session refused (${res.status})`);
      state.token = body.token;
      state.expiresAt = body.expiresAt;
      state.host = body.hostName;
      $('hub-name').textContent = body.hostName;
    })().finally(() => { state.sessionPromise = null; });
  }
  return state.sessionPromise;
}

async function token() {
  // Renew a minute before expiry so no call races the deadline.
  if (!state.token || state.expiresAt - Date.now() / 1000 < 60) await refreshSession();
  return state.token;
}

/** Calls the REST API; answers the parsed JSON body (or null), throws ApiError otherwise. */
async function api(method, path, body, extraHeaders = {}, retried = false) {
  const sep = path.includes('?') ? '&' : '?';
  const headers = { Authorization: await token(), ...extraHeaders };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${path}${sep}api-version=${API_VERSION}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (res.status === 401 && !retried) {
    state.token = null;
    return api(method, path, body, extraHeaders, true);
  }
  const text = await res.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = text; }
  }
  if (!res.ok) throw errorOf(res.status, json);
  return json;
}

/** IoT Hub's error body: {"Message":"{\"errorCode\":…,\"message\":…}","ExceptionMessage":""}. */
function errorOf(status, json) {
  let message = `HTTP ${status}`;
  let code;
  if (json && typeof json === 'object' && typeof json.Message === 'string') {
    message = json.Message;
    try {
      const inner = JSON.parse(json.Message);
      message = inner.message || message;
      code = inner.errorCode;
    } catch { /* plain text message */ }
  } else if (typeof json === 'string' && json) {
    message = json;
  }
  return new ApiError(status, message, code);
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------- devices

async function pollDevices() {
  for (;;) {
    try {
      const list = await api('GET', '/devices');
      state.devices = new Map(list.map((d) => [d.deviceId, d]));
      renderDevices();
      settleC2d();
      hideBanner();
    } catch (e) {
      showBanner(`Cannot list devices: ${e.message}`);
      if (e.status === 403) return;
    }
    await sleep(DEVICE_POLL_MS);
  }
}

function renderDevices() {
  const ul = $('device-list');
  const ids = [...state.devices.keys()].sort((a, b) => a.localeCompare(b));
  $('device-count').textContent = ids.length ? `(${ids.length})` : '';
  $('no-devices').hidden = ids.length > 0;
  const existing = new Map([...ul.children].map((li) => [li.dataset.id, li]));
  ids.forEach((id, index) => {
    const d = state.devices.get(id);
    let li = existing.get(id);
    if (!li) {
      li = document.createElement('li');
      li.dataset.id = id;
      const b = document.createElement('button');
      b.type = 'button';
      b.innerHTML = '<span class="dot"></span><span class="id"></span><span class="badge" hidden></span>';
      b.querySelector('.id').textContent = id;
      b.addEventListener('click', () => select(id));
      li.append(b);
    }
    existing.delete(id);
    if (ul.children[index] !== li) ul.insertBefore(li, ul.children[index] || null);
    const b = li.firstChild;
    const on = d.connectionState === 'Connected';
    b.querySelector('.dot').classList.toggle('on', on);
    b.setAttribute('aria-current', String(id === state.selected));
    b.setAttribute('aria-label', `${id}, ${on ? 'connected' : 'disconnected'}`
      + (d.cloudToDeviceMessageCount ? `, ${d.cloudToDeviceMessageCount} queued messages` : ''));
    const badge = b.querySelector('.badge');
    badge.hidden = !d.cloudToDeviceMessageCount;
    badge.textContent = `${d.cloudToDeviceMessageCount} queued`;
    badge.title = 'Cloud-to-device messages waiting';
  });
  for (const li of existing.values()) li.remove();
  if (state.selected && !state.devices.has(state.selected)) select(null);
  else if (state.selected) renderDeviceHead();
}

function renderDeviceHead() {
  const d = state.devices.get(state.selected);
  if (!d) return;
  const on = d.connectionState === 'Connected';
  const s = $('device-state');
  s.textContent = on ? 'Connected' : 'Disconnected';
  s.classList.toggle('on', on);
  const seen = d.lastActivityTime && !d.lastActivityTime.startsWith('0001') ? `last activity ${shortTime(d.lastActivityTime)}` : '';
  $('device-meta').textContent = [d.status, seen].filter(Boolean).join(' · ');
}

async function select(id) {
  state.selected = id;
  state.pendingDesired = null;
  if (id) history.replaceState(null, '', `#device=${enc(id)}`);
  else history.replaceState(null, '', location.pathname);
  $('empty').hidden = !!id;
  $('device').hidden = !id;
  for (const li of $('device-list').children) li.firstChild.setAttribute('aria-current', String(li.dataset.id === id));
  if (!id) return;
  $('device-title').textContent = id;
  $('connection-string').value = '';
  $('copy-result').textContent = '';
  $('desired-result').textContent = '';
  $('method-status').textContent = '';
  $('method-response').textContent = '';
  $('c2d-status').textContent = '';
  resetDelete();
  renderDeviceHead();
  renderTable();
  renderC2dList();
  $('connection-events').replaceChildren();
  if (!$('panel-connections').hidden) loadConnectionEvents();
  scheduleDraw();
  loadTwin();
  try {
    const d = await api('GET', `/devices/${enc(id)}`);
    const key = d.authentication && d.authentication.symmetricKey && d.authentication.symmetricKey.primaryKey;
    if (state.selected === id) {
      $('connection-string').value = key
        ? `HostName=${state.host};DeviceId=${id};SharedAccessKey=${key}`
        : `(${d.authentication ? d.authentication.type : 'no'} authentication: no key to show)`;
    }
  } catch (e) {
    $('connection-string').value = `(cannot read the identity: ${e.message})`;
  }
}

$('add-device').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = $('new-device-id');
  const id = input.value.trim();
  if (!id) return;
  try {
    await api('PUT', `/devices/${enc(id)}`, { deviceId: id, status: 'enabled' });
    input.value = '';
    const list = await api('GET', '/devices');
    state.devices = new Map(list.map((d) => [d.deviceId, d]));
    renderDevices();
    select(id);
  } catch (e) {
    showBanner(`Cannot add ${id}: ${e.message}`);
  }
});

$('copy-cs').addEventListener('click', async () => {
  const field = $('connection-string');
  if (!field.value.startsWith('HostName=')) return;
  try {
    await navigator.clipboard.writeText(field.value);
    $('copy-result').textContent = 'Copied';
  } catch {
    field.select();
    $('copy-result').textContent = 'Selected: press Ctrl+C';
  }
});

let deleteTimer = null;
function resetDelete() {
  clearTimeout(deleteTimer);
  const b = $('delete-device');
  b.classList.remove('confirm');
  b.textContent = 'Delete';
}

$('delete-device').addEventListener('click', async () => {
  const b = $('delete-device');
  const id = state.selected;
  if (!b.classList.contains('confirm')) {
    // Two clicks: the first arms the button for a few seconds.
    b.classList.add('confirm');
    b.textContent = `Confirm delete ${id}`;
    deleteTimer = setTimeout(resetDelete, 4000);
    return;
  }
  resetDelete();
  try {
    await api('DELETE', `/devices/${enc(id)}`, undefined, { 'If-Match': '*' });
    state.devices.delete(id);
    state.telemetry.delete(id);
    state.sent.delete(id);
    select(null);
    renderDevices();
  } catch (e) {
    showBanner(`Cannot delete ${id}: ${e.message}`);
  }
});

// ---------------------------------------------------------------- telemetry stream

/** Reads GET /events/stream (server-sent events) with fetch, since EventSource cannot send
 *  an Authorization header. Reconnects from the last seen seq, so nothing is lost. */
async function streamTelemetry() {
  for (;;) {
    try {
      const since = state.lastSeq === null ? '' : `?since=${state.lastSeq}`;
      const res = await fetch(`/events/stream${since}`, {
        headers: { Authorization: await token(), Accept: 'text/event-stream' },
        cache: 'no-store',
      });
      if (!res.ok) throw errorOf(res.status, await res.json().catch(() => null));
      setStream('live', 'live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          sseBlock(block);
        }
      }
    } catch (e) {
      if (e.status === 403) { setStream('down', 'no session'); return; }
    }
    setStream('down', 'reconnecting…');
    await sleep(2000);
  }
}

function sseBlock(block) {
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (!data.length) return; // keep-alive comment
  try {
    onEvent(JSON.parse(data.join('\n')));
  } catch { /* not an event */ }
}

function onEvent(ev) {
  if (typeof ev.seq === 'number') state.lastSeq = Math.max(state.lastSeq ?? 0, ev.seq);
  const t = telemetryOf(ev.deviceId);
  const fields = flatten(ev.payload);
  const item = { seq: ev.seq, time: ev.enqueuedTimeUtc, module: ev.moduleId, fields, props: ev.applicationProperties || {} };
  t.events.push(item);
  if (t.events.length > MAX_EVENTS) t.events.shift();
  let newColumn = false;
  for (const k of Object.keys(fields)) {
    if (!t.fields.includes(k) && t.fields.length < MAX_COLUMNS) { t.fields.push(k); newColumn = true; }
  }
  if (ev.deviceId === state.selected) {
    if (newColumn) renderTable(); else prependRow(item, t.fields, true);
    updateCount();
    scheduleDraw();
  }
}

function telemetryOf(deviceId) {
  let t = state.telemetry.get(deviceId);
  if (!t) { t = { events: [], fields: [] }; state.telemetry.set(deviceId, t); }
  return t;
}

/** Payload fields, objects flattened one level ("thermostat1.temperature"). */
function flatten(payload) {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return { body: payload };
  const out = {};
  for (const [k, v] of Object.entries(payload)) {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v)) out[`${k}.${k2}`] = v2;
    } else {
      out[k] = v;
    }
  }
  return out;
}

function renderTable() {
  const t = telemetryOf(state.selected);
  const head = $('telemetry-table').tHead.rows[0];
  head.replaceChildren(...['Time', ...t.fields, 'Properties'].map((name) => {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = name;
    return th;
  }));
  $('telemetry-table').tBodies[0].replaceChildren();
  t.events.slice(-TABLE_ROWS).forEach((item) => prependRow(item, t.fields, false));
  updateCount();
}

function prependRow(item, fields, fresh) {
  const body = $('telemetry-table').tBodies[0];
  const tr = document.createElement('tr');
  if (fresh) tr.className = 'fresh';
  const cells = [shortTime(item.time) + (item.module ? ` · ${item.module}` : '')];
  for (const f of fields) {
    const v = item.fields[f];
    cells.push(!(f in item.fields) ? '' : typeof v === 'number' ? formatNumber(v) : display(v));
  }
  const props = Object.entries(item.props).filter(([k]) => !k.startsWith('mqtt-')).map(([k, v]) => `${k}=${v}`).join(' ');
  cells.push(props);
  for (const c of cells) {
    const td = document.createElement('td');
    td.textContent = c;
    td.title = c;
    tr.append(td);
  }
  body.prepend(tr);
  while (body.rows.length > TABLE_ROWS) body.deleteRow(-1);
}

function updateCount() {
  const n = telemetryOf(state.selected).events.length;
  $('telemetry-count').textContent = n ? `${n} message${n === 1 ? '' : 's'} since the page opened` : '';
  $('telemetry-empty').hidden = n > 0;
}

function display(v) {
  if (v === null || v === undefined) return String(v);
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function shortTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso || '');
  return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

// ---------------------------------------------------------------- chart (drawn by chart.js)

function scheduleDraw() {
  if (state.drawQueued) return;
  state.drawQueued = true;
  requestAnimationFrame(() => { state.drawQueued = false; drawChart(); });
}

function drawChart() {
  const canvas = $('chart');
  if (!state.selected || canvas.offsetParent === null) return;
  drawTelemetryChart(canvas, $('legend'), telemetryOf(state.selected).events.slice(-CHART_POINTS), shortTime);
}

window.addEventListener('resize', scheduleDraw);

// ---------------------------------------------------------------- twin

function stripMeta(obj) {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return obj;
  const out = {};
  for (const [k, v] of Object.entries(obj)) {
    if (k === '$metadata' || k === '$version') continue;
    out[k] = stripMeta(v);
  }
  return out;
}

async function loadTwin() {
  const id = state.selected;
  if (!id) return;
  try {
    const twin = await api('GET', `/twins/${enc(id)}`);
    if (state.selected !== id) return;
    const p = twin.properties || {};
    const desired = p.desired || {};
    const reported = p.reported || {};
    $('twin-desired').textContent = JSON.stringify(stripMeta(desired), null, 2);
    $('twin-reported').textContent = JSON.stringify(stripMeta(reported), null, 2);
    $('desired-version').textContent = desired.$version !== undefined ? `$version ${desired.$version}` : '';
    $('reported-version').textContent = reported.$version !== undefined ? `$version ${reported.$version}` : '';
    checkReportedAck(reported);
  } catch (e) {
    $('twin-desired').textContent = `Cannot read the twin: ${e.message}`;
  }
}

function sameJson(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Did the device report back the values of the pending desired patch? Plain echo
 *  ({"k": v}) and Plug and Play writable acks ({"k": {"value": v, "av": …}}) both count. */
function checkReportedAck(reported) {
  const p = state.pendingDesired;
  if (!p || p.deviceId !== state.selected) return;
  const wanted = Object.entries(p.patch).filter(([, v]) => v !== null);
  if (!wanted.length) return;
  const acked = wanted.filter(([k, v]) => {
    const r = reported[k];
    return sameJson(stripMeta(r), stripMeta(v)) || (r && typeof r === 'object' && sameJson(stripMeta(r.value), stripMeta(v)));
  });
  const line = $('desired-result');
  if (acked.length === wanted.length) {
    line.className = 'result-line ok';
    line.textContent = `Device reported back ${acked.map(([k, v]) => `${k} = ${display(v)}`).join(', ')} (reported $version ${reported.$version})`;
    state.pendingDesired = null;
  } else if (Date.now() - p.since > 30000) {
    line.className = 'result-line';
    line.textContent = `Desired $version ${p.version} sent; the device has not reported these values back`;
    state.pendingDesired = null;
  }
}

async function pollTwin() {
  for (;;) {
    await sleep(state.pendingDesired ? 700 : TWIN_POLL_MS);
    if (state.selected && !$('panel-twin').hidden && !document.hidden) await loadTwin();
  }
}

$('desired-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = state.selected;
  const line = $('desired-result');
  let patch;
  try {
    patch = JSON.parse($('desired-patch').value);
    if (!patch || typeof patch !== 'object' || Array.isArray(patch)) throw new Error('the patch must be a JSON object');
  } catch (e) {
    line.className = 'result-line err';
    line.textContent = `Not valid: ${e.message}`;
    return;
  }
  line.className = 'result-line';
  line.textContent = 'Sending…';
  try {
    const twin = await api('PATCH', `/twins/${enc(id)}`, { properties: { desired: patch } });
    const version = twin && twin.properties && twin.properties.desired ? twin.properties.desired.$version : '?';
    state.pendingDesired = { deviceId: id, patch, version, since: Date.now() };
    line.textContent = `Desired $version ${version} saved; waiting for the device to report back…`;
    await loadTwin();
  } catch (e) {
    line.className = 'result-line err';
    line.textContent = `${e.status || ''} ${e.message}`.trim();
  }
});

// ---------------------------------------------------------------- direct method

$('method-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = state.selected;
  const status = $('method-status');
  const out = $('method-response');
  let payload;
  const text = $('method-payload').value.trim();
  try {
    payload = text ? JSON.parse(text) : null;
  } catch (e) {
    status.className = 'result-line err';
    status.textContent = `Payload is not JSON: ${e.message}`;
    return;
  }
  const button = ev.submitter || $('method-form').querySelector('button');
  button.disabled = true;
  status.className = 'result-line';
  status.textContent = 'Calling…';
  out.textContent = '';
  const started = performance.now();
  try {
    const answer = await api('POST', `/twins/${enc(id)}/methods`, {
      methodName: $('method-name').value.trim(),
      payload,
      responseTimeoutInSeconds: Number($('method-timeout').value) || 30,
      connectTimeoutInSeconds: 0,
    });
    const ms = Math.round(performance.now() - started);
    const ok = answer.status >= 200 && answer.status < 300;
    status.className = `result-line ${ok ? 'ok' : 'err'}`;
    status.textContent = `Status ${answer.status} · ${ms} ms`;
    out.textContent = JSON.stringify(answer.payload, null, 2);
  } catch (e) {
    status.className = 'result-line err';
    status.textContent = `HTTP ${e.status}${e.code ? ` (${e.code})` : ''}: ${e.message}`;
  } finally {
    button.disabled = false;
  }
});

// ---------------------------------------------------------------- cloud-to-device

function parseProps(text) {
  const props = {};
  for (const part of text.split(',')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    if (eq <= 0) throw new Error(`"${p}" is not key=value`);
    props[p.slice(0, eq).trim()] = p.slice(eq + 1).trim();
  }
  return props;
}

$('c2d-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = state.selected;
  const status = $('c2d-status');
  const body = $('c2d-body').value;
  let properties;
  try {
    properties = parseProps($('c2d-props').value);
  } catch (e) {
    status.className = 'result-line err';
    status.textContent = e.message;
    return;
  }
  let isJson = false;
  try { JSON.parse(body); isJson = true; } catch { /* sent as text */ }
  const messageId = (crypto.randomUUID && crypto.randomUUID()) || `msg-${Date.now()}`;
  try {
    const r = await api('POST', '/messages/devicebound', {
      deviceId: id,
      payload: body,
      properties,
      messageId,
      ack: $('c2d-ack').value,
      ...(isJson ? { contentType: 'application/json', contentEncoding: 'utf-8' } : {}),
    });
    status.className = 'result-line ok';
    status.textContent = `Sent; the device's queue held ${r.cloudToDeviceMessageCount}`;
    const list = state.sent.get(id) || [];
    list.unshift({ messageId: r.messageId, body, done: false });
    state.sent.set(id, list.slice(0, 20));
    renderC2dList();
    const d = state.devices.get(id);
    if (d) d.cloudToDeviceMessageCount = r.cloudToDeviceMessageCount;
  } catch (e) {
    status.className = 'result-line err';
    status.textContent = `HTTP ${e.status}: ${e.message}`;
  }
});

/** A queue that drained to 0 means every message sent before was completed by the device
 *  (PUBACK; the emulator drops expired or rejected ones, which feedback would report). */
function settleC2d() {
  for (const [id, list] of state.sent) {
    const d = state.devices.get(id);
    if (d && d.cloudToDeviceMessageCount === 0) list.forEach((m) => { m.done = true; });
  }
  renderC2dList();
}

function renderC2dList() {
  const ul = $('c2d-list');
  const list = state.sent.get(state.selected) || [];
  ul.replaceChildren(...list.map((m) => {
    const li = document.createElement('li');
    const tag = document.createElement('span');
    tag.className = m.done ? 'tag done' : 'tag';
    tag.textContent = m.done ? 'completed' : 'queued';
    const mid = document.createElement('span');
    mid.className = 'mid';
    mid.textContent = m.messageId;
    mid.title = m.messageId;
    const body = document.createElement('span');
    body.className = 'body';
    body.textContent = m.body;
    body.title = m.body;
    li.append(tag, body, mid);
    return li;
  }));
  if (!list.length) ul.append(placeholder('Nothing sent from this page yet.'));
}

/** A muted list item standing in for an empty list. */
function placeholder(text) {
  const li = document.createElement('li');
  li.className = 'muted';
  li.textContent = text;
  return li;
}

// ---------------------------------------------------------------- connection history

async function loadConnectionEvents() {
  const id = state.selected;
  if (!id) return;
  let events;
  try {
    events = await api('GET', `/devices/${enc(id)}/connectionEvents`);
  } catch (e) {
    showBanner(`Cannot read the connection history: ${e.message}`);
    return;
  }
  if (state.selected !== id) return;
  const ul = $('connection-events');
  ul.replaceChildren(...events.slice().reverse().map((e) => {
    const li = document.createElement('li');
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = shortTime(e.time);
    const kind = document.createElement('span');
    kind.className = `kind ${e.event}`;
    kind.textContent = e.event + (e.moduleId ? ` (${e.moduleId})` : '');
    const reason = document.createElement('span');
    reason.className = 'reason';
    const after = e.durationMs === undefined ? '' : ` after ${(e.durationMs / 1000).toFixed(1)} s`;
    reason.textContent = `${e.transport}${after}${e.reason ? ` — ${e.reason}` : ''}`;
    li.append(time, kind, reason);
    return li;
  }));
  if (!events.length) ul.append(placeholder('No connection attempts since the emulator started.'));
}

async function pollConnectionEvents() {
  for (;;) {
    await sleep(DEVICE_POLL_MS);
    if (state.selected && !$('panel-connections').hidden && !document.hidden) await loadConnectionEvents();
  }
}

// ---------------------------------------------------------------- file uploads

function byteSize(n) {
  if (n === null || n === undefined) return 'size unknown';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

async function loadUploads() {
  const id = state.selected;
  if (!id) return;
  let uploads;
  try {
    uploads = await api('GET', `/devices/${enc(id)}/files`);
  } catch (e) {
    showBanner(`Cannot read the file uploads: ${e.message}`);
    return;
  }
  if (state.selected !== id) return;
  const ul = $('file-uploads');
  ul.replaceChildren(...uploads.map((u) => {
    const li = document.createElement('li');
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = shortTime(u.createdTimeUtc);
    const kind = document.createElement('span');
    kind.className = `kind ${u.state}`;
    kind.textContent = u.state + (u.moduleId ? ` (${u.moduleId})` : '');
    const what = document.createElement('span');
    what.className = 'reason';
    if (u.state === 'completed' && u.downloadUrl) {
      const a = document.createElement('a');
      // The built-in blob endpoint is served on this port too: a same-origin link needs no
      // trust in the emulator's CA and lets the browser save the file.
      const url = new URL(u.downloadUrl);
      a.href = url.pathname.startsWith('/iothubemulator/') ? url.pathname + url.search : u.downloadUrl;
      a.textContent = u.blobName;
      a.rel = 'noopener noreferrer';
      a.setAttribute('download', u.blobName.split('/').pop());
      what.append(a, ` — ${byteSize(u.blobSizeInBytes)}`);
    } else {
      const status = u.statusCode === null ? '' : ` — ${u.statusCode} ${u.statusDescription || ''}`;
      what.textContent = `${u.blobName}${status}`;
    }
    li.append(time, kind, what);
    return li;
  }));
  if (!uploads.length) ul.append(placeholder('No file uploads yet.'));
}

async function pollUploads() {
  for (;;) {
    await sleep(DEVICE_POLL_MS);
    if (state.selected && !$('panel-uploads').hidden && !document.hidden) await loadUploads();
  }
}

// ---------------------------------------------------------------- tabs, banner, start

const tabs = ['twin', 'method', 'c2d', 'connections', 'uploads'];
function showTab(name, focus) {
  for (const t of tabs) {
    const on = t === name;
    const tab = $(`tab-${t}`);
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`panel-${t}`).hidden = !on;
    if (on && focus) tab.focus();
  }
  if (name === 'twin') loadTwin();
  if (name === 'connections') loadConnectionEvents();
  if (name === 'uploads') loadUploads();
}
tabs.forEach((t, i) => {
  const tab = $(`tab-${t}`);
  tab.addEventListener('click', () => showTab(t, false));
  tab.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowRight') showTab(tabs[(i + 1) % tabs.length], true);
    if (ev.key === 'ArrowLeft') showTab(tabs[(i + tabs.length - 1) % tabs.length], true);
  });
});

function showBanner(text) {
  const b = $('banner');
  b.textContent = text;
  b.hidden = false;
}
function hideBanner() { $('banner').hidden = true; }

function setStream(cls, text) {
  const s = $('stream-state');
  s.className = `pill ${cls}`;
  s.textContent = `telemetry stream: ${text}`;
}

async function start() {
  try {
    await refreshSession();
  } catch (e) {
    showBanner(`The dashboard could not sign in: ${e.message}`);
    setStream('down', 'no session');
    return;
  }
  const wanted = new URLSearchParams(location.hash.slice(1)).get('device');
  pollDevices();
  streamTelemetry();
  pollTwin();
  pollConnectionEvents();
  pollUploads();
  if (wanted) select(wanted);
}

start();
