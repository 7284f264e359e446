// One resilient WebSocket to /ws/<channel>: reconnects with exponential backoff and jitter, pings
// every 30 s, notices a silent (half-open) socket, and stops on 4001/4003 so the page can ask the
// user to sign in again instead of retrying a dead token forever.
//
// Credentials come from an async `credential()` callback returning {ticket} (a one-time ticket,
// fetched anew for every attempt, so nothing long-lived sits in URLs) or the guide's {token}.
// Every message carries a per-channel `seq`; a reconnect (server restart, lost network, close
// 4008 for a client that fell behind) asks for `?since=<last seq>` and the server replays what
// was missed. Only when it cannot (`resync_required`, or a server without `seq`) does `onGap`
// tell the page to reload its panels over REST.

export const CLOSE_TOKEN_REQUIRED = 4001;
export const CLOSE_INVALID_TOKEN = 4003;
const AUTH_CLOSE_CODES = new Set([CLOSE_TOKEN_REQUIRED, CLOSE_INVALID_TOKEN]);

/** "Equal jitter": half the capped exponential delay, plus a random share of the other half. */
export function backoffDelay(attempt, { baseMs = 1000, maxMs = 30000, random = Math.random } = {}) {
  const cap = Math.min(maxMs, baseMs * 2 ** attempt);
  return Math.round(cap / 2 + random() * (cap / 2));
}

export class LiveConnection {
  /**
   * @param {object} o
   * @param {string} o.path                  e.g. '/ws/dashboard'
   * @param {() => Promise<{token?: string, ticket?: string}>} o.credential
   * @param {(msg: object) => void} o.onMessage  every data message (not connection/pong)
   * @param {(s: {state: string, attempt: number, retryAt?: number, reason?: string}) => void} o.onState
   * @param {(reason: string) => boolean} o.onAuthLost  the socket was refused (4001/4003): return
   *   true to try again with a fresh credential (a refused credential request always stops)
   * @param {(why: string) => void} o.onGap   messages may have been missed: reload the snapshot
   */
  constructor({
    path,
    credential,
    onMessage = () => {},
    onState = () => {},
    onAuthLost = () => false,
    onGap = () => {},
    pingIntervalMs = 30000,
    baseDelayMs = 1000,
    maxDelayMs = 30000,
  }) {
    Object.assign(this, { path, credential, onMessage, onState, onAuthLost, onGap });
    this.pingIntervalMs = pingIntervalMs;
    this.backoff = { baseMs: baseDelayMs, maxMs: maxDelayMs };
    this.ws = null;
    this.attempt = 0;
    this.everConnected = false;
    this.lastSeq = null;
    this.lastMessageAt = 0;
    this.stopped = true;
    this.retryTimer = null;
    this.pingTimer = null;
    this.onOnline = () => this.retryNow();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.retryTimer);
    this.teardown();
    this.emit('stopped');
  }

  /** Skip the remaining backoff wait (the browser says the network is back). */
  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  emit(state, extra = {}) {
    this.state = state;
    this.onState({ state, attempt: this.attempt, ...extra });
  }

  url(cred) {
    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    const params = new URLSearchParams();
    if (cred.ticket) params.set('ticket', cred.ticket);
    else params.set('token', cred.token || '');
    if (this.lastSeq !== null) params.set('since', String(this.lastSeq));
    return `${scheme}://${window.location.host}${this.path}?${params}`;
  }

  async connect() {
    this.emit('connecting');
    let cred;
    try {
      cred = await this.credential();
    } catch (err) {
      if (this.stopped) return;
      if (err && (err.status === 401 || err.status === 403)) {
        // Refused a credential at all: retrying cannot help, whatever onAuthLost would say.
        this.giveUp(err.message || 'Not signed in');
      } else {
        this.scheduleRetry((err && err.message) || 'Could not get a connection credential');
      }
      return;
    }
    if (this.stopped) return;
    const resumed = this.lastSeq !== null;
    let ws;
    try {
      ws = new WebSocket(this.url(cred));
    } catch (err) {
      this.scheduleRetry(String(err));
      return;
    }
    this.ws = ws;
    let serverError = '';
    ws.onmessage = (event) => {
      this.lastMessageAt = Date.now();
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return; // not ours to interpret; the server only sends JSON
      }
      if (msg.type === 'connection') {
        // A fresh stream starts after the greeting's `seq`; a resumed one after our `since`
        // (taking the greeting's would skip the replay if this socket dropped during it).
        if (!resumed && typeof msg.seq === 'number') this.lastSeq = msg.seq;
        const reconnect = this.everConnected;
        this.everConnected = true;
        this.attempt = 0;
        this.emit('live', { channel: msg.channel });
        if (reconnect && !resumed) this.onGap('reconnected');
        return;
      }
      if (typeof msg.seq === 'number') {
        if (this.lastSeq !== null && msg.seq <= this.lastSeq) return; // seen before
        this.lastSeq = msg.seq;
      }
      switch (msg.type) {
        case 'pong':
          return;
        case 'error':
          serverError = msg.message || 'error';
          this.onMessage(msg);
          return;
        case 'resync_required':
          // The history no longer reaches back to our `since`: resume from the server's latest
          // and let the page reload its panels over REST.
          this.lastSeq = typeof msg.latest === 'number' ? msg.latest : null;
          this.onGap('resync_required');
          return;
        default:
          this.onMessage(msg);
      }
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.teardown();
      if (this.stopped) return;
      if (AUTH_CLOSE_CODES.has(event.code)) {
        this.authLost(serverError || event.reason || 'Invalid token');
      } else {
        this.scheduleRetry(serverError || event.reason || `connection closed (${event.code})`);
      }
    };
    ws.onopen = () => {
      this.lastMessageAt = Date.now();
      this.pingTimer = setInterval(() => this.heartbeat(), this.pingIntervalMs);
    };
  }

  heartbeat() {
    const ws = this.ws;
    if (!ws) return;
    // Two missed pongs: the socket is half-open (laptop slept, proxy dropped it). Do not wait for
    // TCP to notice; drop it and reconnect.
    if (Date.now() - this.lastMessageAt > this.pingIntervalMs * 2 + 5000) {
      this.teardown();
      this.scheduleRetry('no answer to ping');
      return;
    }
    if (ws.readyState === WebSocket.OPEN) ws.send('ping');
  }

  teardown() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onopen = null;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
    }
  }

  authLost(reason) {
    if (this.onAuthLost(reason)) this.scheduleRetry(reason);
    else this.giveUp(reason);
  }

  giveUp(reason) {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    this.emit('auth', { reason });
  }

  scheduleRetry(reason) {
    const delay = backoffDelay(this.attempt, this.backoff);
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.emit('reconnecting', { retryAt: Date.now() + delay, reason });
  }
}
