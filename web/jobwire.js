/* jobwire.js — watch jobwire jobs live from a browser. No dependencies.
 *
 *   <script src="/jobwire.js"></script>          (defines window.jobwire)
 *   import { watch } from '/jobwire.mjs';         (as an ES module)
 *
 *   const w = jobwire.watch(jobId, {
 *     onEvent(ev) {}, onState(state, ev) {}, onTransport(name) {},
 *     onReconnecting(info) {}, onDone(ev) {}, onError(err) {},
 *   }, { pusher: 'http://127.0.0.1:8081',
 *        transports: ['websocket', 'sse', 'poll'], after: 0,
 *        token: answer.token });
 *   w.close();
 *
 * token is the job's token from the POST /jobs answer, needed when the
 * pusher enforces tokens (docs/SECURITY.md); it is sent as the WebSocket
 * subscribe message's token member, or in tokens= of the SSE and long-poll
 * URLs.
 *
 * All jobs a page watches on one pusher share one connection: one
 * WebSocket, else one Server-Sent Events stream (GET /events?jobs=…), else
 * one long-poll (GET /poll?jobs=…). A transport that never manages to
 * connect gives way to the next one; a connection that drops is reopened
 * with exponential backoff and jitter, resuming each job after the last
 * seq it delivered. Each job's events reach onEvent once each, in order,
 * and the watch ends with the job's terminal event. */
