// The browser client and the demo page in a real Chromium (Debian's,
// driven by playwright-core) against the real daemons: a job submitted
// from the page, failures, the fallbacks from WebSocket to SSE to
// long-polling, a pusher restart mid-job, ten jobs on one WebSocket, a
// token of one job refused for another, and the refusal of a page from
// another origin. Job tokens are on, as in production.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { JobwireEnv, freePort, sleep, waitFor } from './env.mjs';

const CHROMIUM = process.env.JW_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = process.env.JW_ARTIFACTS || '.';
const NGINX = process.env.JW_NGINX || '/usr/sbin/nginx';

let chromium = null;
let skip = false;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  skip = 'playwright-core is not installed (npm ci)';
}
if (!skip && !fs.existsSync(CHROMIUM))
  skip = `no browser at ${CHROMIUM} (scripts/deps test installs chromium)`;

let browser;
let env;

before(async () => {
  if (skip)
    return;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright gives each launch a fresh temporary --user-data-dir.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update',
           '--disable-sync'],
  });
  env = await new JobwireEnv({ workers: 2 }).start();
});

after(async () => {
  if (browser)
    await browser.close();
  if (env)
    await env.stop();
});

/* A test that needs the browser (top-level tests: meson reads their TAP). */
function btest(name, opts, fn) {
  if (typeof opts === 'function')
    return test(name, { skip }, opts);
  return test(name, { ...opts, skip: skip || opts.skip }, fn);
}

/* A fresh page (own context: no shared cache or connections) on the demo. */
async function openDemo({ blockWs = false, block = [], query = '' } = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  page.sockets = [];
  page.on('websocket', (ws) => page.sockets.push(ws.url()));
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(String(e)));
  if (blockWs) {
    // The handshake fails as behind a proxy that refuses upgrades: the
    // page's WebSocket closes without ever opening.
    await page.routeWebSocket(/\/ws$/, (ws) => ws.close({ code: 1006 }));
  }
  if (block.length > 0) {
    // Blocked the way a proxy or policy would: the requests fail.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.setBlockedURLs', { urls: block });
  }
  await page.goto(`${env.pusher}/?api=${encodeURIComponent(env.api)}${query}`);
  await page.waitForFunction(() => window.demo !== undefined);
  return page;
}

async function submitForm(page, { type = 'sleep', seconds = 1, steps = 5,
                                  failAt = '', path: p = 'hello.txt', count = 1 }) {
  await page.selectOption('#type', type);
  if (type === 'sleep') {
    await page.fill('input[name=seconds]', String(seconds));
    await page.fill('input[name=steps]', String(steps));
    await page.fill('input[name=fail_at]', String(failAt));
  } else {
    await page.fill('input[name=path]', p);
  }
  await page.fill('input[name=count]', String(count));
  const before = await page.locator('#jobs tbody tr').count();
  await page.click('button[type=submit]');
  await page.waitForFunction((n) => document.querySelectorAll('#jobs tbody tr').length >= n,
                             before + count, { timeout: 15000 });
  const ids = await page.$$eval('#jobs tbody tr', (rows) => rows.map((r) => r.dataset.job));
  return ids.slice(0, count);
}

/* What the page shows for a job, from its row and its record. */
function rowOf(page, id) {
  return page.evaluate((jobId) => {
    const tr = document.querySelector(`tr[data-job="${jobId}"]`);
    const job = window.demo.jobs.get(jobId);
    return {
      state: tr.dataset.state,
      stateText: tr.querySelector('.state').textContent,
      percent: Number(tr.querySelector('.bar').dataset.percent),
      result: tr.querySelector('.result').textContent,
      log: [...tr.querySelectorAll('ol li')].map((li) => li.textContent),
      via: tr.querySelector('.via').textContent,
      seqs: job.seqs,
    };
  }, id);
}

async function waitState(page, id, state, timeout = 30000) {
  await page.waitForSelector(`tr[data-job="${id}"][data-state="${state}"]`,
                             { timeout });
  return rowOf(page, id);
}

/* Every step of a sleep job of n steps shown once, seqs 1… with no
 * repeat and in order. */
function assertEveryStepOnce(row, steps, terminal = 'succeeded') {
  const expected = ['queued', 'running'];
  const log = row.log.map((t) => (t === 'started' ? 'running' : t));
  assert.deepEqual(log.slice(0, 2), expected, `log: ${row.log}`);
  for (let i = 1; i <= steps; i++)
    assert.equal(log.filter((t) => t === `step ${i} of ${steps}`).length, 1,
                 `step ${i} once in ${row.log}`);
  assert.equal(log.at(-1), terminal);
  assert.deepEqual(row.seqs, row.seqs.map((_, i) => i + 1), `seqs ${row.seqs}`);
}

