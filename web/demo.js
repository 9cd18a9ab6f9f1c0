/* The jobwire demo page: submits jobs to the api (another origin, so the
 * api answers with CORS headers) and watches each one through the pusher
 * that serves this page. Rows are redrawn once per animation frame, so
 * that dozens of busy jobs stay smooth.
 *
 * Query parameters: ?api=URL (default: this host, port 8080) and
 * ?transports=websocket,sse,poll (the order to try). */
import { watch } from './jobwire.mjs';

const params = new URLSearchParams(location.search);
const API = (params.get('api') ||
             `${location.protocol}//${location.hostname}:8080`).replace(/\/+$/, '');
const TRANSPORTS = (params.get('transports') || 'websocket,sse,poll').split(',');

const $ = (sel, root = document) => root.querySelector(sel);
const tbody = $('#jobs tbody');
const transportEl = $('#transport');
const jobs = new Map();  /* id → row model */
const dirty = new Set();
let frame = 0;

$('#api-url').textContent = API;

/* Everything the page shows comes from here; tests read it too. */
window.demo = { jobs, api: API, transport: null };

function schedule(job) {
  dirty.add(job);
  if (!frame)
    frame = requestAnimationFrame(render);
}

function setTransport(name) {
  window.demo.transport = name;
  transportEl.dataset.transport = name;
  transportEl.textContent = name === 'reconnecting' ? 'reconnecting…' :
                            name === 'sse' ? 'Server-Sent Events' :
                            name === 'poll' ? 'long-polling' : name;
}

function describe(type, p) {
  if (type === 'sleep')
    return `sleep ${p.seconds}s × ${p.steps}` + (p.fail_at ? `, fails at ${p.fail_at}` : '');
  return `checksum ${p.path}`;
}

/* ---- rows ----------------------------------------------------------- */

function makeRow(job) {
  const tr = document.createElement('tr');
  tr.dataset.job = job.id;
  tr.innerHTML = `
    <td class="id"><code></code><small></small></td>
    <td><div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100">
      <span></span><em>0%</em></div></td>
    <td class="state"></td>
    <td class="msg"><span class="last"></span>
      <details><summary></summary><ol></ol></details></td>
    <td class="result"></td>
    <td class="via"></td>
    <td><button type="button" class="cancel">Cancel</button></td>`;
  $('code', tr).textContent = job.id.slice(-8);
  $('code', tr).title = job.id;
  $('small', tr).textContent = describe(job.type, job.params);
  $('.cancel', tr).addEventListener('click', () => cancel(job));
  tbody.prepend(tr);
  $('#empty').hidden = true;
  return tr;
}

function render() {
  frame = 0;
  for (const id of dirty) {
    const job = jobs.get(id);
    const tr = job.tr || (job.tr = makeRow(job));
    const bar = $('.bar', tr);
    const pct = Math.round(job.percent);

    tr.dataset.state = job.state;
    bar.dataset.percent = pct;
    bar.setAttribute('aria-valuenow', pct);
    $('span', bar).style.width = pct + '%';
    $('em', bar).textContent = pct + '%';
    $('.state', tr).textContent = job.state;
    $('.last', tr).textContent = job.message;
    const log = $('ol', tr);
    for (; job.shown < job.messages.length; job.shown++) {
      const li = document.createElement('li');
      li.textContent = job.messages[job.shown];
      log.append(li);
    }
    $('summary', tr).textContent = `${job.messages.length} events`;
    const res = $('.result', tr);
    res.classList.toggle('err', !!job.error);
    res.textContent = job.error ? `${job.error.code}: ${job.error.message}` :
                      job.result !== undefined ? JSON.stringify(job.result) : '';
    $('.via', tr).textContent = job.via || '';
    $('.cancel', tr).disabled = job.finished || job.cancelling;
  }
  dirty.clear();
}

/* ---- jobs ----------------------------------------------------------- */

function follow(snapshot) {
  const job = {
    id: snapshot.id, type: snapshot.type, params: snapshot.params,
    token: snapshot.token || null, /* set when the api enforces tokens */
    state: snapshot.state, percent: 0, message: '', messages: [],
    shown: 0, seqs: [], result: undefined, error: null, via: '',
    finished: false, cancelling: false, tr: null,
  };
  jobs.set(job.id, job);
  schedule(job.id);

  job.watcher = watch(job.id, {
    onEvent(ev) {
      job.seqs.push(ev.seq);
      const p = ev.progress;
      if (p && typeof p.percent === 'number')
        job.percent = p.percent;
      else if (p && p.total)
        job.percent = 100 * p.done / p.total;
      const text = p && p.message ? p.message : ev.type;
      job.message = text;
      job.messages.push(text);
      if (ev.type === 'succeeded') {
        job.percent = 100;
        job.result = ev.result;
      }
      if (ev.error)
        job.error = ev.error;
      if (ev.type === 'retrying')
        job.error = null;
      schedule(job.id);
    },
    onState(state) {
      job.state = state;
      schedule(job.id);
    },
    onTransport(name) {
      job.via = name;
      setTransport(name);
      schedule(job.id);
    },
    onReconnecting() {
      setTransport('reconnecting');
    },
    onDone() {
      job.finished = true;
      schedule(job.id);
    },
    onError(err) {
      job.error = err;
      job.finished = true;
      schedule(job.id);
    },
  }, { transports: TRANSPORTS, token: job.token || undefined });
}

async function cancel(job) {
  job.cancelling = true;
  schedule(job.id);
  try {
    const headers = job.token ? { Authorization: `Bearer ${job.token}` } : {};
    const r = await fetch(`${API}/jobs/${job.id}`,
                          { method: 'DELETE', headers });
    if (!r.ok && r.status !== 409) {
      const body = await r.json().catch(() => ({}));
      showError(body.error ? body.error.message : `cancel failed: ${r.status}`);
    }
  } catch (e) {
    showError(`cannot reach the api at ${API}`);
  }
  job.cancelling = false;
  schedule(job.id);
}

function showError(text) {
  $('#form-error').textContent = text;
}

function readParams(form) {
  const f = new FormData(form);
  const type = f.get('type');
  if (type === 'checksum')
    return { type, params: { path: f.get('path') } };
  const params = { seconds: Number(f.get('seconds')), steps: Number(f.get('steps')) };
  if (f.get('fail_at'))
    params.fail_at = Number(f.get('fail_at'));
  return { type, params };
}

async function submit(body) {
  const r = await fetch(`${API}/jobs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await r.json();
  if (r.status !== 202)
    throw new Error(answer.error ? answer.error.message : `status ${r.status}`);
  return answer;
}

$('#type').addEventListener('change', (e) => {
  for (const el of document.querySelectorAll('.params'))
    el.hidden = el.dataset.for !== e.target.value;
});

$('#submit').addEventListener('submit', async (e) => {
  e.preventDefault();
  showError('');
  const body = readParams(e.target);
  const count = Math.max(1, Math.min(100, Number(new FormData(e.target).get('count')) || 1));
  const answers = await Promise.allSettled(
      Array.from({ length: count }, () => submit(body)));
  for (const a of answers) {
    if (a.status === 'fulfilled')
      follow(a.value);
    else
      showError(a.reason instanceof TypeError ?
                `cannot reach the api at ${API}` : a.reason.message);
  }
});
