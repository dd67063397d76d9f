// Shared helpers for the Vaka dashboard pages (plain ES2020, no build step).
// Everything that comes from the engine's JSON is put into the DOM through
// createElement/textContent (see `el`), never through innerHTML.
'use strict';

const Vaka = (() => {
  const LOGIN = '/dashboard/login';

  // el('a', {href: x, class: 'y', 'data-k': v}, child, 'text', ...): strings become text nodes.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = String(v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

  // A figure: its formatted text plus the raw number for tests (empty data-value and "–" when null).
  function metric(name, value, format = fmtNum, cls = '') {
    const ok = isNum(value);
    return el('span', {
      class: ('metric ' + cls).trim(),
      'data-metric': name,
      'data-value': ok ? String(value) : '',
      text: ok ? format(value) : '–',
    });
  }

  function fmtNum(v, digits) {
    if (!isNum(v)) return '–';
    if (digits === undefined) digits = Number.isInteger(v) ? 0 : (Math.abs(v) < 10 ? 2 : 1);
    return v.toLocaleString('en-GB', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  // Durations: ms below a second, seconds below a minute, then the two largest units.
  function fmtMs(ms) {
    if (!isNum(ms)) return '–';
    const a = Math.abs(ms);
    if (a < 1000) return fmtNum(ms, Number.isInteger(ms) || a >= 10 ? 0 : 1) + ' ms';
    if (a < 60000) return fmtNum(ms / 1000, 1) + ' s';
    const sign = ms < 0 ? '-' : '';
    const s = Math.round(a / 1000);
    const two = (big, bn, small, sn) => sign + big + ' ' + bn + (small ? ` ${small} ${sn}` : '');
    if (s < 3600) return two(Math.floor(s / 60), 'min', s % 60, 's');
    if (s < 86400) return two(Math.floor(s / 3600), 'h', Math.floor((s % 3600) / 60), 'min');
    return two(Math.floor(s / 86400), 'd', Math.floor((s % 86400) / 3600), 'h');
  }

  // "+1.2 s" relative to a reference time (e.g. when the alarm was received).
  function fmtOffset(ms, ref) {
    if (!isNum(ms) || !isNum(ref)) return '–';
    const d = ms - ref;
    return (d >= 0 ? '+' : '−') + fmtMs(Math.abs(d));
  }

  // Local wall-clock time, ISO-like (sv-SE gives "2026-12-05 22:42:01").
  const dtf = new Intl.DateTimeFormat('sv-SE', {
    year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  const tf = new Intl.DateTimeFormat('sv-SE', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const fmtTime = (ms) => (isNum(ms) ? dtf.format(new Date(ms)) : '–');
  const fmtClock = (ms) => (isNum(ms) ? tf.format(new Date(ms)) : '–');

  const fmtShare = (v) => (isNum(v) ? fmtNum(v * 100, 1) + ' %' : '–');

  function goLogin() {
    window.location.assign(LOGIN);
  }

  // GET JSON. An expired cookie (401, or a redirect to the login page) goes to the login form.
  async function getJson(url) {
    const r = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (r.status === 401 || (r.redirected && new URL(r.url).pathname === LOGIN)) {
      goLogin();
      throw new Error('not logged in');
    }
    let body = null;
    if (r.ok) body = await r.json();
    return { status: r.status, body };
  }

  // Charts share one calm palette; red is kept for problems.
  const PALETTE = ['#2f6db5', '#1b8a7a', '#7a4fb5', '#b5762f', '#5b6470', '#3f9fd1', '#8a8f2f'];

  return { el, metric, isNum, fmtNum, fmtMs, fmtOffset, fmtTime, fmtClock, fmtShare, getJson, goLogin, PALETTE };
})();
