// Statistics for one tenant over a period. The address (?tenant=&from_ms=&to_ms=) is the state,
// so a view can be bookmarked or linked from a report; the form rewrites it.
'use strict';

(() => {
  const { el, metric, isNum, fmtNum, fmtMs, fmtTime, fmtShare, PALETTE } = Vaka;
  const $ = (id) => document.getElementById(id);
  const DAY_MS = 86400000;
  // TEC (trygghetslarm) targets for the time until an operator accepts the alarm.
  const TARGETS = { accepted_60s: 0.975, accepted_180s: 0.99 };
  const charts = [];

  const pad = (n) => String(n).padStart(2, '0');
  const ymd = (ms) => { const d = new Date(ms); return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`; };
  // Local midnight of a YYYY-MM-DD (plus `days`), so periods follow the operator's calendar.
  function midnight(s, days = 0) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s || '');
    return m ? new Date(+m[1], +m[2] - 1, +m[3] + days).getTime() : NaN;
  }

  function figure(name, value, text, format = fmtNum, extra = null, bad = false) {
    return el('div', { class: 'figure' + (bad ? ' bad' : '') }, metric(name, value, format), el('span', { class: 'flabel', text }), extra);
  }

  function query() {
    const q = new URLSearchParams(window.location.search);
    const num = (k) => (q.get(k) !== null && q.get(k) !== '' && Number.isFinite(Number(q.get(k))) ? Number(q.get(k)) : null);
    const to = num('to_ms') ?? Date.now();
    const from = num('from_ms') ?? to - 30 * DAY_MS;
    return { tenant: q.get('tenant') || '', from, to };
  }

  function params(p) {
    return new URLSearchParams({ tenant: p.tenant, from_ms: String(p.from), to_ms: String(p.to) }).toString();
  }

  function fail(text) {
    const s = $('status');
    s.hidden = false;
    s.className = 'error';
    s.textContent = text;
    s.dataset.error = text;
  }

  function renderFigures(d) {
    const a = d.alarms || {};
    $('f-alarms').replaceChildren(
      figure('stats.alarms.total', a.total, 'total'),
      figure('stats.alarms.real', a.real, 'real'),
      figure('stats.alarms.test', a.test, 'test'));
    const kinds = a.by_kind || {};
    $('f-kinds').replaceChildren(...Object.keys(kinds).map((k) => figure(`stats.alarms.by_kind.${k}`, kinds[k], k.replace(/_/g, ' '))));
    $('f-kinds').classList.add('small-figures');

    for (const [key, box] of [['receipt_ms', 'f-receipt'], ['accept_ms', 'f-accept']]) {
      const v = d[key] || {};
      $(box).replaceChildren(
        figure(`stats.${key}.count`, v.count, 'count'),
        ...['p50', 'p90', 'p99', 'max'].map((p) => figure(`stats.${key}.${p}`, v[p], p, fmtMs)));
    }

    const w = d.within || {};
    $('f-within').replaceChildren(...['receipt_deadline', 'accept_deadline', 'accepted_60s', 'accepted_180s'].map((k) => {
      const target = TARGETS[k];
      const below = target !== undefined && isNum(w[k]) && w[k] < target;
      const label = { receipt_deadline: 'receipt deadline', accept_deadline: 'accept deadline', accepted_60s: 'accepted in 60 s', accepted_180s: 'accepted in 180 s' }[k];
      const extra = target !== undefined
        ? el('span', { class: 'target', 'data-target': target, text: `target ${fmtShare(target)}${below ? ' – below' : ''}` })
        : null;
      return figure(`stats.within.${k}`, w[k], label, fmtShare, extra, below);
    }));

    const sil = d.silence || {};
    $('f-other').replaceChildren(
      figure('stats.escalations', d.escalations, 'escalations'),
      figure('stats.unhandled', d.unhandled, 'unhandled', fmtNum, null, d.unhandled > 0),
      figure('stats.deadline_misses', d.deadline_misses, 'deadline misses', fmtNum, null, d.deadline_misses > 0),
      figure('stats.silence.hours', sil.hours, 'silent device hours', (v) => fmtNum(v, 1)));
  }

  function histLabels(hist) {
    let prev = 0;
    return hist.map((h) => {
      const s = isNum(h.le_s) ? `≤ ${h.le_s} s` : `> ${prev} s`;
      if (isNum(h.le_s)) prev = h.le_s;
      return s;
    });
  }

  function renderHistogramTable(hist, labels) {
    $('histogram').hidden = !hist.length;
    $('histogram').tBodies[0].replaceChildren(...hist.map((h, i) => el('tr', {},
      el('td', { text: labels[i] }),
      el('td', { class: 'num' }, metric(`stats.accept_histogram.${isNum(h.le_s) ? h.le_s : 'inf'}`, h.count)))));
  }

  function renderSilence(d) {
    const periods = (d.silence && d.silence.periods) || [];
    const rows = periods.map((p) => el('tr', { class: p.to_ms == null ? 'ongoing' : '' },
      el('td', { text: p.device }), el('td', { class: 't', text: fmtTime(p.from_ms) }),
      el('td', { class: 't', text: isNum(p.to_ms) ? fmtTime(p.to_ms) : 'ongoing' }),
      el('td', { class: 'num', text: fmtMs((isNum(p.to_ms) ? p.to_ms : Date.now()) - p.from_ms) }),
      el('td', { text: p.cause })));
    $('silence').tBodies[0].replaceChildren(...(rows.length ? rows
      : [el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'No silence in this period' }))]));
  }

  const axisFont = '11px system-ui, sans-serif';

  function renderCharts(d) {
    while (charts.length) charts.pop().destroy();
    if (typeof uPlot === 'undefined') return;
    const hist = Array.isArray(d.accept_histogram) ? d.accept_histogram : [];
    const labels = histLabels(hist);
    renderHistogramTable(hist, labels);

    const hbox = $('chart-hist');
    const dbox = $('chart-days');
    const days = Array.isArray(d.per_day) ? d.per_day : [];
    // An empty chart has meaningless axes: say "no data" instead.
    for (const [box, list] of [[hbox, hist], [dbox, days]]) {
      box.replaceChildren(...(list.length ? [] : [el('p', { class: 'muted', text: 'No data in this period' })]));
    }
    const xs = hist.map((_, i) => i);
    if (hist.length) charts.push(new uPlot({
      width: Math.max(200, hbox.clientWidth), height: 180,
      legend: { show: false }, cursor: { show: false },
      scales: { x: { time: false, range: () => [-0.5, Math.max(0.5, xs.length - 0.5)] }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] } },
      axes: [{ font: axisFont, splits: () => xs, values: (u, splits) => splits.map((i) => labels[i] ?? ''), grid: { show: false } },
        { font: axisFont, size: 40 }],
      series: [{}, { label: 'alarms', stroke: PALETTE[0], fill: PALETTE[0] + '99', paths: uPlot.paths.bars({ size: [0.7, 80] }), points: { show: false } }],
    }, [xs, hist.map((h) => h.count)], hbox));

    const dx = days.map((x) => midnight(x.day) / 1000);
    if (days.length) charts.push(new uPlot({
      width: Math.max(200, dbox.clientWidth), height: 180,
      legend: { show: true, live: false },
      scales: {
        x: { time: true, range: (u, min, max) => [min - 43200, max + 43200] },
        n: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] },
        s: { range: (u, min, max) => [0, Math.max(60, max * 1.15)] },
      },
      axes: [{ font: axisFont, values: (u, v) => v.map((t) => ymd(t * 1000).slice(5)) }, { scale: 'n', font: axisFont, size: 40 },
        { scale: 's', side: 1, font: axisFont, size: 44, grid: { show: false }, values: (u, v) => v.map((x) => x + ' s') }],
      series: [{},
        { label: 'alarms', scale: 'n', stroke: PALETTE[0], fill: PALETTE[0] + '66', paths: uPlot.paths.bars({ size: [0.7, 40] }), points: { show: false } },
        { label: 'accept p90 (s)', scale: 's', stroke: PALETTE[3], width: 2, spanGaps: false, points: { show: true, size: 5 } }],
    }, [dx, days.map((x) => x.alarms), days.map((x) => (isNum(x.accept_p90_ms) ? x.accept_p90_ms / 1000 : null))], dbox));
  }

  window.addEventListener('resize', () => {
    for (const u of charts) u.setSize({ width: Math.max(200, u.root.parentElement.clientWidth), height: 180 });
  });

  async function show(p) {
    const figs = $('figures');
    delete figs.dataset.loaded;
    const s = $('status');
    delete s.dataset.error;
    s.className = 'muted';
    s.textContent = 'Loading…';
    s.hidden = false;
    $('csv').href = '/dashboard/data/statistics.csv?' + params(p);
    let res;
    try {
      res = await Vaka.getJson('/dashboard/data/statistics?' + params(p));
    } catch (e) {
      return fail('Could not load statistics: ' + e.message);
    }
    if (res.status === 403) return fail(`Not allowed: tenant ${p.tenant} is not yours`);
    if (!res.body) return fail(`Could not load statistics (HTTP ${res.status})`);
    const d = res.body;
    figs.hidden = false; // charts need a laid-out width
    renderFigures(d);
    renderSilence(d);
    renderCharts(d);
    s.textContent = `Tenant ${d.tenant} · ${fmtTime(d.from_ms)} – ${fmtTime(d.to_ms)}`;
    figs.dataset.loaded = '1';
  }

  async function init() {
    const p = query();
    const form = $('filters');
    const sel = $('tenant');
    let tenants = [];
    try {
      const r = await Vaka.getJson('/dashboard/data/tenants');
      if (Array.isArray(r.body)) tenants = r.body.map(String);
    } catch (_) { /* shown below */ }
    // A tenant from the address that is not in the list still gets an option: the server decides.
    if (p.tenant && !tenants.includes(p.tenant)) tenants.unshift(p.tenant);
    sel.replaceChildren(...tenants.map((t) => el('option', { value: t, text: t })));
    if (!tenants.length) return fail('No tenants visible to you');
    p.tenant = p.tenant || tenants[0];
    sel.value = p.tenant;
    $('from').value = ymd(p.from);
    $('to').value = ymd(p.to - 1); // to_ms is exclusive; show the last day included

    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const from = midnight($('from').value);
      const to = midnight($('to').value, 1);
      if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) return fail('Choose a valid period (from before to)');
      const np = { tenant: sel.value, from, to };
      history.replaceState(null, '', '?' + params(np));
      show(np);
    });
    sel.addEventListener('change', () => form.requestSubmit());
    show(p);
  }

  document.addEventListener('DOMContentLoaded', init);
})();
