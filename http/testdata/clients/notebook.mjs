// Runs a cell in classic Notebook 6 in headless Chromium and prints what
// the output area showed as one JSON object on stdout. The Go end-to-end
// test starts Notebook 6 in gateway mode against kernelgate first.
//
//   node notebook.mjs <notebook url> <token> <screenshot.png> <user data dir>
import puppeteer from 'puppeteer-core';

const [base, token, screenshot, userDataDir] = process.argv.slice(2);
const result = {};
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  userDataDir,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(90000);
  await page.setViewport({ width: 1100, height: 700 });
  page.on('pageerror', (err) => { result.page_errors = (result.page_errors || 0) + 1; result.last_page_error = String(err); });

  // A new notebook on the python3 kernel, made the way the tree page's
  // "New → Python 3" makes one: through the contents API.
  await page.goto(`${base}/tree?token=${token}`, { waitUntil: 'networkidle2' });
  const path = await page.evaluate(async (base, token) => {
    const r = await fetch(`${base}/api/contents`, {
      method: 'POST',
      headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'notebook' }),
    });
    return (await r.json()).path;
  }, base, token);
  result.notebook = path;
  await page.goto(`${base}/notebooks/${path}?kernel_name=python3&token=${token}`, { waitUntil: 'domcontentloaded' });
  // The kernel is up and its websocket connected once the notebook says so.
  await page.waitForFunction(() => window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel &&
    Jupyter.notebook.kernel.is_connected() && Jupyter.notebook.kernel_selector &&
    document.querySelector('#kernel_indicator_icon.kernel_idle_icon'));
  result.kernel = await page.evaluate(() => Jupyter.notebook.kernel.name);

  // Type into the first cell and run it with Shift+Enter, as a user does.
  await page.click('.cell .CodeMirror');
  await page.keyboard.type('print(6*7)');
  await page.keyboard.down('Shift');
  await page.keyboard.press('Enter');
  await page.keyboard.up('Shift');
  await page.waitForFunction(() => {
    const out = document.querySelector('.cell .output_area pre');
    return out && out.textContent.trim().length > 0;
  });
  result.output = await page.evaluate(() => document.querySelector('.cell .output_area pre').textContent);
  await page.screenshot({ path: screenshot });
  result.screenshot = screenshot;
} catch (err) {
  result.error = String(err && err.stack ? err.stack : err);
}
await browser.close();
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(result.error ? 1 : 0);