btest('the demo page runs a job to 100% and shows succeeded', async () => {
  const page = await openDemo();
  const [id] = await submitForm(page, { seconds: 1, steps: 5 });
  const row = await waitState(page, id, 'succeeded');
  assert.equal(row.percent, 100);
  assert.equal(row.stateText, 'succeeded');
  assert.match(row.result, /"steps":5/);
  assert.equal(row.via, 'websocket');
  assertEveryStepOnce(row, 5);
  assert.equal(await page.textContent('#transport'), 'websocket');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

btest('a failing job shows its error', async () => {
  const page = await openDemo();
  const [id] = await submitForm(page, { seconds: 0.4, steps: 4, failAt: 2 });
  const row = await waitState(page, id, 'failed');
  assert.match(row.result, /^step_failed: /);
  assert.ok(row.percent < 100);
  // A checksum of a file outside the root fails too, with its reason.
  const [bad] = await submitForm(page, { type: 'checksum', path: '../../etc/passwd' });
  const badRow = await waitState(page, bad, 'failed');
  assert.match(badRow.result, /\w+: \S/);
  await page.context().close();
});

btest('the cancel button cancels a running job', async () => {
  const page = await openDemo();
  const [id] = await submitForm(page, { seconds: 30, steps: 30 });
  await waitState(page, id, 'running');
  // A DELETE from the page's origin: CORS with a preflight.
  await page.click(`tr[data-job="${id}"] .cancel`);
  const row = await waitState(page, id, 'cancelled');
  assert.match(row.result, /^\w+: \S/);
  assert.ok(await page.isDisabled(`tr[data-job="${id}"] .cancel`));
  assert.equal(await page.textContent('#form-error'), '');
  await page.context().close();
});

btest('with WebSocket blocked the client uses SSE, with both blocked long-polling', async () => {
  const cases = [
    { block: [], via: 'sse' },
    { block: ['*/events?*'], via: 'poll' },
  ];
  for (const c of cases) {
    const page = await openDemo({ blockWs: true, block: c.block });
    const [id] = await submitForm(page, { seconds: 1.5, steps: 6 });
    const row = await waitState(page, id, 'succeeded');
    assert.equal(row.via, c.via, `blocked ${c.block}`);
    assert.equal(await page.getAttribute('#transport', 'data-transport'), c.via);
    assertEveryStepOnce(row, 6);
    await page.context().close();
  }
});

btest('with WebSocket blocked, ten jobs share one SSE stream', async () => {
  const page = await openDemo({ blockWs: true });
  const streams = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/events')
      streams.push(r.url());
  });
  const ids = await submitForm(page, { seconds: 2, steps: 8, count: 10 });
  for (const id of ids) {
    const row = await waitState(page, id, 'succeeded', 60000);
    assert.equal(row.via, 'sse');
    assertEveryStepOnce(row, 8);
  }
  assert.equal(streams.length, 1, `streams: ${streams.join(' ')}`);
  assert.equal(new URL(streams[0]).searchParams.get('jobs').split(',').length, 10);
  await page.context().close();
});

for (const via of ['websocket', 'sse']) {
  btest(`the pusher restarted mid-job: the page resumes over ${via} and shows each step once`,
        async () => {
    const page = await openDemo({ blockWs: via === 'sse' });
    const [id] = await submitForm(page, { seconds: 6, steps: 12 });
    await page.waitForFunction((jobId) => window.demo.jobs.get(jobId).messages
                                  .includes('step 2 of 12'), id, { timeout: 20000 });
    await env.kill('pusher');
    await page.waitForSelector('#transport[data-transport="reconnecting"]',
                               { timeout: 20000 });
    const during = await rowOf(page, id);
    assert.ok(during.log.length < 15, 'the job was still running at the kill');
    await env.restart('pusher');
    const row = await waitState(page, id, 'succeeded', 60000);
    assertEveryStepOnce(row, 12);
    assert.equal(row.via, via);
    if (via === 'websocket')
      assert.ok(page.sockets.length >= 2, `reconnected: ${page.sockets}`);
    await page.context().close();
  });
}

btest('ten jobs are watched at once on one WebSocket', async () => {
  const page = await openDemo();
  const ids = await submitForm(page, { seconds: 2, steps: 8, count: 10 });
  assert.equal(ids.length, 10);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.waitForFunction(() => [...window.demo.jobs.values()]
                                .some((j) => j.messages.length >= 5));
  await page.screenshot({ path: path.join(ARTIFACTS, 'demo-running.png') });
  for (const id of ids) {
    const row = await waitState(page, id, 'succeeded', 60000);
    assertEveryStepOnce(row, 8);
  }
  assert.equal(page.sockets.length, 1, `websockets: ${page.sockets}`);
  // Saved for people to look at: the demo page with its ten rows.
  await page.screenshot({ path: path.join(ARTIFACTS, 'demo.png') });
  await page.context().close();
});