(function (root, factory) {
  'use strict';
  var api = factory(root);
  if (typeof module === 'object' && module && module.exports)
    module.exports = api;
  root.jobwire = api;
})(typeof globalThis !== 'undefined' ? globalThis : this, function (root) {
  'use strict';

  var TERMINAL = { succeeded: true, failed: true, cancelled: true };
  var EVENT_TYPES = ['queued', 'started', 'progress', 'retrying',
                     'succeeded', 'failed', 'cancelled'];
  var STATE_OF = { queued: 'queued', started: 'running', progress: 'running',
                   retrying: 'queued', succeeded: 'succeeded',
                   failed: 'failed', cancelled: 'cancelled' };
  var ALL_TRANSPORTS = ['websocket', 'sse', 'poll'];

  var defaults = {
    pusher: null,          /* base URL; default: where this file came from */
    transports: ALL_TRANSPORTS,
    connectTimeout: 5000,  /* ms for a transport to open */
    backoffBase: 500,      /* ms, doubled per failed attempt */
    backoffMax: 15000,
    pollTimeout: 25,       /* s the pusher holds a long-poll */
    idleClose: 10000,      /* ms a connection stays open with no job */
  };

  /* The origin this file was loaded from, when loaded as a plain script. */
  try {
    var cs = root.document && root.document.currentScript;
    if (cs && cs.src)
      defaults.pusher = new URL(cs.src).origin;
  } catch (e) { /* not in a page */ }

  function baseUrl(pusher) {
    var b = pusher || defaults.pusher || (root.location && root.location.origin);
    if (!b)
      throw new Error('jobwire: no pusher URL');
    return String(b).replace(/\/+$/, '');
  }

  function call(fn, arg1, arg2) {
    if (typeof fn !== 'function')
      return;
    try {
      fn(arg1, arg2);
    } catch (e) {
      /* A page's handler must not break the delivery to the others. */
      setTimeout(function () { throw e; }, 0);
    }
  }

  /* ---- one watched job --------------------------------------------- */

  function Watcher(hub, job, handlers, after, token) {
    this.hub = hub;
    this.job = job;
    this.token = token || null;
    this.handlers = handlers || {};
    this.seq = after || 0;     /* last seq delivered */
    this.state = null;
    this.done = false;
    this.transport = null;
  }

  /* Delivers ev unless it was delivered before (seq guard). A gap is
   * allowed: a slow client may have intermediate progress coalesced. */
  Watcher.prototype.deliver = function (ev) {
    if (this.done || typeof ev.seq !== 'number' || ev.seq <= this.seq)
      return;
    this.seq = ev.seq;
    call(this.handlers.onEvent, ev);
    var state = STATE_OF[ev.type];
    if (state && state !== this.state) {
      this.state = state;
      call(this.handlers.onState, state, ev);
    }
    if (TERMINAL[ev.type]) {
      this.finish();
      call(this.handlers.onDone, ev);
    }
  };

  Watcher.prototype.fail = function (code, message) {
    if (this.done)
      return;
    this.finish();
    call(this.handlers.onError, { code: code, message: message, job: this.job });
  };

  Watcher.prototype.finish = function () {
    this.done = true;
    this.hub.remove(this);
  };

  Watcher.prototype.close = function () {
    if (!this.done) {
      this.done = true;
      this.hub.remove(this);
    }
  };

  /* ---- the connection shared by a page's jobs ------------------------ */

  function Hub(base, opts) {
    this.base = base;
    this.opts = opts;
    this.transports = opts.transports.filter(function (t) {
      return ALL_TRANSPORTS.indexOf(t) >= 0;
    });
    if (this.transports.length === 0)
      throw new Error('jobwire: no known transport in ' + opts.transports);
    this.level = 0;            /* index into transports */
    this.opened = {};          /* transport name → it worked once */
    this.watchers = {};        /* job → Watcher */
    this.count = 0;
    this.conn = null;          /* the open transport */
    this.current = null;       /* its name once open */
    this.attempt = 0;
    this.retryTimer = null;
    this.idleTimer = null;
    this.syncTimer = null;
  }

  Hub.prototype.add = function (w) {
    var old = this.watchers[w.job];
    if (old)
      old.close();
    this.watchers[w.job] = w;
    this.count++;
    clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (this.current)
      call(w.handlers.onTransport, this.current);
    if (this.conn)
      this.conn.add(w);
    else if (!this.retryTimer)
      this.connectSoon();
  };

  /* Connects on the next turn, so that the jobs a page starts watching
   * together go out on the first request. */
  Hub.prototype.connectSoon = function () {
    var self = this;
    this.retryTimer = setTimeout(function () {
      self.retryTimer = null;
      if (self.count > 0 && !self.conn)
        self.connect();
    }, 0);
  };

  Hub.prototype.remove = function (w) {
    if (this.watchers[w.job] !== w)
      return;
    delete this.watchers[w.job];
    this.count--;
    if (this.conn)
      this.conn.remove(w);
    if (this.count === 0) {
      var self = this;
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.idleTimer = setTimeout(function () {
        self.idleTimer = null;
        if (self.count === 0)
          self.close();
      }, this.opts.idleClose);
    }
  };

  Hub.prototype.active = function () {
    var list = [];
    for (var job in this.watchers)
      list.push(this.watchers[job]);
    return list;
  };

  Hub.prototype.close = function () {
    if (this.conn) {
      var c = this.conn;
      this.conn = null;
      c.close();
    }
    this.current = null;
  };

  Hub.prototype.connect = function () {
    var self = this;
    var name = this.transports[this.level];
    var make = { websocket: WsConn, sse: SseConn, poll: PollConn }[name];
    var conn = new make(this);
    var opened = false;
    var timer = setTimeout(function () {
      if (!opened)
        conn.onclose();
    }, this.opts.connectTimeout);

    this.conn = conn;
    conn.onopen = function () {
      if (self.conn !== conn)
        return;
      opened = true;
      clearTimeout(timer);
      self.opened[name] = true;
      if (self.current !== name) {
        self.current = name;
        self.active().forEach(function (w) {
          w.transport = name;
          call(w.handlers.onTransport, name);
        });
      }
    };
    conn.onmessage = function () {
      /* Only a connection that carries something resets the backoff. */
      self.attempt = 0;
    };
    conn.onclose = function () {
      clearTimeout(timer);
      if (self.conn !== conn)
        return;
      conn.close();
      self.conn = null;
      if (self.count === 0) {
        self.current = null;
        return;
      }
      self.dropped(name, opened);
    };
    conn.open(this.active());
  };

  /* A connection failed or dropped with jobs still watched. */
  Hub.prototype.dropped = function (name, opened) {
    var self = this;
    if (!opened && !this.opened[name]) {
      /* Never worked: the next transport, at once. After the last one,
       * start over with backoff (the pusher may be down altogether). */
      if (this.level + 1 < this.transports.length) {
        this.level++;
        this.connect();
        return;
      }
      this.level = 0;
      for (var i = 0; i < this.transports.length; i++) {
        if (this.opened[this.transports[i]]) {
          this.level = i;
          break;
        }
      }
    }
    var cap = Math.min(this.opts.backoffMax,
                       this.opts.backoffBase * Math.pow(2, this.attempt));
    var delay = Math.round(cap / 2 + Math.random() * cap / 2);
    this.attempt = Math.min(this.attempt + 1, 30);
    var info = { transport: this.transports[this.level], attempt: this.attempt,
                 delay: delay };
    this.current = null;
    this.active().forEach(function (w) {
      call(w.handlers.onReconnecting, info);
    });
    this.retryTimer = setTimeout(function () {
      self.retryTimer = null;
      if (self.count > 0 && !self.conn)
        self.connect();
    }, delay);
  };

  /* Routes an event (parsed JSON with job and seq) to its watcher. */
  Hub.prototype.dispatch = function (ev) {
    var w = ev && this.watchers[ev.job];
    if (w)
      w.deliver(ev);
  };

  Hub.prototype.jobError = function (job, code, message) {
    var w = this.watchers[job];
    if (w)
      w.fail(code, message);
  };

  function jobList(watchers) {
    return watchers.map(function (w) { return w.job + ':' + w.seq; }).join(',');
  }

  /* "&tokens=T1,T2…" in the order of jobList, or '' when no job has one.
   * A job without a token gets an empty entry, which the pusher refuses
   * when it enforces tokens. */
  function tokenList(watchers) {
    if (!watchers.some(function (w) { return w.token; }))
      return '';
    return '&tokens=' + encodeURIComponent(watchers.map(function (w) {
      return w.token || '';
    }).join(','));
  }

  /* ---- WebSocket: subscribe and unsubscribe per job ------------------ */

  function WsConn(hub) {
    this.hub = hub;
    this.ws = null;
  }

  WsConn.prototype.open = function (watchers) {
    var self = this;
    var url = this.hub.base.replace(/^http/, 'ws') + '/ws';
    try {
      this.ws = new WebSocket(url);
    } catch (e) {
      setTimeout(function () { self.onclose(); }, 0);
      return;
    }
    this.ws.onopen = function () {
      self.onopen();
      self.hub.active().forEach(function (w) { self.add(w); });
    };
    this.ws.onmessage = function (m) {
      var msg;
      try {
        msg = JSON.parse(m.data);
      } catch (e) {
        return;
      }
      self.onmessage();
      if (msg.op === 'error') {
        if (msg.job && (msg.code === 'job_not_found' ||
                        msg.code === 'invalid_job_id' ||
                        msg.code === 'token_required' ||
                        msg.code === 'token_invalid' ||
                        msg.code === 'token_expired'))
          self.hub.jobError(msg.job, msg.code, msg.message);
        else if (msg.job && msg.code === 'broker_unavailable')
          self.retryJob(msg.job);
        /* Not handled: too_many_subscriptions. A page watching more jobs
         * than [pusher] max-subscriptions (100) gets no events for the
         * extra ones; it would need a second connection. */
        return;
      }
      if (msg.op)
        return; /* subscribed, unsubscribed */
      self.hub.dispatch(msg);
    };
    this.ws.onclose = function () {
      self.onclose();
    };
  };

  WsConn.prototype.send = function (obj) {
    if (this.ws && this.ws.readyState === 1)
      this.ws.send(JSON.stringify(obj));
  };

  WsConn.prototype.add = function (w) {
    var cmd = { op: 'subscribe', job: w.job, after: w.seq };
    if (w.token)
      cmd.token = w.token;
    this.send(cmd);
  };

  WsConn.prototype.remove = function (w) {
    if (!TERMINAL[w.state])
      this.send({ op: 'unsubscribe', job: w.job });
  };

  /* The pusher could not reach the broker for this job: ask again later. */
  WsConn.prototype.retryJob = function (job) {
    var self = this;
    setTimeout(function () {
      var w = self.hub.watchers[job];
      if (w && self.hub.conn === self)
        self.add(w);
    }, 1000 + Math.random() * 1000);
  };

  WsConn.prototype.close = function () {
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
      this.ws.onerror = null;
      try {
        this.ws.close();
      } catch (e) { /* already closed */ }
      this.ws = null;
    }
  };

  /* ---- SSE: one stream for all jobs, reopened when the set changes --- */

  function SseConn(hub) {
    this.hub = hub;
    this.es = null;
    this.jobs = '';
    this.reopenTimer = null;
    this.isOpen = false;
  }

  SseConn.prototype.open = function (watchers) {
    var self = this;
    var ids = watchers.map(function (w) { return w.job; });
    this.jobs = ids.slice().sort().join(',');
    /* A refused token refuses the whole stream; EventSource only sees
     * an error, and the hub retries with backoff. Not handled: telling
     * which job's token was refused (the pusher's answer does not say). */
    this.es = new EventSource(this.hub.base + '/events?jobs=' +
                              encodeURIComponent(jobList(watchers)) +
                              tokenList(watchers));
    this.es.onopen = function () {
      self.isOpen = true;
      self.onopen();
    };
    var onEvent = function (m) {
      var ev;
      try {
        ev = JSON.parse(m.data);
      } catch (e) {
        return;
      }
      self.onmessage();
      self.hub.dispatch(ev);
    };
    EVENT_TYPES.forEach(function (t) { self.es.addEventListener(t, onEvent); });
    this.es.addEventListener('job_error', function (m) {
      try {
        var e = JSON.parse(m.data);
        self.hub.jobError(e.job, e.code, e.message);
      } catch (x) { /* ignore */ }
    });
    this.es.onerror = function () {
      /* Reconnects are ours (with backoff and exact cursors), not
       * EventSource's. The stream ends when its last job finished. */
      self.close();
      self.onclose();
    };
  };

  /* A change of the job set reopens the stream, once per turn. */
  SseConn.prototype.changed = function () {
    var self = this;
    if (this.reopenTimer)
      return;
    this.reopenTimer = setTimeout(function () {
      self.reopenTimer = null;
      var watchers = self.hub.active();
      var now = watchers.map(function (w) { return w.job; }).sort().join(',');
      if (!self.es || now === self.jobs || watchers.length === 0)
        return;
      var es = self.es;
      es.onerror = null;
      es.close();
      self.isOpen = false;
      self.open(watchers);
    }, 0);
  };

  SseConn.prototype.add = function () { this.changed(); };
  SseConn.prototype.remove = function (w) {
    if (!TERMINAL[w.state])
      this.changed();
  };

  SseConn.prototype.close = function () {
    clearTimeout(this.reopenTimer);
    this.reopenTimer = null;
    if (this.es) {
      this.es.onerror = null;
      this.es.close();
      this.es = null;
    }
  };

  /* ---- long-poll: one request for all jobs at a time ----------------- */

  function PollConn(hub) {
    this.hub = hub;
    this.ctl = null;
    this.closed = false;
    this.restarting = false;
  }

  PollConn.prototype.open = function () {
    this.next(true);
  };

  PollConn.prototype.next = function (first) {
    var self = this;
    var watchers = this.hub.active();
    if (this.closed || watchers.length === 0)
      return;
    var ctl = typeof AbortController !== 'undefined' ? new AbortController() : null;
    this.ctl = ctl;
    /* The first poll answers at once, so that "open" means "reachable". */
    var url = this.hub.base + '/poll?jobs=' +
              encodeURIComponent(jobList(watchers)) + tokenList(watchers) +
              '&timeout=' + (first ? 0 : this.hub.opts.pollTimeout);
    fetch(url, { signal: ctl ? ctl.signal : undefined, cache: 'no-store' })
      .then(function (r) {
        return r.json().then(function (body) { return [r, body]; });
      })
      .then(function (rb) {
        var r = rb[0], body = rb[1];
        if (self.ctl !== ctl || self.closed)
          return;
        if (r.status === 404 && body && body.error && body.error.job) {
          self.onopen();
          self.hub.jobError(body.error.job, body.error.code,
                            body.error.message);
          self.next(false);
          return;
        }
        if (!r.ok || !Array.isArray(body))
          throw new Error('poll answered ' + r.status);
        self.onopen();
        if (body.length > 0)
          self.onmessage();
        body.forEach(function (ev) { self.hub.dispatch(ev); });
        self.next(false);
      })
      .catch(function (e) {
        if (self.ctl !== ctl || self.closed)
          return;
        self.closed = true;
        self.onclose();
      });
  };

  /* A change of the job set restarts the outstanding poll. */
  PollConn.prototype.changed = function () {
    var self = this;
    if (this.restarting || this.closed)
      return;
    this.restarting = true;
    setTimeout(function () {
      self.restarting = false;
      if (self.closed)
        return;
      if (self.ctl)
        self.ctl.abort();
      self.ctl = null;
      self.next(false);
    }, 0);
  };

  PollConn.prototype.add = function () { this.changed(); };
  PollConn.prototype.remove = function (w) {
    if (!TERMINAL[w.state])
      this.changed();
  };

  PollConn.prototype.close = function () {
    this.closed = true;
    if (this.ctl)
      this.ctl.abort();
    this.ctl = null;
  };

  /* ---- the public interface ----------------------------------------- */

  var hubs = {};

  function options(opts) {
    var o = {};
    for (var k in defaults)
      o[k] = defaults[k];
    for (k in opts || {})
      if (opts[k] !== undefined)
        o[k] = opts[k];
    return o;
  }

  /* Watches one job; see the top of this file. Returns {close(), job}. */
  function watch(jobId, handlers, opts) {
    var o = options(opts);
    var base = baseUrl(o.pusher);
    var key = base + ' ' + o.transports.join(',');
    var hub = hubs[key] || (hubs[key] = new Hub(base, o));
    var w = new Watcher(hub, String(jobId), handlers, o.after || 0,
                        opts && opts.token);
    hub.add(w);
    return {
      job: w.job,
      close: function () { w.close(); },
      get seq() { return w.seq; },
      get state() { return w.state; },
      get transport() { return hub.current; },
    };
  }

  return { watch: watch, defaults: defaults, version: '1' };
});
