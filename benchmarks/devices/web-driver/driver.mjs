// Drive headless Chromium (the system browser, via puppeteer-core) through a served web bundle: one
// page load per accelerator (?accelerator=...), every engine x variant on the job's images there,
// then batch-1 timings; a grid of predictions and a screenshot on the first page. Usage: node
// driver.mjs JOB.json RESULT.json. Console messages (each run notes its slice), page errors, failed
// requests and a run's own error all go into the result; Python decides what fails.
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [jobPath, resultPath] = process.argv.slice(2);
const job = JSON.parse(readFileSync(jobPath, 'utf8'));
const puppeteer = (await import(pathToFileURL(job.puppeteer).href)).default;
const profile = mkdtempSync(join(tmpdir(), 'edgeport-chromium-'));
const result = { console: [], page_errors: [], failed_requests: [], runs: [], pages: [], browser: null };
const firstLine = (e) => String(e && e.message || e).split('\n')[0];
const browser = await puppeteer.launch({ executablePath: job.chromium, headless: true, userDataDir: profile,
  args: job.args });

async function open(page, accelerator) {
  await page.goto(job.url + (accelerator === 'wasm' ? '' : `?accelerator=${accelerator}`), { waitUntil: 'load' });
  await page.waitForFunction(() => window.edgeport !== undefined || document.getElementById('status').textContent.startsWith('error'));
  const status = await page.$eval('#status', (e) => e.textContent);
  const info = { accelerator, status, isolated: await page.evaluate(() => self.crossOriginIsolated) };
  if (await page.evaluate(() => window.edgeport === undefined)) throw Object.assign(new Error(`page not ready: ${status}`), { info });
  info.adapter = await page.evaluate(() => window.edgeport.adapter()).catch((e) => ({ error: firstLine(e) }));
  return info;
}

async function run(page, { engine, variant }, accelerator, probe) {
  const r = { engine, variant, accelerator, console_from: result.console.length };
  const t0 = Date.now();
  try {
    // what the engine says it runs on (its verbose log lands in this run's console slice)
    if (probe) r.backend = await page.evaluate((e, v) => window.edgeport.backend(e, v), engine, variant);
    r.console_to = result.console.length;
    r.probs = await page.evaluate((e, v, b) => window.edgeport.runBatch(e, v, b), engine, variant, job.images);
    r.times_ms = await page.evaluate((e, v, b, w, n) => window.edgeport.bench(e, v, b, w, n),
      engine, variant, job.images, job.warmup, job.timed);
  } catch (e) {
    r.error = firstLine(e);
    await page.evaluate(() => window.edgeport.closeAll()).catch(() => {});
  }
  r.console_to = r.console_to ?? result.console.length;
  r.seconds = (Date.now() - t0) / 1000;
  return r;
}

async function screenshot(page, runs) {
  const first = runs[0].probs.slice(0, job.grid_n);
  const grid = first.map((p, i) => {
    const k = p.indexOf(Math.max(...p));
    const truth = job.truth ? job.labels[job.truth[i]] : null;
    return { label: `${job.labels[k]} ${(100 * p[k]).toFixed(0)}%`, bad: truth !== null && truth !== job.labels[k] };
  });
  await page.evaluate((b, rows, caption) => { window.edgeport.showGrid(b, rows);
    document.getElementById('latency').textContent = caption; }, job.images, grid, job.caption);
  await page.evaluate(() => window.edgeport.closeAll());
  await page.screenshot({ path: job.screenshot, fullPage: true });
}

try {
  result.browser = await browser.version();
  const page = await browser.newPage();
  page.on('console', (m) => result.console.push({ type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => result.page_errors.push(String(e && e.message || e)));
  page.on('requestfailed', (r) => result.failed_requests.push(`${r.url()}: ${r.failure()?.errorText}`));
  page.setDefaultTimeout(job.timeout_ms);
  await page.setViewport({ width: 1100, height: 900 });
  for (const [i, { accelerator, runs, probe }] of job.pages.entries()) {
    let info;
    try {
      info = await open(page, accelerator);
    } catch (e) {
      if (i === 0) throw e; // the first page (WebAssembly) must load; a later one fails its own runs
      result.pages.push({ ...(e.info || { accelerator }), error: firstLine(e) });
      for (const r of runs) result.runs.push({ ...r, accelerator, error: `page did not load: ${firstLine(e)}` });
      continue;
    }
    result.pages.push(info);
    const done = [];
    for (const r of runs) done.push(await run(page, r, accelerator, probe));
    result.runs.push(...done);
    if (i === 0 && done[0].probs) await screenshot(page, done);
    await page.evaluate(() => window.edgeport.closeAll());
  }
  if (result.pages[0]) Object.assign(result, { status: result.pages[0].status, isolated: result.pages[0].isolated });
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
  writeFileSync(resultPath, JSON.stringify(result));
}
