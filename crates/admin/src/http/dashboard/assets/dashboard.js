// Live dashboard: renders the snapshots of /dashboard/live (server-sent events, one a second)
// and keeps 5 minutes of them in memory for the charts.
'use strict';

(() => {
  const { el, metric, isNum, fmtNum, fmtMs, fmtClock, fmtTime, PALETTE } = Vaka;
  const $ = (id) => document.getElementById(id);
  const WINDOW_S = 300;
  const STAGE_ORDER = ['durable', 'offered', 'receipted', 'accepted'];
  const STALE_MS = 5000;

  let lastLocalMs = 0; // when the last snapshot arrived, by the browser's clock (no skew issues)
  let lastSnapshot = null;
  let connState = 'connecting';
  const past = []; // [{t: seconds, alarms: {...}, events: {...}, p99: {...}}]

  // ---- helpers -----------------------------------------------------------------------------

  // Known stages first, in pipeline order, then anything new the engine adds.
  function stageKeys(obj) {
    const keys = Object.keys(obj || {});
    return STAGE_ORDER.filter((k) => keys.includes(k)).concat(keys.filter((k) => !STAGE_ORDER.includes(k)).sort());
  }

  const sortedKeys = (obj) => Object.keys(obj || {}).sort();
  const label = (k) => k.replace(/_/g, ' ');

  // One labelled figure: big number, small label under it.
  function figure(name, value, text, opts = {}) {
    const bad = opts.bad && isNum(value) && opts.bad(value);
    const warn = !bad && opts.warn && isNum(value) && opts.warn(value);
    return el('div', { class: 'figure' + (bad ? ' bad' : warn ? ' warn' : '') + (opts.cls ? ' ' + opts.cls : '') },
      metric(name, value, opts.format || fmtNum),
      el('span', { class: 'flabel', text }));
  }

  // ---- rendering ---------------------------------------------------------------------------

  function renderScope(s) {
    const tenants = Array.isArray(s.tenants) ? s.tenants : [];
    const shown = tenants.slice(0, 8).join(', ') + (tenants.length > 8 ? ` +${tenants.length - 8} more` : '');
    const text = s.scope === 'platform'
      ? `Platform · ${tenants.length} tenant${tenants.length === 1 ? '' : 's'}${tenants.length ? ': ' + shown : ''}`
      : `Tenant ${shown || '–'}`;
    const scope = $('scope');
    scope.textContent = text;
    scope.title = tenants.join(', ');
    scope.dataset.scope = s.scope || '';
  }

  function renderAlarms(s) {
    const a = s.alarms || {};
    $('alarms').replaceChildren(
      figure('alarms.open', a.open, 'open'),
      figure('alarms.pending', a.pending, 'pending'),
      figure('alarms.unhandled', a.unhandled, 'unhandled', { bad: (v) => v > 0 }),
      figure('alarms.test_open', a.test_open, 'test open', { cls: 'test' }),
    );
    $('totals').replaceChildren(
      figure('deadline_misses', s.deadline_misses, 'deadline misses', { bad: (v) => v > 0 }),
      figure('escalations', s.escalations, 'escalations', { warn: (v) => v > 0 }),
      figure('silent_devices', s.silent_devices, 'silent devices', { warn: (v) => v > 0 }),
    );
  }

  function renderRates(s) {
    const aps = s.alarms_per_second || {};
    const eps = s.events_per_second || {};
    const protos = [...new Set([...Object.keys(aps), ...Object.keys(eps)])].sort();
    const rate = (v) => fmtNum(v, 1);
    if (!protos.length) return $('rates').tBodies[0].replaceChildren(el('tr', {}, el('td', { colspan: 3, class: 'muted', text: 'No data' })));
    $('rates').tBodies[0].replaceChildren(...protos.map((p) => el('tr', {},
      el('th', { scope: 'row', text: p }),
      el('td', { class: 'num' }, p in aps ? metric(`alarms_per_second.${p}`, aps[p], rate) : '–'),
      el('td', { class: 'num' }, p in eps ? metric(`events_per_second.${p}`, eps[p], rate) : '–'),
    )));
  }

  function renderConnections(s) {
    const c = s.connections || {};
    const keys = sortedKeys(c);
    $('connections').replaceChildren(...(keys.length
      ? keys.map((k) => figure(`connections.${k}`, c[k], label(k.replace(/^devices_/, 'devices '))))
      : [el('span', { class: 'muted', text: 'None' })]));
  }

  function renderStages(s) {
    const st = s.stage_latency_ms || {};
    $('stages').tBodies[0].replaceChildren(...stageKeys(st).map((k) => {
      const v = st[k] || {};
      return el('tr', {},
        el('th', { scope: 'row', text: k }),
        el('td', { class: 'num' }, metric(`stage_latency_ms.${k}.p50`, v.p50, fmtMs)),
        el('td', { class: 'num' }, metric(`stage_latency_ms.${k}.p99`, v.p99, fmtMs)),
        el('td', { class: 'num' }, metric(`stage_latency_ms.${k}.count`, v.count)),
      );
    }));
  }

  function renderCanaries(s) {
    const list = Array.isArray(s.canaries) ? s.canaries : [];
    const items = list.map((c) => {
      const ok = c.ok === true;
      return el('li', { class: ok ? 'canary ok' : 'canary bad' },
        el('span', { class: 'metric', 'data-metric': `canary.${c.tenant}`, 'data-value': ok ? '1' : '0',
          text: ok ? `${c.tenant}: ok` : `Alarm path of tenant ${c.tenant} is broken` }),
        el('span', { class: 'muted small' },
          ' · last ok ', c.last_ok_ms ? fmtTime(c.last_ok_ms) : 'never',
          ' · latency ', metric(`canary.${c.tenant}.latency_ms`, c.latency_ms, fmtMs),
          ' · failures ', metric(`canary.${c.tenant}.failures`, c.failures, fmtNum, c.failures > 0 ? 'bad-text' : '')));
    });
    $('canaries').replaceChildren(...(items.length ? items : [el('li', { class: 'muted', text: 'No canaries configured' })]));
  }

  function renderStore(s) {
    const card = $('store-card');
    // A tenant view gets no store or socket figures: hide the card rather than show blanks.
    if (!s.store && !s.udp_drops) { card.hidden = true; $('store').replaceChildren(); return; }
    card.hidden = false;
    const kids = [];
    if (s.store) {
      kids.push(
        figure('store.sync_p99_ms', s.store.sync_p99_ms, 'sync p99', { format: fmtMs }),
        figure('store.group_size_mean', s.store.group_size_mean, 'group size mean', { format: (v) => fmtNum(v, 1) }),
        el('div', { class: 'figure' + (s.store.healthy === false ? ' bad' : '') },
          el('span', { class: 'metric', 'data-metric': 'store.healthy',
            'data-value': s.store.healthy === true ? '1' : s.store.healthy === false ? '0' : '',
            text: s.store.healthy === true ? 'healthy' : s.store.healthy === false ? 'UNHEALTHY' : '–' }),
          el('span', { class: 'flabel', text: 'store' })));
    }
    for (const k of sortedKeys(s.udp_drops)) {
      kids.push(figure(`udp_drops.${k}`, s.udp_drops[k], `UDP drops ${k}`, { bad: (v) => v > 0 }));
    }
    $('store').replaceChildren(...kids);
  }

  function renderGps(s) {
    const g = s.gps_filtered || {};
    const keys = sortedKeys(g);
    $('gps').replaceChildren(...(keys.length
      ? keys.map((k) => figure(`gps_filtered.${k}`, g[k], label(k)))
      : [el('span', { class: 'muted', text: 'None' })]));
  }

  function renderRecent(s) {
    const rows = (Array.isArray(s.recent_alarms) ? s.recent_alarms : []).map((a) => {
      const unhandled = a.state === 'unhandled' || a.unhandled === true;
      return el('tr', { 'data-alarm-id': a.id, class: unhandled ? 'bad' : a.test ? 'test' : '' },
        el('td', { class: 't', text: fmtClock(a.created_ms), title: fmtTime(a.created_ms) }),
        el('td', {}, el('a', { href: '/dashboard/alarms/' + encodeURIComponent(a.id), text: a.id }),
          a.test ? el('span', { class: 'badge test', text: 'TEST' }) : null),
        el('td', { text: a.tenant }),
        el('td', { text: a.device }),
        el('td', { text: a.kind }),
        el('td', { text: a.code }),
        el('td', {}, el('span', { class: 'state' + (unhandled ? ' bad-text' : ''), text: a.state })),
      );
    });
    $('recent').tBodies[0].replaceChildren(...(rows.length ? rows
      : [el('tr', {}, el('td', { colspan: 7, class: 'muted', text: 'No alarms yet' }))]));
  }

  // Red banners for what needs a human: broken canaries, unhealthy store, stale data.
  function renderProblems(s) {
    const msgs = [];
    for (const c of s.canaries || []) if (c.ok !== true) msgs.push(`Alarm path of tenant ${c.tenant} is broken`);
    if (s.store && s.store.healthy === false) msgs.push('Store is unhealthy');
    const stale = lastLocalMs && Date.now() - lastLocalMs > STALE_MS;
    if (stale) msgs.push(`No snapshot for ${Math.round((Date.now() - lastLocalMs) / 1000)} s – figures are out of date`);
    $('problems').replaceChildren(...msgs.map((m) => el('p', { class: 'banner', text: m })));
  }

  // ---- connection status ---------------------------------------------------------------------

  function setConn(state) {
    connState = state;
    const c = $('conn');
    c.textContent = state;
    c.className = 'badge ' + (state === 'live' ? 'live' : 'warn');
    tick();
  }

  // Once a second: age of the last snapshot, so a frozen screen is obvious.
  function tick() {
    const age = $('age');
    if (!lastLocalMs) { age.textContent = ''; return; }
    const secs = Math.max(0, Math.round((Date.now() - lastLocalMs) / 1000));
    age.textContent = `(${secs} s ago)`;
    age.className = secs * 1000 > STALE_MS ? 'warn-text' : '';
    if (secs * 1000 > STALE_MS && lastSnapshot) renderProblems(lastSnapshot);
  }

  // ---- charts -----------------------------------------------------------------------------

  const charts = {}; // id -> {u, keys}

  function seriesData(field) {
    const keys = [...new Set(past.flatMap((h) => Object.keys(h[field])))].sort();
    const data = [past.map((h) => h.t), ...keys.map((k) => past.map((h) => (isNum(h[field][k]) ? h[field][k] : null)))];
    return { keys, data };
  }

  const hhmm = new Intl.DateTimeFormat('sv-SE', { hour: '2-digit', minute: '2-digit' });

  // Axis labels: 0.5, 12, 250, 3k, 30k.
  function compact(x) {
    if (x == null) return '';
    if (Math.abs(x) >= 1000) return fmtNum(x / 1000, Math.abs(x) < 10000 && !Number.isInteger(x / 1000) ? 1 : 0) + 'k';
    return fmtNum(x, Number.isInteger(x) ? 0 : 1);
  }

  function powersOfTen(min, max) {
    const out = [];
    for (let p = Math.floor(Math.log10(Math.max(min, 1e-3))); p <= Math.ceil(Math.log10(Math.max(max, 1e-3))); p++) {
      const v = 10 ** p;
      if (v >= min && v <= max) out.push(v);
    }
    return out.length ? out : [min, max];
  }

  function drawChart(id, field, log) {
    const box = $(id);
    if (typeof uPlot === 'undefined' || !box) return;
    const { keys, data } = seriesData(field);
    const width = Math.max(200, box.clientWidth);
    let c = charts[id];
    // Protocols/stages can appear later: rebuild the chart when its series change.
    if (!c || c.keys.join() !== keys.join()) {
      if (c) c.u.destroy();
      const opts = {
        width, height: 150,
        legend: { show: true, live: false },
        cursor: { show: true, drag: { x: false, y: false } },
        // A fixed 5-minute window, so the time axis reads as minutes from the first snapshot on.
        scales: {
          x: { time: true, range: (u, min, max) => [max - WINDOW_S, max] },
          y: log ? { distr: 3 } : { range: (u, min, max) => [0, Math.max(1, max * 1.1)] },
        },
        axes: [{ size: 30, font: '11px system-ui, sans-serif', values: (u, v) => v.map((t) => hhmm.format(new Date(t * 1000))) },
          { size: 44, font: '11px system-ui, sans-serif', values: (u, v) => v.map(compact),
            // Log scale: one grid line per power of ten instead of uPlot's dense minor lines.
            ...(log ? { splits: (u, i, min, max) => powersOfTen(min, max) } : {}) }],
        series: [{}, ...keys.map((k, i) => ({ label: k, stroke: PALETTE[i % PALETTE.length], width: 1.5, points: { show: false } }))],
      };
      c = charts[id] = { u: new uPlot(opts, data, box), keys };
    } else {
      c.u.setData(data);
    }
  }

  function drawCharts() {
    drawChart('chart-alarms', 'alarms', false);
    drawChart('chart-events', 'events', false);
    drawChart('chart-stages', 'p99', true);
  }

  window.addEventListener('resize', () => {
    for (const [id, c] of Object.entries(charts)) c.u.setSize({ width: Math.max(200, $(id).clientWidth), height: 150 });
  });

  // ---- snapshots ----------------------------------------------------------------------------

  function onSnapshot(s) {
    lastSnapshot = s;
    lastLocalMs = Date.now();
    const at = $('snapshot-at');
    at.dataset.value = isNum(s.at_ms) ? String(s.at_ms) : '';
    at.textContent = fmtTime(s.at_ms);
    if (isNum(s.at_ms)) at.dateTime = new Date(s.at_ms).toISOString();

    renderScope(s);
    renderAlarms(s);
    renderRates(s);
    renderConnections(s);
    renderStages(s);
    renderCanaries(s);
    renderStore(s);
    renderGps(s);
    renderRecent(s);
    renderProblems(s);

    // Log scale cannot show 0: leave those points out.
    const p99 = {};
    for (const [k, v] of Object.entries(s.stage_latency_ms || {})) p99[k] = v && isNum(v.p99) && v.p99 > 0 ? v.p99 : null;
    const t = (isNum(s.at_ms) ? s.at_ms : Date.now()) / 1000;
    // After an outage, an empty point breaks the lines instead of bridging the gap.
    if (past.length && t - past[past.length - 1].t > 3) past.push({ t: past[past.length - 1].t + 1, alarms: {}, events: {}, p99: {} });
    past.push({ t, alarms: { ...(s.alarms_per_second || {}) }, events: { ...(s.events_per_second || {}) }, p99 });
    while (past.length && past[0].t < t - WINDOW_S) past.shift();
    drawCharts();
    document.body.dataset.snapshots = String(Number(document.body.dataset.snapshots || 0) + 1);
  }

  let es = null;
  let retry = null;

  function connect() {
    clearTimeout(retry);
    es = new EventSource('/dashboard/live');
    es.addEventListener('snapshot', (ev) => {
      let s;
      try { s = JSON.parse(ev.data); } catch (_) { return; }
      if (connState !== 'live') setConn('live');
      onSnapshot(s);
    });
    es.onerror = () => {
      setConn('reconnecting');
      // CONNECTING: the browser retries by itself. CLOSED: the server answered non-200 (e.g. 401).
      if (es.readyState === EventSource.CLOSED) checkThenReconnect();
    };
  }

  // EventSource hides the status of a failed answer; one fetch tells an expired cookie (401)
  // from an outage. It is aborted as soon as the headers are in.
  async function checkThenReconnect() {
    es.close();
    const ctl = new AbortController();
    try {
      const r = await fetch('/dashboard/live', { signal: ctl.signal, credentials: 'same-origin' });
      ctl.abort();
      if (r.status === 401 || (r.redirected && new URL(r.url).pathname === '/dashboard/login')) {
        Vaka.goLogin();
        return;
      }
    } catch (_) { /* network down: try again below */ }
    retry = setTimeout(connect, 3000);
  }

  document.addEventListener('DOMContentLoaded', () => {
    setInterval(tick, 1000);
    connect();
  });
})();