/* Watches job with token in the page over one transport; collects what
 * reaches the handlers and the pusher's answers to the page. */
async function watchWith(transport, job, token) {
  const page = await openDemo();
  page.answers = [];
  page.on('response', (r) => {
    if (/\/(events|poll)\?/.test(r.url()))
      page.answers.push(r.status());
  });
  await page.evaluate(({ transport, job, token, pusher }) => {
    window.seen = { events: [], errors: [] };
    window.jobwire.watch(job, {
      onEvent: (ev) => window.seen.events.push(ev.type),
      onError: (err) => window.seen.errors.push(err.code),
    }, { pusher, transports: [transport], token });
  }, { transport, job, token, pusher: env.pusher });
  return page;
}

btest('a token of one job shows nothing of another, over every transport', async () => {
  const a = await env.submit('sleep', { seconds: 0.5, steps: 2 });
  const b = await env.submit('sleep', { seconds: 0.5, steps: 2 });
  assert.ok(a.token && b.token, 'tokens are on');
  for (const transport of ['websocket', 'sse', 'poll']) {
    const page = await watchWith(transport, b.id, a.token);
    if (transport === 'websocket')
      await page.waitForFunction(() => window.seen.errors.length > 0);
    else
      await waitFor(`the pusher to refuse the ${transport} request`,
                    () => page.answers.includes(403));
    // B runs to its end meanwhile; not one of its events reaches the page.
    const right = await watchWith(transport, b.id, b.token);
    await right.waitForFunction(() => window.seen.events.includes('succeeded'),
                                null, { timeout: 30000 });
    const seen = await page.evaluate(() => window.seen);
    assert.deepEqual(seen.events, [], `${transport}: ${JSON.stringify(seen)}`);
    if (transport === 'websocket')
      assert.deepEqual(seen.errors, ['token_invalid']);
    assert.ok(!page.answers.some((s) => s === 200), `${transport}: ${page.answers}`);
    await page.context().close();
    await right.context().close();
  }
});

btest('a page from an origin not on the list is refused', async () => {
  const port = await freePort();
  const html = `<!doctype html><title>other</title><script>
    window.outcome = (async () => {
      const r = {};
      try { await fetch('${env.api}/healthz'); r.fetch = 'read'; }
      catch (e) { r.fetch = 'refused'; }
      try {
        await fetch('${env.api}/jobs', { method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ type: 'sleep', params: { seconds: 0, steps: 1 } }) });
        r.post = 'read';
      } catch (e) { r.post = 'refused'; }
      try { await fetch('${env.pusher}/healthz'); r.pusher = 'read'; }
      catch (e) { r.pusher = 'refused'; }
      r.ws = await new Promise((resolve) => {
        const ws = new WebSocket('${env.pusher.replace('http', 'ws')}/ws');
        ws.onopen = () => resolve('open');
        ws.onclose = () => resolve('refused');
      });
      return r;
    })();
  </script>`;
  const other = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(html);
  });
  await new Promise((resolve) => other.listen(port, '127.0.0.1', resolve));
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    const outcome = await page.evaluate(() => window.outcome);
    assert.deepEqual(outcome, { fetch: 'refused', post: 'refused',
                                pusher: 'refused', ws: 'refused' });
    await context.close();
  } finally {
    other.close();
  }
  // The same, as the servers see it.
  const evil = { Origin: `http://127.0.0.1:${port}` };
  const pre = await fetch(`${env.api}/jobs`, { method: 'OPTIONS',
    headers: { ...evil, 'Access-Control-Request-Method': 'POST' } });
  assert.equal(pre.status, 403);
  assert.equal(pre.headers.get('access-control-allow-origin'), null);
  const ws = await rawGet(env.pusherPort, '/ws', { ...evil,
    Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' });
  assert.equal(ws.status, 403);
  assert.equal(JSON.parse(ws.body).error.code, 'origin_not_allowed');
  // The demo page's own origin is allowed on both.
  const mine = { Origin: env.pusher };
  const ok = await fetch(`${env.api}/jobs`, { method: 'OPTIONS',
    headers: { ...mine, 'Access-Control-Request-Method': 'POST',
               'Access-Control-Request-Headers': 'content-type,idempotency-key' } });
  assert.equal(ok.status, 204);
  assert.equal(ok.headers.get('access-control-allow-origin'), env.pusher);
  assert.match(ok.headers.get('access-control-allow-headers'), /Idempotency-Key/);
  assert.match(ok.headers.get('vary'), /Origin/);
});

