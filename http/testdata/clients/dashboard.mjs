// Drives kernelgate's dashboard in headless Chromium as an operator does and
// prints what it saw as one JSON object on stdout. The Go test starts the
// gateway (its synthetic kernel, a token, a base URL and a reverse proxy in
// front) and checks the result.
//
//   node dashboard.mjs <dashboard url> <api url> <token> <artifact dir> <user data dir>
//
// The dashboard URL is the page as the browser reaches it (through the
// proxy); the API URL is the gateway itself, where this script starts a
// kernel and runs cells over the websocket, as a user's client would.
// Every request the page makes is intercepted: one for another host than
// loopback is refused and reported.
import puppeteer from 'puppeteer-core';
import WebSocket from 'ws';
import { randomUUID } from 'node:crypto';

const [dashboard, api, token, artifacts, userDataDir] = process.argv.slice(2);
const hostile = '<img src=x onerror="window.__pwned=1">&amp;';
const result = { foreign_requests: [], console_errors: [], page_errors: [] };

const loopback = (u) => {
  const url = new URL(u);
  if (url.protocol === 'data:' || url.protocol === 'blob:' || url.protocol === 'about:') return true;
  return ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
};

// A user's client: a kernel started through the API and its websocket
// (legacy JSON framing), with the replies and statuses it gets.
async function startKernel() {
  const res = await fetch(`${api}/api/kernels`, {
    method: 'POST',
    headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'synthetic', env: { KERNEL_USERNAME: hostile } }),
  });
  if (res.status !== 201) throw new Error(`POST /api/kernels: ${res.status} ${await res.text()}`);
  return (await res.json()).id;
}

function connect(id) {
  const ws = new WebSocket(`${api.replace(/^http/, 'ws')}/api/kernels/${id}/channels?session_id=dash-test`,
    { headers: { Authorization: `token ${token}` } });
  const received = [];
  const waiters = [];
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    received.push(m);
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = (pred, ms) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching message within ${ms} ms`)), ms);
    const check = () => {
      const m = received.find(pred);
      if (m) { clearTimeout(timer); resolve(m); } else waiters.push(check);
    };
    check();
  });
  const execute = (code) => {
    const msgId = randomUUID();
    ws.send(JSON.stringify({
      header: { msg_id: msgId, msg_type: 'execute_request', session: 'dash-test', username: 'tester', version: '5.3', date: new Date().toISOString() },
      parent_header: {}, metadata: {}, channel: 'shell', buffers: [],
      content: { code, silent: false, store_history: false, user_expressions: {}, allow_stdin: false, stop_on_error: true },
    }));
    return msgId;
  };
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve({ ws, execute, waitFor }));
    ws.on('error', reject);
  });
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  userDataDir,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
let client;
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.setViewport({ width: 1400, height: 1000 });
  await page.setRequestInterception(true);
  page.on('request', (req) => {
    if (loopback(req.url())) {
      req.continue();
    } else {
      result.foreign_requests.push(req.url());
      req.abort();
    }
  });
  page.on('console', (msg) => { if (msg.type() === 'error') result.console_errors.push(msg.text()); });
  page.on('pageerror', (err) => result.page_errors.push(String(err)));

  // An operator follows a link with the token once; the page takes it out
  // of the address bar.
  await page.goto(`${dashboard}?token=${encodeURIComponent(token)}`, { waitUntil: 'domcontentloaded' });
  result.final_url = page.url();
  await page.waitForSelector('#live.on');
  result.charts = await page.$$eval('.uplot canvas', (c) => c.length);

  // A kernel started through the API shows up without a reload.
  const id = await startKernel();
  const started = Date.now();
  const row = `tr[data-id="${id}"]`;
  await page.waitForSelector(row, { timeout: 2000 });
  result.appeared_ms = Date.now() - started;
  result.kernel_id = id;
  result.user_cell = await page.$eval(`${row} td[data-col="user"]`, (td) => td.textContent);
  const state = (want, timeout) => page.waitForFunction((sel, s) => {
    const td = document.querySelector(`${sel} td[data-col="state"]`);
    return td && td.textContent === s;
  }, { timeout }, row, want);
  await state('idle', 10000);

  // A cell: the row goes busy, then idle again.
  client = await connect(id);
  const cell = client.execute('sleep 3');
  await state('busy', 3000);
  result.saw_busy = true;
  await client.waitFor((m) => m.msg_type === 'execute_reply' && m.parent_header.msg_id === cell, 15000);
  await state('idle', 3000);
  result.saw_idle = true;

  // An interrupt from the page reaches the kernel: the cell ends with
  // KeyboardInterrupt.
  const long = client.execute('sleep 60');
  await state('busy', 3000);
  await page.click(row);
  await page.waitForSelector('#detail:not([hidden])');
  await page.click('#detail [data-action="interrupt"]');
  await page.waitForSelector('#confirm[open]');
  result.confirm_text = await page.$eval('#confirm-text', (p) => p.textContent);
  await page.click('#confirm-ok');
  const reply = await client.waitFor((m) => m.msg_type === 'execute_reply' && m.parent_header.msg_id === long, 10000)
    .catch(async (err) => { throw new Error(`${err.message}; the page said: ${await page.$eval('#toast', (t) => t.textContent)}`); });
  result.interrupt_reply = reply.content.status === 'error' ? reply.content.ename : reply.content.status;
  await state('idle', 5000);
  await page.waitForFunction(() => [...document.querySelectorAll('#detail-events li')]
    .some((li) => li.textContent.includes('interrupt requested')), { timeout: 5000 });
  result.events = await page.$$eval('#detail-events li', (lis) => lis.map((li) => li.textContent));

  // Nothing the page drew ran the hostile user name.
  result.pwned = await page.evaluate(() => window.__pwned === 1 || document.querySelectorAll('main img').length > 0);
  await page.screenshot({ path: `${artifacts}/dashboard.png`, fullPage: true });

  // Draining: confirmed, then the page says so.
  await page.click('#drain');
  await page.waitForSelector('#confirm[open]');
  await page.click('#confirm-ok');
  await page.waitForFunction(() => document.getElementById('accepting').textContent.startsWith('draining'), { timeout: 5000 });
  result.drained = true;
  await page.screenshot({ path: `${artifacts}/dashboard-draining.png` });
  await page.close();
} catch (err) {
  result.error = String(err && err.stack ? err.stack : err);
}
if (client) client.ws.close();
await browser.close();
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(result.error ? 1 : 0);
