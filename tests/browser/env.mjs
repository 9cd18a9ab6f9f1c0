// The real jobwire daemons for browser tests: broker, api, workers and
// pusher from the meson build, on a fresh runtime directory and free
// loopback ports, with helpers to kill and restart them.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const POLL_MS = 50;

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/* Waits until check() returns a truthy value, at most timeoutMs. */
export async function waitFor(what, check, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last)
        return last;
    } catch (e) {
      last = e;
    }
    await sleep(POLL_MS);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
                  (last instanceof Error ? `: ${last.message}` : ''));
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function need(name) {
  const v = process.env[name];
  if (!v)
    throw new Error(`${name} is not set (run through meson test)`);
  return v;
}

export class JobwireEnv {
  /* tokens: job tokens enforced by api and pusher, as in production
   * (docs/SECURITY.md), with a fresh secret; false: open mode. */
  constructor({ workers = 2, pusherSettings = [], apiSettings = [],
                tokens = true } = {}) {
    this.nWorkers = workers;
    this.tokens = tokens;
    this.pusherSettings = pusherSettings;
    this.apiSettings = apiSettings;
    this.procs = new Map();
  }

  async start() {
    // Short: ipc paths must fit in a socket address.
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jwb-'));
    this.files = path.join(this.dir, 'files');
    fs.mkdirSync(this.files);
    fs.writeFileSync(path.join(this.files, 'hello.txt'), 'hello from jobwire\n');
    this.apiPort = await freePort();
    do
      this.pusherPort = await freePort();
    while (this.pusherPort === this.apiPort);
    this.api = `http://127.0.0.1:${this.apiPort}`;
    this.pusher = `http://127.0.0.1:${this.pusherPort}`;

    const rt = ['--runtime-dir', this.dir];
    const security = [];
    if (this.tokens) {
      const secret = path.join(this.dir, 'token.secret');
      fs.writeFileSync(secret, crypto.randomBytes(32), { mode: 0o600 });
      security.push('--set', `security.token-secret-file=${secret}`);
    }
    this.cmds = {
      broker: [need('JW_BROKER'), ...rt, '--set',
               `broker.ledger=${path.join(this.dir, 'ledger.sqlite')}`],
      api: [need('JW_API'), ...rt, '--listen', `127.0.0.1:${this.apiPort}`,
            '--set', `api.pusher-url=${this.pusher}`, ...security,
            ...this.apiSettings.flatMap((s) => ['--set', s])],
      pusher: [need('JW_PUSHER'), ...rt, '--listen',
               `127.0.0.1:${this.pusherPort}`,
               '--set', `pusher.web-root=${need('JW_WEB_ROOT')}`, ...security,
               ...this.pusherSettings.flatMap((s) => ['--set', s])],
    };
    for (let i = 1; i <= this.nWorkers; i++)
      this.cmds[`worker${i}`] = [need('JW_WORKER'), ...rt, '--name', `worker${i}`,
                                 '--set', `worker.checksum-root=${this.files}`];
    for (const name of Object.keys(this.cmds))
      this.startDaemon(name);
    await this.waitReady();
    return this;
  }

  startDaemon(name) {
    const [exe, ...args] = this.cmds[name];
    const log = fs.openSync(path.join(this.dir, `${name}.log`), 'a');
    const child = spawn(exe, args, { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    child.exited = new Promise((resolve) => child.on('exit', resolve));
    this.procs.set(name, child);
    return child;
  }

  async waitReady(timeoutMs = 30000) {
    await waitFor('the api to see every worker and the pusher to be up', async () => {
      for (const [name, p] of this.procs)
        if (p.exitCode !== null)
          throw new Error(`${name} exited with ${p.exitCode}:\n${this.log(name)}`);
      const a = await fetch(`${this.api}/healthz`).then((r) => r.json());
      const p = await fetch(`${this.pusher}/healthz`);
      return a.workers === this.nWorkers && p.status === 200;
    }, timeoutMs);
  }

  async kill(name, signal = 'SIGKILL') {
    const p = this.procs.get(name);
    if (p && p.exitCode === null && p.signalCode === null) {
      p.kill(signal);
      await p.exited;
    }
  }

  async restart(name) {
    await this.kill(name);
    this.startDaemon(name);
    if (name === 'pusher')
      await waitFor('the pusher to answer /healthz', async () =>
        (await fetch(`${this.pusher}/healthz`)).status === 200);
  }

  log(name) {
    try {
      return fs.readFileSync(path.join(this.dir, `${name}.log`), 'utf8').slice(-3000);
    } catch (e) {
      return '';
    }
  }

  async submit(type, params) {
    const r = await fetch(`${this.api}/jobs`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ type, params }),
    });
    if (r.status !== 202)
      throw new Error(`submit answered ${r.status}: ${await r.text()}`);
    return r.json();
  }

  async stop() {
    const all = [...this.procs.values()];
    for (const p of all)
      if (p.exitCode === null && p.signalCode === null)
        p.kill('SIGTERM');
    await Promise.race([Promise.all(all.map((p) => p.exited)), sleep(5000)]);
    for (const p of all)
      if (p.exitCode === null && p.signalCode === null)
        p.kill('SIGKILL');
    await Promise.all(all.map((p) => p.exited));
    if (process.env.JW_KEEP_DIR !== '1')
      fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
