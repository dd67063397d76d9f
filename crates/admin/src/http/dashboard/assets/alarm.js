// One alarm, for incident follow-up: header, stage timeline, audit trail, deadlines,
// the device's events and positions. The id is the last path segment of /dashboard/alarms/<id>.
'use strict';

(() => {
  const { el, isNum, fmtMs, fmtOffset, fmtTime, fmtNum } = Vaka;
  const $ = (id) => document.getElementById(id);
  const STAGES = ['received', 'durable', 'offered', 'receipted', 'accepted', 'attended', 'closed'];

  function card(title, wide, ...kids) {
    return el('section', { class: 'card' + (wide ? ' wide' : '') }, el('h2', { text: title }), ...kids);
  }

  function table(id, headers, rows, empty) {
    return el('div', { class: 'scroll' }, el('table', { id },
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', { class: h.endsWith(' ') ? 'num' : '', text: h.trim() })))),
      el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: headers.length, class: 'muted', text: empty })))));
  }

  function header(a) {
    const facts = [
      ['Tenant', a.tenant], ['Device', a.device], ['Priority', a.priority],
      ['Received', fmtTime(a.stages && a.stages.received_ms)],
      ['Centre', a.centre], ['Operator', a.operator], ['Outcome', a.outcome], ['Repeats', a.repeats],
    ];
    if (a.deadline) {
      facts.push(['Deadline', `${a.deadline.kind} by ${fmtTime(a.deadline.at_ms)} (${fmtOffset(a.deadline.at_ms, a.stages && a.stages.received_ms)})`]);
    }
    const stateBad = a.state === 'unhandled';
    return el('section', { class: 'card wide alarm-head' },
      el('h1', {}, `Alarm ${a.id} `,
        el('span', { class: 'badge' + (stateBad ? ' bad' : ''), id: 'state', text: a.state }),
        a.test ? el('span', { class: 'badge test', id: 'test-badge', text: 'TEST' }) : null),
      el('p', { class: 'what' }, el('strong', { text: a.kind }), ` · code ${a.code}`, a.text ? ` · “${a.text}”` : ''),
      el('dl', { class: 'facts' }, facts.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v === null || v === undefined || v === '' ? '–' : v })])),
      el('p', { class: 'print-only muted small', text: `Printed ${fmtTime(Date.now())} from ${window.location.href}` }),
      el('div', { class: 'actions' }, el('button', { type: 'button', id: 'print', text: 'Print' })));
  }

  // Stage times relative to when the engine received the device's message.
  function stages(a) {
    const st = a.stages || {};
    const recv = st.received_ms;
    return card('Stages (time since received)', true, el('ol', { class: 'stages', id: 'stages' }, STAGES.map((s) => {
      const v = st[`${s}_ms`];
      const has = isNum(v);
      return el('li', { class: has ? '' : 'missing', 'data-stage': s, 'data-value': has ? String(v) : '' },
        el('span', { class: 'sname', text: s }),
        el('span', { class: 'soff', text: has ? (s === 'received' ? '0 s' : fmtOffset(v, recv)) : '–' }),
        el('span', { class: 'sat', text: has ? fmtTime(v) : 'not reached' }));
    })));
  }

  function audit(list, recv) {
    const rows = list.map((r) => el('tr', {
      class: 'audit-row', 'data-at-ms': r.at_ms, 'data-actor': r.actor ?? '', 'data-action': r.action ?? '', 'data-reason': r.reason ?? '',
    },
    el('td', { class: 't', text: fmtTime(r.at_ms) }), el('td', { class: 'num', text: fmtOffset(r.at_ms, recv) }),
    el('td', { text: r.actor }), el('td', { text: r.action }), el('td', { text: r.reason || '' })));
    return card('Audit trail', true, table('timeline', ['Time', 'Since received ', 'Actor', 'Action', 'Reason'], rows, 'No audit records'));
  }

  function deadlines(list) {
    const rows = list.map((d) => {
      const status = d.missed ? 'missed' : isNum(d.met_ms) ? 'met' : 'open';
      const margin = isNum(d.met_ms) && isNum(d.due_ms) ? fmtMs(Math.abs(d.due_ms - d.met_ms)) + (d.met_ms <= d.due_ms ? ' early' : ' late') : '';
      return el('tr', { class: 'deadline' + (d.missed ? ' missed' : ''), 'data-kind': d.kind, 'data-missed': d.missed ? '1' : '0' },
        el('td', { text: d.kind }), el('td', { class: 't', text: fmtTime(d.due_ms) }), el('td', { class: 't', text: isNum(d.met_ms) ? fmtTime(d.met_ms) : '–' }),
        el('td', {}, el('span', { class: d.missed ? 'bad-text' : '', text: status }), margin ? ` (${margin})` : ''));
    });
    return card('Deadlines', true, table('deadlines', ['Kind', 'Due', 'Met', 'Status'], rows, 'No deadlines'));
  }

  function events(list, recv) {
    const rows = list.map((e) => el('tr', { 'data-event-id': e.id },
      el('td', { class: 't', text: fmtTime(e.received_ms) }), el('td', { class: 'num', text: fmtOffset(e.received_ms, recv) }),
      el('td', { text: e.kind }), el('td', { text: e.summary }), el('td', { class: 'muted', text: e.id })));
    return card('Device events around the alarm', true, table('events', ['Received', 'Offset ', 'Kind', 'Summary', 'Event'], rows, 'No events'));
  }

  // Plain links to OpenStreetMap: no map tiles are embedded (no third-party requests).
  function positions(list, recv) {
    const rows = list.map((p) => {
      const ok = isNum(p.lat) && isNum(p.lon);
      const href = ok ? `https://www.openstreetmap.org/?mlat=${p.lat}&mlon=${p.lon}#map=17/${p.lat}/${p.lon}` : null;
      return el('tr', { class: 'position' },
        el('td', { class: 't', text: fmtTime(p.time_ms) }), el('td', { class: 'num', text: fmtOffset(p.time_ms, recv) }),
        el('td', { class: 'num', text: ok ? `${fmtNum(p.lat, 5)}, ${fmtNum(p.lon, 5)}` : '–' }),
        el('td', { class: 'num', text: isNum(p.accuracy_m) ? `±${fmtNum(p.accuracy_m, 0)} m` : '–' }),
        el('td', {}, href ? el('a', { href, class: 'osm', rel: 'noopener noreferrer', target: '_blank', text: 'map' }) : '–'));
    });
    return card('Positions', true, table('positions', ['Time', 'Offset ', 'Lat, lon ', 'Accuracy ', 'Map'], rows, 'No positions'));
  }

  function fail(text) {
    const s = $('status');
    s.textContent = text;
    s.className = 'error';
    s.dataset.error = text;
  }

  async function load() {
    const parts = window.location.pathname.split('/').filter(Boolean);
    const id = decodeURIComponent(parts[parts.length - 1] || '');
    if (!id || id === 'alarms') { fail('No alarm id in the address'); return; }
    let res;
    try {
      res = await Vaka.getJson('/dashboard/data/alarms/' + encodeURIComponent(id));
    } catch (e) {
      fail('Could not load the alarm: ' + e.message);
      return;
    }
    if (res.status === 404) return fail(`No such alarm: ${id}`);
    if (res.status === 403) return fail(`Not yours: alarm ${id} belongs to a tenant you cannot see`);
    if (!res.body || !res.body.alarm) return fail(`Could not load the alarm (HTTP ${res.status})`);

    const { alarm: a, audit: au = [], deadlines: dl = [], events: ev = [], positions: pos = [] } = res.body;
    const recv = a.stages ? a.stages.received_ms : null;
    document.title = `Alarm ${a.id} – ${a.kind} ${a.code}${a.test ? ' (TEST)' : ''} – Vaka`;
    const box = $('alarm');
    box.replaceChildren(header(a), stages(a), audit(au, recv), deadlines(dl), events(ev, recv), positions(pos, recv));
    $('print').addEventListener('click', () => window.print());
    $('status').hidden = true;
    box.hidden = false;
    document.body.dataset.loaded = '1';
  }

  document.addEventListener('DOMContentLoaded', load);
})();
