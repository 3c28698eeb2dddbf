// The kernelgate dashboard. One EventSource ("events") brings the whole
// state once ("state"), then at most once a second what changed
// ("update"). Everything shown is built with textContent: kernel ids and
// user names are chosen by clients. Every URL is relative to the page,
// which lives at <base>dashboard/, so the page works under any base URL and
// behind any proxy prefix.
'use strict';

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const maxRows = 500; // rows drawn at once; the filter narrows the rest
  const vitalsKept = 720; // an hour at the server's 5-second samples

  const kernels = new Map(); // id → row, as the server sent it
  let gateway = {};
  let users = [];
  let pools = [];
  let serverNow = Date.now();
  let vitals = null; // name → column, oldest first
  let sort = { key: 'started', dir: 1 }; // the newest kernels first
  let filter = '';
  let selected = null; // kernel id shown in the detail
  let events = null; // events of the selected kernel
  let renderQueued = false;

  // el builds an element: attributes as given (never HTML), then children as
  // nodes or text.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'onclick') e.addEventListener('click', v);
      else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  const rate = (x) => (x ? x.toLocaleString(undefined, { maximumFractionDigits: 1 }) : '0');

  // The kernels table: one entry per column. value is what sorts, text
  // what shows.
  const columns = [
    { key: 'id', label: 'kernel', text: (r) => r.id.slice(0, 8), title: (r) => r.id },
    { key: 'user', label: 'user' },
    { key: 'kernelspec', label: 'kernelspec' },
    { key: 'provisioner', label: 'provisioner', text: (r) => r.provisioner || 'default' },
    { key: 'host', label: 'host / pod', text: (r) => r.host || '—' },
    { key: 'state', label: 'state', cls: (r) => `state ${r.state}` },
    { key: 'connections', label: 'conns', num: true },
    { key: 'idle', label: 'idle', num: true, value: (r) => serverNow - r.last_activity, text: (r) => duration(serverNow - r.last_activity) },
    { key: 'restarts', label: 'restarts', num: true },
    { key: 'rate_in', label: 'in/s', num: true, text: (r) => rate(r.rate_in), title: () => 'client messages to the kernel per second' },
    { key: 'rate_out', label: 'out/s', num: true, text: (r) => rate(r.rate_out), title: () => 'kernel messages to clients per second' },
    { key: 'started', label: 'up for', num: true, value: (r) => (r.started ? serverNow - r.started : -1),
      text: (r) => (r.started ? duration(serverNow - r.started) : 'starting'), title: (r) => (r.started ? new Date(r.started).toISOString() : '') },
  ];
  const valueOf = (c, r) => (c.value ? c.value(r) : r[c.key]);

  function drawHead() {
    const head = document.getElementById('kernel-head');
    head.replaceChildren(...columns.map((c) => {
      const mark = sort.key === c.key ? (sort.dir > 0 ? ' ▲' : ' ▼') : '';
      const sorted = sort.key === c.key ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none';
      return el('th', { class: c.num ? 'num' : '', 'aria-sort': sorted },
        el('button', { type: 'button', 'data-sort': c.key, onclick: () => sortBy(c.key) }, c.label + mark));
    }));
  }

  function sortBy(key) {
    sort = { key, dir: sort.key === key ? -sort.dir : (columns.find((c) => c.key === key).num ? -1 : 1) };
    drawHead();
    queueRender();
  }

  function matches(r) {
    if (!filter) return true;
    return [r.id, r.user, r.kernelspec, r.provisioner, r.host, r.state].some((v) => String(v).toLowerCase().includes(filter));
  }

  function drawKernels() {
    const col = columns.find((c) => c.key === sort.key);
    const rows = [...kernels.values()].filter(matches);
    rows.sort((a, b) => {
      const x = valueOf(col, a);
      const y = valueOf(col, b);
      return (x < y ? -1 : x > y ? 1 : 0) * sort.dir || (a.id < b.id ? -1 : 1);
    });
    const shown = rows.slice(0, maxRows);
    document.querySelector('#kernels tbody').replaceChildren(...shown.map((r) =>
      el('tr', { 'data-id': r.id, class: r.id === selected ? 'selected' : '', tabindex: '0', onclick: () => select(r.id) },
        ...columns.map((c) => el('td', {
          'data-col': c.key,
          class: [c.num ? 'num' : '', c.cls ? c.cls(r) : ''].join(' ').trim(),
          title: c.title ? c.title(r) : undefined,
        }, c.text ? c.text(r) : String(r[c.key]))))));
    const note = document.getElementById('truncated');
    note.hidden = rows.length <= maxRows;
    note.textContent = `Showing ${maxRows} of ${rows.length} kernels; narrow the filter to see the others.`;
    document.getElementById('kernel-count').textContent =
      filter ? `(${rows.length} of ${kernels.size})` : `(${kernels.size})`;
  }

  function drawTable(id, rows, cells, none) {
    const body = document.querySelector(`#${id} tbody`);
    if (rows.length === 0) {
      const width = document.querySelectorAll(`#${id} thead th`).length;
      body.replaceChildren(el('tr', {}, el('td', { class: 'note', colspan: width }, none)));
      return;
    }
    body.replaceChildren(...rows.map((r) =>
      el('tr', {}, ...cells(r).map(([v, num]) => el('td', { class: num ? 'num' : '' }, v)))));
  }

  function drawGateway() {
    const acc = document.getElementById('accepting');
    acc.textContent = gateway.draining ? 'draining: no new kernels' : gateway.accepting ? 'accepting kernels' : 'stopping';
    acc.className = `pill ${gateway.accepting ? 'on' : 'warn'}`;
    const drain = document.getElementById('drain');
    drain.disabled = false;
    drain.textContent = gateway.draining ? 'Resume: take new kernels' : 'Drain this replica';
    const limit = gateway.max_kernels > 0 ? ` of ${gateway.max_kernels}` : '';
    document.getElementById('summary').textContent =
      `${gateway.kernels}${limit} kernels · ${gateway.connections} websockets · up ${duration(serverNow - gateway.started)}`;
    drawTable('users', users, (u) => [[u.user], [u.kernels, true], [u.limit < 0 ? '—' : u.limit, true]], 'No kernels.');
    drawTable('pools', pools, (p) => [[p.kernelspec], [p.size, true], [p.warm, true], [p.booting, true]], 'No warm pools configured.');
    const reps = document.getElementById('replicas');
    if (!gateway.replicas) {
      reps.replaceChildren(el('p', { class: 'note' }, 'A single replica (not in a replicated group).'));
    } else {
      reps.replaceChildren(el('table', {},
        el('thead', {}, el('tr', {}, el('th', {}, 'replica'), el('th', {}, 'ready'), el('th', { class: 'num' }, 'kernels'))),
        el('tbody', {}, ...gateway.replicas.map((r) => el('tr', { class: r.self ? 'selected' : '' },
          el('td', {}, r.name + (r.self ? ' (this one)' : '')), el('td', {}, r.ready ? 'yes' : 'no'), el('td', { class: 'num' }, r.kernels))))));
    }
  }

  function drawDetail() {
    const box = document.getElementById('detail');
    const r = selected && kernels.get(selected);
    box.hidden = !r;
    if (!r) return;
    document.getElementById('detail-id').textContent = r.id;
    const fields = [
      ['user', r.user], ['kernelspec', r.kernelspec], ['provisioner', r.provisioner || 'default'], ['host / pod', r.host || '—'],
      ['state', r.state], ['connections', r.connections], ['idle', duration(serverNow - r.last_activity)],
      ['restarts', r.restarts], ['messages in / out per second', `${rate(r.rate_in)} / ${rate(r.rate_out)}`],
      ['started', r.started ? new Date(r.started).toISOString() : 'starting'],
    ];
    document.getElementById('detail-fields').replaceChildren(...fields.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    document.getElementById('detail-events').replaceChildren(...(events || []).slice().reverse().map((e) =>
      el('li', {}, el('time', { datetime: e.at }, new Date(e.at).toLocaleTimeString()), ' ', e.what)));
  }

  function render() {
    renderQueued = false;
    drawGateway();
    drawKernels();
    drawDetail();
  }

  // Drawing waits for the next frame: bursts of events draw once, and a
  // hidden tab draws nothing.
  function queueRender() {
    if (!renderQueued) {
      renderQueued = true;
      requestAnimationFrame(render);
    }
  }

  async function loadEvents(id) {
    try {
      const res = await fetch(`kernels/${encodeURIComponent(id)}`, { credentials: 'same-origin' });
      if (res.ok && selected === id) {
        events = (await res.json()).events;
        queueRender();
      }
    } catch (err) {
      toast(`Could not load the kernel's events: ${err}`, true);
    }
  }

  function select(id) {
    selected = id;
    events = null;
    loadEvents(id);
    queueRender();
  }

  // Charts: uPlot, one per vital, drawn from the columns the server keeps.
  const palette = ['#2f7d46', '#d4731f', '#3a6fc4', '#9b4ac4', '#c33', '#777', '#bbb'];
  const charts = [
    { id: 'chart-kernels', series: [['kernels_idle', 'idle'], ['kernels_busy', 'busy'], ['kernels_starting', 'starting'],
      ['kernels_restarting', 'restarting'], ['kernels_dead', 'dead'], ['kernels_pooled', 'warm in pools'], ['kernels_pool_booting', 'booting for pools']] },
    { id: 'chart-messages', series: [['rate_out', 'to clients'], ['rate_in', 'to kernels']] },
    { id: 'chart-start', series: [['start_p50', 'p50'], ['start_p95', 'p95']] },
    { id: 'chart-rss', series: [['rss_mib', 'RSS MiB']] },
    { id: 'chart-goroutines', series: [['goroutines', 'goroutines']] },
    { id: 'chart-fds', series: [['fds', 'open fds'], ['connections', 'websockets']] },
  ];

  function chartData(c) {
    return [vitals.t, ...c.series.map(([key]) => vitals[key])];
  }

  function makeCharts() {
    for (const c of charts) {
      const box = document.getElementById(c.id);
      const opts = {
        width: Math.max(box.clientWidth, 240),
        height: 150,
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
        scales: { y: { range: (u, min, max) => [0, Math.max(max, 1)] } },
        axes: [{}, { size: 48 }],
        series: [{}, ...c.series.map(([, label], i) => ({ label, stroke: palette[i], width: 1.5 }))],
      };
      if (c.plot) c.plot.destroy();
      c.plot = new uPlot(opts, chartData(c), box);
    }
  }

  function drawCharts() {
    for (const c of charts) c.plot.setData(chartData(c));
  }

  function addVital(point) {
    for (const [key, col] of Object.entries(vitals)) {
      col.push(point[key] ?? null);
      if (col.length > vitalsKept) col.shift();
    }
    drawCharts();
  }

  window.addEventListener('resize', () => {
    for (const c of charts) {
      if (c.plot) c.plot.setSize({ width: Math.max(document.getElementById(c.id).clientWidth, 240), height: 150 });
    }
  });

  // The stream.
  function setLive(on, text) {
    const live = document.getElementById('live');
    live.textContent = text;
    live.className = `pill ${on ? 'on' : 'off'}`;
  }

  function takeTables(m) {
    serverNow = m.now;
    gateway = m.gateway;
    users = m.users;
    pools = m.pools;
  }

  function onState(m) {
    takeTables(m);
    kernels.clear();
    for (const r of m.kernels) kernels.set(r.id, r);
    vitals = m.vitals;
    makeCharts();
    if (selected) loadEvents(selected);
    setLive(true, 'live');
    queueRender();
  }

  function onUpdate(m) {
    takeTables(m);
    for (const r of m.kernels) {
      const old = kernels.get(r.id);
      kernels.set(r.id, r);
      // The history grows with what the row shows: restarts and states.
      if (r.id === selected && old && (old.state !== r.state || old.restarts !== r.restarts)) loadEvents(r.id);
    }
    for (const id of m.removed) kernels.delete(id);
    if (m.vital) addVital(m.vital);
    queueRender();
  }

  let source = null;
  function connect() {
    source = new EventSource('events');
    source.addEventListener('state', (e) => onState(JSON.parse(e.data)));
    source.addEventListener('update', (e) => onUpdate(JSON.parse(e.data)));
    source.addEventListener('error', () => {
      setLive(false, 'reconnecting…');
      // The browser retries by itself unless the server refused the stream
      // (too many open, or the session ended): then so do we, slowly.
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
    });
  }
  // A page that goes ends its stream at once rather than when the server
  // next writes.
  window.addEventListener('pagehide', () => source && source.close());

  // Actions: POSTs with the CSRF token, each after a confirmation.
  function toast(text, bad) {
    const t = document.getElementById('toast');
    t.textContent = text;
    t.className = bad ? 'bad' : '';
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
  }

  function confirmThen(text, ok, action) {
    const dialog = document.getElementById('confirm');
    document.getElementById('confirm-text').textContent = text;
    document.getElementById('confirm-ok').textContent = ok;
    dialog.returnValue = '';
    dialog.addEventListener('close', () => { if (dialog.returnValue === 'ok') action(); }, { once: true });
    dialog.showModal();
  }

  async function post(url, done) {
    try {
      const res = await fetch(url, { method: 'POST', credentials: 'same-origin', headers: { 'X-Kernelgate-CSRF': csrf } });
      if (res.ok) {
        toast(done);
        return;
      }
      let msg = `${res.status} ${res.statusText}`;
      try { msg = (await res.json()).message || msg; } catch (_) { /* not JSON */ }
      toast(`Failed: ${msg}`, true);
    } catch (err) {
      toast(`Failed: ${err}`, true);
    }
  }

  const actions = {
    interrupt: { ask: 'Interrupt kernel %s? Its running cell stops.', ok: 'Interrupt', done: 'Interrupt sent.' },
    restart: { ask: 'Restart kernel %s? Its variables are lost.', ok: 'Restart', done: 'Kernel restarted.' },
    shutdown: { ask: 'Shut kernel %s down? Its user loses it and its variables.', ok: 'Shut down', done: 'Kernel shut down.' },
  };
  for (const b of document.querySelectorAll('#detail [data-action]')) {
    b.addEventListener('click', () => {
      const id = selected;
      const a = actions[b.dataset.action];
      const r = kernels.get(id);
      confirmThen(a.ask.replace('%s', `${id} (${r ? r.user : '?'})`), a.ok,
        () => post(`kernels/${encodeURIComponent(id)}/${b.dataset.action}`, a.done));
    });
  }
  document.getElementById('detail-close').addEventListener('click', () => { selected = null; queueRender(); });
  document.getElementById('drain').addEventListener('click', () => {
    if (gateway.draining) {
      post('resume', 'This replica takes new kernels again.');
      return;
    }
    confirmThen('Drain this replica? It stops taking new kernels and reports itself not ready, so that its load balancer '
      + 'sends new sessions elsewhere; running kernels stay.', 'Drain', () => post('drain', 'Draining.'));
  });
  document.getElementById('filter').addEventListener('input', (e) => {
    filter = e.target.value.trim().toLowerCase();
    queueRender();
  });

  drawHead();
  connect();
})();
