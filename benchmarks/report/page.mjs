// Open the report page (a file: URL) in headless Chromium via puppeteer-core, record every console
// message, page error and request, and take a full-page screenshot. Usage: node page.mjs JOB.json RESULT.json.
// Python (page_check.py) decides what fails.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [jobPath, resultPath] = process.argv.slice(2);
const job = JSON.parse(readFileSync(jobPath, 'utf8'));
const puppeteer = (await import(pathToFileURL(job.puppeteer).href)).default;
const profile = mkdtempSync(join(tmpdir(), 'edgeport-report-'));
const result = { console: [], page_errors: [], requests: [], failed_requests: [], browser: null };
const browser = await puppeteer.launch({
  executablePath: job.chromium, headless: true, userDataDir: profile,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  result.browser = await browser.version();
  const page = await browser.newPage();
  page.on('console', (m) => result.console.push({ type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => result.page_errors.push(String(e && e.message || e)));
  page.on('request', (r) => result.requests.push(r.url()));
  page.on('requestfailed', (r) => result.failed_requests.push(`${r.url()}: ${r.failure()?.errorText}`));
  page.setDefaultTimeout(job.timeout_ms);
  await page.setViewport({ width: 1280, height: 900 });
  await page.goto(job.url, { waitUntil: 'load' });
  result.title = await page.title();
  result.failing_rows = await page.$$eval('tr.fail', (rows) => rows.length);
  await page.screenshot({ path: job.screenshot, fullPage: true });
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
  writeFileSync(resultPath, JSON.stringify(result));
}
