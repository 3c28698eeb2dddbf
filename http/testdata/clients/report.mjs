// Opens a bench HTML report in headless Chromium and prints what it drew as
// one JSON object on stdout; the Go test (bench) checks it.
//
//   node report.mjs <report.html> <screenshot.png> <user data dir>
//
// The report must be self-contained: every request other than the file
// itself (and data: URLs) is refused and reported.
import puppeteer from 'puppeteer-core';
import { pathToFileURL } from 'node:url';

const [report, screenshot, userDataDir] = process.argv.slice(2);
const result = { foreign_requests: [], console_errors: [], page_errors: [] };
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  userDataDir,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 900 });
  await page.setRequestInterception(true);
  const self = pathToFileURL(report).href;
  page.on('request', (req) => {
    if (req.url() === self || req.url().startsWith('data:')) {
      req.continue();
    } else {
      result.foreign_requests.push(req.url());
      req.abort();
    }
  });
  page.on('console', (msg) => { if (msg.type() === 'error') result.console_errors.push(msg.text()); });
  page.on('pageerror', (err) => result.page_errors.push(String(err)));
  await page.goto(self, { waitUntil: 'load' });
  Object.assign(result, await page.evaluate(() => {
    // A canvas uPlot drew on has pixels that are not transparent.
    const inked = (canvas) => {
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
      return false;
    };
    const charts = [...document.querySelectorAll('.chart')];
    const drawn = charts.filter((c) => c.dataset.drawn);
    const kinds = {};
    for (const c of drawn) kinds[c.dataset.drawn] = (kinds[c.dataset.drawn] || 0) + 1;
    return {
      charts: charts.length,
      drawn: drawn.length,
      inked: drawn.filter((c) => { const cv = c.querySelector('canvas'); return cv && inked(cv); }).length,
      kinds,
      legends: [...document.querySelectorAll('.u-legend .u-series .u-label')].map((l) => l.textContent),
      comparisons: [...document.querySelectorAll('h2')].map((h) => h.textContent).filter((t) => t.startsWith('Side by side')),
      measures: [...document.querySelectorAll('h3 + table tr td:first-child')].map((td) => td.textContent),
    };
  }));
  await page.screenshot({ path: screenshot, fullPage: true });
} catch (err) {
  result.error = String(err && err.stack ? err.stack : err);
}
await browser.close();
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(result.error ? 1 : 0);
