// Drive headless Chromium (the system browser, via puppeteer-core) through a served web bundle:
// every engine x variant on the job's images, then batch-1 timings, a grid of predictions and a
// screenshot. Usage: node driver.mjs JOB.json RESULT.json. Console messages, page errors and failed
// requests all go into the result; Python decides what fails.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [jobPath, resultPath] = process.argv.slice(2);
const job = JSON.parse(readFileSync(jobPath, 'utf8'));
const puppeteer = (await import(pathToFileURL(job.puppeteer).href)).default;
const profile = mkdtempSync(join(tmpdir(), 'edgeport-chromium-'));
const result = { console: [], page_errors: [], failed_requests: [], runs: [], browser: null };
const browser = await puppeteer.launch({
  executablePath: job.chromium, headless: true, userDataDir: profile,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  result.browser = await browser.version();
  const page = await browser.newPage();
  page.on('console', (m) => result.console.push({ type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => result.page_errors.push(String(e && e.message || e)));
  page.on('requestfailed', (r) => result.failed_requests.push(`${r.url()}: ${r.failure()?.errorText}`));
  page.setDefaultTimeout(job.timeout_ms);
  await page.setViewport({ width: 1100, height: 900 });
  await page.goto(job.url, { waitUntil: 'load' });
  await page.waitForFunction(() => window.edgeport !== undefined || document.getElementById('status').textContent.startsWith('error'));
  result.status = await page.$eval('#status', (e) => e.textContent);
  result.isolated = await page.evaluate(() => self.crossOriginIsolated);
  if (await page.evaluate(() => window.edgeport === undefined)) throw new Error(`page not ready: ${result.status}`);
  for (const { engine, variant } of job.runs) {
    const t0 = Date.now();
    const probs = await page.evaluate((e, v, b) => window.edgeport.runBatch(e, v, b), engine, variant, job.images);
    const times = await page.evaluate((e, v, b, w, n) => window.edgeport.bench(e, v, b, w, n),
      engine, variant, job.images, job.warmup, job.timed);
    result.runs.push({ engine, variant, probs, times_ms: times, seconds: (Date.now() - t0) / 1000 });
  }
  const first = result.runs[0].probs.slice(0, job.grid_n);
  const grid = first.map((p, i) => {
    const k = p.indexOf(Math.max(...p));
    const truth = job.truth ? job.labels[job.truth[i]] : null;
    return { label: `${job.labels[k]} ${(100 * p[k]).toFixed(0)}%`, bad: truth !== null && truth !== job.labels[k] };
  });
  await page.evaluate((b, rows, caption) => { window.edgeport.showGrid(b, rows);
    document.getElementById('latency').textContent = caption; }, job.images, grid, job.caption);
  await page.evaluate(() => window.edgeport.closeAll());
  await page.screenshot({ path: job.screenshot, fullPage: true });
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
  writeFileSync(resultPath, JSON.stringify(result));
}