btest('through nginx as in docs/PROXY.md: one origin, streams unbuffered',
     { skip: !fs.existsSync(NGINX) && `no ${NGINX} (scripts/deps test installs nginx)` },
     async () => {
  const dir = fs.mkdtempSync(path.join(env.dir, 'nginx-'));
  const port = await freePort();
  const conf = proxyConfig(dir, port);
  const t = spawnSync(NGINX, ['-t', '-p', dir, '-c', conf], { encoding: 'utf8' });
  assert.equal(t.status, 0, `nginx -t: ${t.stderr}`);
  const nginx = spawn(NGINX, ['-p', dir, '-c', conf, '-g', 'daemon off;'],
                      { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  nginx.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => nginx.on('exit', resolve));
  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitFor('nginx to answer', async () =>
      (await fetch(`${origin}/api/healthz`)).status === 200);
    for (const blockWs of [false, true]) {
      const context = await browser.newContext();
      const page = await context.newPage();
      if (blockWs)
        await page.routeWebSocket(/\/ws$/, (ws) => ws.close({ code: 1006 }));
      await page.goto(`${origin}/?api=/api`);
      await page.waitForFunction(() => window.demo !== undefined);
      const [id] = await submitForm(page, { seconds: 3, steps: 6 });
      // Unbuffered: a step shows while the job still runs.
      await page.waitForFunction((jobId) => {
        const j = window.demo.jobs.get(jobId);
        return j.messages.includes('step 2 of 6') && j.state === 'running';
      }, id, { timeout: 20000 });
      const row = await waitState(page, id, 'succeeded');
      assert.equal(row.via, blockWs ? 'sse' : 'websocket');
      assertEveryStepOnce(row, 6);
      await context.close();
    }
  } finally {
    nginx.kill('SIGTERM');
    await exited;
  }
  assert.doesNotMatch(stderr, /\[(emerg|alert|crit)\]/);
});

btest('the pusher serves the web client with types, caching and no traversal', async () => {
  const expect = {
    '/': 'text/html; charset=utf-8',
    '/jobwire.js': 'text/javascript; charset=utf-8',
    '/jobwire.mjs': 'text/javascript; charset=utf-8',
    '/demo.css': 'text/css; charset=utf-8',
  };
  for (const [p, type] of Object.entries(expect)) {
    const r = await rawGet(env.pusherPort, p);
    assert.equal(r.status, 200, p);
    assert.equal(r.headers['content-type'], type, p);
    assert.equal(r.headers['cache-control'], 'no-cache', p);
    const again = await rawGet(env.pusherPort, p, { 'If-None-Match': r.headers.etag });
    assert.equal(again.status, 304, p);
  }
  for (const p of ['/../meson.build', '/%2e%2e/meson.build', '/..%2fmeson.build',
                   '/%2e%2e%2fREADME.md', '/.hidden', '//etc/passwd',
                   '/%2fetc/passwd', '/meson.build', '/jobwire.js%00.txt',
                   '/web/../../README.md', '/..\\README.md']) {
    const r = await rawGet(env.pusherPort, p);
    assert.ok(r.status === 404 || r.status === 400, `${p}: ${r.status}`);
    assert.doesNotMatch(r.body, /project\(|jobwire runs long jobs/, p);
  }
  // The classic script defines window.jobwire; the module exports watch.
  const page = await openDemo();
  const kinds = await page.evaluate(async () => {
    const m = await import('/jobwire.mjs');
    await new Promise((resolve) => {
      const s = document.createElement('script');
      s.src = '/jobwire.js';
      s.onload = resolve;
      document.head.append(s);
    });
    return [typeof m.watch, typeof window.jobwire.watch];
  });
  assert.deepEqual(kinds, ['function', 'function']);
  await page.context().close();
});

/* The nginx configuration of docs/PROXY.md, as is but for its ports and
 * the files a test run writes. */
function proxyConfig(dir, port) {
  const doc = fs.readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname),
                                        '..', '..', 'docs', 'PROXY.md'), 'utf8');
  const m = doc.match(/```nginx\n([\s\S]*?)\n```/);
  assert.ok(m, 'docs/PROXY.md has an nginx block');
  let conf = m[1]
    .replace('listen 80;', `listen 127.0.0.1:${port};`)
    .replace('127.0.0.1:8080', `127.0.0.1:${env.apiPort}`)
    .replace('127.0.0.1:8081', `127.0.0.1:${env.pusherPort}`)
    .replace('worker_processes auto;', `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;`)
    .replace('http {', `http {
    access_log off;
    client_body_temp_path ${dir}/body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;`);
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  return path.join(dir, 'nginx.conf');
}

/* A GET with the path sent as is (no normalisation by a client). */
function rawGet(port, p, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
