// The live panels: statistics counters, alert feed, event stream, agent list.
// Each keeps its rows keyed by id and updates them in place, so a change made by someone else
// never re-renders the list, moves the analyst's scroll position or drops their selection.

import { formatAgo, formatClock, formatNumber, h, parseTime, severityName } from './dom.js';

const OPEN_ALERT_STATUSES = new Set(['new', 'acknowledged', 'investigating']);
const CAN_ACKNOWLEDGE = new Set(['new', 'investigating']);

/** Keep the rows the analyst is looking at still when something is inserted above them. */
function insertKeepingScroll(container, insert) {
  const before = container.scrollHeight;
  const wasScrolled = container.scrollTop > 0;
  insert();
  if (wasScrolled) container.scrollTop += container.scrollHeight - before;
}

function flash(el, className = 'fresh') {
  el.classList.remove(className);
  // Restart the CSS animation on repeated changes (a forced layout: fine for rare row changes).
  void el.offsetWidth;
  el.classList.add(className);
}

/** Run `fn` at most once per `delayMs`, however often it is asked: one layout per batch. */
function coalesce(fn, delayMs = 50) {
  let timer = null;
  return () => {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, delayMs);
  };
}

// --- counters ----------------------------------------------------------------------------------
export class Counters {
  constructor(root, updatedEl) {
    this.root = root;
    this.updatedEl = updatedEl;
    this.stats = null;
    // A burst of events bumps the counters hundreds of times a second; draw them once a batch.
    this.scheduleRender = coalesce(() => this.render());
  }

  /** Replace with the server's numbers (REST snapshot or a `statistics` message). */
  set(stats) {
    // A REST snapshot answered after a newer `statistics` message must not roll it back.
    const known = this.stats ? parseTime(this.stats.updated_at) : null;
    const incoming = parseTime(stats.updated_at);
    if (known !== null && incoming !== null && incoming < known) return;
    this.stats = structuredClone(stats);
    this.render();
    const at = parseTime(stats.updated_at);
    this.updatedEl.textContent = at ? `Statistics as of ${formatClock(at)} UTC` : '';
  }

  /** Nudge one number between two `statistics` messages; the next message corrects any drift. */
  bump(group, key, delta) {
    if (!this.stats || !this.stats[group] || typeof this.stats[group][key] !== 'number') return;
    this.stats[group][key] = Math.max(0, this.stats[group][key] + delta);
    this.scheduleRender();
  }

  render() {
    for (const [group, values] of Object.entries(this.stats)) {
      if (!values || typeof values !== 'object') continue;
      for (const [key, value] of Object.entries(values)) {
        const el = document.getElementById(`stat-${group}-${key}`);
        if (!el) continue;
        const text = formatNumber(value);
        if (el.textContent !== text) {
          el.textContent = text;
          // Web Animations: restarts without forcing a layout, unlike toggling a CSS class.
          (el.closest('.counter') || el).animate(
            [{ backgroundColor: '#1d3350' }, { backgroundColor: '#121823' }],
            { duration: 1200, easing: 'ease-out' },
          );
        }
      }
    }
  }
}

// --- alerts ------------------------------------------------------------------------------------
export class AlertFeed {
  /**
   * @param {HTMLOListElement} list
   * @param {{onAction: (id: number, action: string) => Promise<object>, emptyEl: HTMLElement,
   *          countEl: HTMLElement, openOnlyEl: HTMLInputElement, max?: number}} o
   */
  constructor(list, { onAction, emptyEl, countEl, openOnlyEl, max = 300 }) {
    Object.assign(this, { list, onAction, emptyEl, countEl, max });
    this.rows = new Map(); // alert_id → {data, el, parts}
    this.canTriage = false;
    this.selectedId = null;
    openOnlyEl.addEventListener('change', () => {
      list.classList.toggle('open-only', openOnlyEl.checked);
      this.renderCount();
    });
    list.addEventListener('click', (event) => this.onClick(event));
    list.addEventListener('keydown', (event) => {
      const rowEl = event.target.closest('.alert-row');
      if (!rowEl || event.target !== rowEl || (event.key !== 'Enter' && event.key !== ' ')) return;
      event.preventDefault();
      this.select(Number(rowEl.dataset.alertId));
    });
  }

  setCanTriage(value) {
    this.canTriage = value;
    for (const row of this.rows.values()) this.renderRow(row);
  }

  clear() {
    this.rows.clear();
    this.list.replaceChildren();
    this.selectedId = null;
    this.renderCount();
  }

  /** Merge a REST snapshot: update known rows in place, insert the others in order. */
  load(alerts) {
    for (const data of alerts) this.upsert(data, { fresh: false });
    this.renderCount();
  }

  /** Apply a live `alert` message or an API answer. Returns the previous data, if known. */
  upsert(data, { fresh = true } = {}) {
    const id = Number(data.alert_id);
    if (!Number.isFinite(id)) return null;
    const row = this.rows.get(id);
    if (row) {
      // A snapshot fetched before a live change must not undo it.
      const known = parseTime(row.data.updated_at);
      const incoming = parseTime(data.updated_at);
      if (known !== null && incoming !== null && incoming < known) return { ...row.data };
      const previous = { ...row.data };
      Object.assign(row.data, data);
      this.renderRow(row);
      if (fresh && previous.status !== row.data.status) flash(row.el, 'status-changed');
      return previous;
    }
    // An update for an alert we never saw (older than the loaded page) carries no title: skip.
    if (data.title === undefined) return null;
    const created = this.createRow({ ...data, alert_id: id });
    insertKeepingScroll(this.list, () => {
      const after = [...this.rows.keys()].filter((other) => other < id).sort((a, b) => b - a)[0];
      const before = after === undefined ? null : this.rows.get(after).el;
      this.list.insertBefore(created.el, before);
    });
    this.rows.set(id, created);
    if (fresh) flash(created.el);
    this.trim();
    this.renderCount();
    return null;
  }

  trim() {
    if (this.rows.size <= this.max) return;
    const ids = [...this.rows.keys()].sort((a, b) => a - b);
    for (const id of ids.slice(0, this.rows.size - this.max)) {
      if (id === this.selectedId) continue;
      this.rows.get(id).el.remove();
      this.rows.delete(id);
    }
  }

  createRow(data) {
    const parts = {
      sev: h('span', { class: 'sev-badge' }),
      // The title opens the alert's own page (its events, context and history).
      title: h('a', { class: 'alert-title', href: `/alerts/${data.alert_id}/` }),
      meta: h('span', { class: 'alert-meta' }),
      description: h('p', { class: 'alert-description' }),
      status: h('span', { class: 'status-badge' }),
      ack: h('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'acknowledge' }, text: 'Acknowledge' }),
      resolve: h('button', { type: 'button', class: 'btn btn-small btn-resolve', dataset: { action: 'resolve' }, text: 'Resolve' }),
      error: h('p', { class: 'row-error', role: 'alert' }),
    };
    const el = h(
      'li',
      { class: 'alert-row', tabindex: '0', dataset: { alertId: data.alert_id } },
      parts.sev,
      h('div', { class: 'alert-main' }, parts.title, parts.meta, parts.description, parts.error),
      parts.status,
      h('div', { class: 'alert-actions' }, parts.ack, parts.resolve),
    );
    const row = { data, el, parts, pending: false };
    this.renderRow(row);
    return row;
  }

  renderRow(row) {
    const { data, el, parts } = row;
    const sev = severityName(data.severity);
    const status = data.status || 'new';
    el.className = `alert-row sev-${sev} status-${status}${row.el.dataset.selected ? ' selected' : ''}`;
    el.dataset.status = status;
    parts.sev.textContent = sev;
    parts.title.textContent = data.title || `Alert #${data.alert_id}`;
    const when = parseTime(data.created_at || data.first_seen);
    const meta = [
      `#${data.alert_id}`,
      data.hostname,
      data.category,
      when ? `${formatClock(when)} UTC` : null,
      data.occurrence_count > 1 ? `×${data.occurrence_count}` : null,
      data.assigned_to ? `→ ${data.assigned_to}` : null,
    ];
    parts.meta.textContent = meta.filter(Boolean).join(' · ');
    parts.description.textContent = data.description || '';
    parts.status.textContent = status.replace('_', ' ');
    const open = OPEN_ALERT_STATUSES.has(status);
    parts.ack.hidden = !this.canTriage || !CAN_ACKNOWLEDGE.has(status);
    parts.resolve.hidden = !this.canTriage || !open;
    parts.ack.disabled = parts.resolve.disabled = row.pending;
  }

  onClick(event) {
    const rowEl = event.target.closest('.alert-row');
    if (!rowEl) return;
    const id = Number(rowEl.dataset.alertId);
    const row = this.rows.get(id);
    const button = event.target.closest('button[data-action]');
    if (button && row) {
      this.act(row, button.dataset.action);
      return;
    }
    this.select(id);
  }

  select(id) {
    const previous = this.rows.get(this.selectedId);
    if (previous) {
      delete previous.el.dataset.selected;
      previous.el.classList.remove('selected');
    }
    this.selectedId = this.selectedId === id ? null : id;
    const row = this.rows.get(this.selectedId);
    if (row) {
      row.el.dataset.selected = '1';
      row.el.classList.add('selected');
    }
  }

  async act(row, action) {
    row.pending = true;
    row.parts.error.textContent = '';
    this.renderRow(row);
    try {
      await this.onAction(row.data.alert_id, action);
    } catch (err) {
      row.parts.error.textContent = `${action} failed: ${err.message}`;
    } finally {
      row.pending = false;
      this.renderRow(row);
    }
  }

  renderCount() {
    const total = this.rows.size;
    let open = 0;
    for (const { data } of this.rows.values()) if (OPEN_ALERT_STATUSES.has(data.status)) open += 1;
    this.countEl.textContent = total ? `${open} open · ${total} shown` : '';
    this.emptyEl.hidden = total > 0;
  }
}

// --- events ------------------------------------------------------------------------------------
export class EventStream {
  constructor(tbody, { pauseButton, noteEl, max = 200, bufferMax = 2000 }) {
    Object.assign(this, { tbody, pauseButton, noteEl, max, bufferMax });
    this.paused = false;
    this.buffer = [];
    this.incoming = []; // live events waiting for the next batched insert
    this.scheduleFlush = coalesce(() => this.flush());
    this.dropped = 0;
    this.seen = new Set();
    pauseButton.addEventListener('click', () => this.setPaused(!this.paused));
  }

  clear() {
    this.tbody.replaceChildren();
    this.buffer = [];
    this.incoming = [];
    this.seen.clear();
    this.renderNote();
  }

  /**
   * Merge a REST snapshot: events not shown yet take their place by id (newest first) among the
   * rows already there, which may have arrived live while the snapshot was being fetched.
   */
  load(events) {
    const missing = events
      .filter((e) => !this.seen.has(e.event_id))
      .sort((a, b) => b.event_id - a.event_id);
    if (this.paused) {
      for (const event of [...missing].reverse()) this.add(event, { fresh: false });
      return;
    }
    for (const event of missing) this.remember(event.event_id);
    insertKeepingScroll(this.tbody.closest('.table-wrap'), () => {
      const present = [...this.tbody.rows];
      for (const event of missing) {
        const older = present.find((row) => Number(row.dataset.eventId) < event.event_id);
        this.tbody.insertBefore(this.row(event, false), older || null);
      }
      while (this.tbody.rows.length > this.max) this.tbody.lastElementChild.remove();
    });
    this.renderNote();
  }

  remember(eventId) {
    this.seen.add(eventId);
    if (this.seen.size > 5000) this.seen = new Set([...this.seen].slice(-2500));
  }

  /** A live event; returns false if it was a duplicate (e.g. replayed after a reconnect). */
  add(event, { fresh = true } = {}) {
    if (this.seen.has(event.event_id)) return false;
    this.remember(event.event_id);
    if (this.paused) {
      this.buffer.push(event);
      if (this.buffer.length > this.bufferMax) {
        this.dropped += this.buffer.length - this.bufferMax;
        this.buffer.splice(0, this.buffer.length - this.bufferMax);
      }
      this.renderNote();
      return true;
    }
    this.incoming.push([event, fresh]);
    // Only the newest `max` rows would survive the insert anyway.
    if (this.incoming.length > this.max) this.incoming.splice(0, this.incoming.length - this.max);
    this.scheduleFlush();
    return true;
  }

  flush() {
    const batch = this.incoming;
    this.incoming = [];
    if (!batch.length) return;
    const wrap = this.tbody.closest('.table-wrap');
    insertKeepingScroll(wrap, () => {
      const rows = batch.map(([event, fresh]) => this.row(event, fresh));
      this.tbody.prepend(...rows.reverse());
      while (this.tbody.rows.length > this.max) this.tbody.lastElementChild.remove();
    });
    this.renderNote();
  }

  row(event, fresh) {
    const sev = severityName(event.severity);
    const when = parseTime(event.timestamp) ?? parseTime(event.received_at);
    const ai = typeof event.ai_score === 'number' ? String(event.ai_score) : '';
    return h(
      'tr',
      { class: `event-row sev-${sev}${fresh ? ' fresh' : ''}`, dataset: { eventId: event.event_id } },
      h('td', { class: 'mono', text: when ? formatClock(when) : '' }),
      h('td', {}, h('span', { class: 'sev-badge', text: sev })),
      h('td', { class: 'strong', text: event.computer }),
      h('td', { class: 'mono', text: event.event_code }),
      h('td', { class: 'msg', text: event.message, title: event.message }),
      h('td', { class: 'muted', text: event.source_type }),
      h('td', { class: `mono ai${event.ai_score > 70 ? ' ai-high' : ''}`, text: ai }),
    );
  }

  setPaused(paused) {
    this.paused = paused;
    this.pauseButton.setAttribute('aria-pressed', String(paused));
    this.tbody.closest('.panel').classList.toggle('paused', paused);
    if (!paused && this.buffer.length) {
      const pending = this.buffer;
      this.buffer = [];
      this.dropped = 0;
      for (const event of pending.slice(-this.max)) this.incoming.push([event, false]);
      this.flush();
    }
    this.renderNote();
  }

  renderNote() {
    const waiting = this.buffer.length + this.dropped;
    this.pauseButton.textContent = this.paused ? `Resume${waiting ? ` · ${formatNumber(waiting)} new` : ''}` : 'Pause';
    this.noteEl.textContent = this.paused ? 'paused' : `${this.tbody.rows.length} shown`;
  }
}

// --- agents ------------------------------------------------------------------------------------
// Heartbeats are not broadcast (only status changes are), so an online agent's `last_seen` here
// would only grow stale; the age is shown where it matters: how long an offline agent is silent.
function seenText(data) {
  return data.status === 'offline' ? `last seen ${formatAgo(parseTime(data.last_seen))}` : '';
}

export class AgentList {
  constructor(list, { emptyEl, noteEl }) {
    Object.assign(this, { list, emptyEl, noteEl });
    this.rows = new Map(); // agent_id → {data, el, parts}
    setInterval(() => this.renderAges(), 15000);
  }

  clear() {
    this.rows.clear();
    this.list.replaceChildren();
    this.render();
  }

  load(agents) {
    for (const data of agents) this.upsert(data, { fresh: false });
  }

  /** Returns the previous status of a known agent (or null). */
  upsert(data, { fresh = true } = {}) {
    const id = String(data.agent_id);
    let row = this.rows.get(id);
    const previous = row ? row.data.status : null;
    if (!row) {
      const parts = {
        dot: h('span', { class: 'agent-dot', 'aria-hidden': 'true' }),
        name: h('span', { class: 'agent-name' }),
        status: h('span', { class: 'agent-status' }),
        seen: h('span', { class: 'agent-seen' }),
      };
      row = { data: { ...data }, el: h('li', { class: 'agent-row', dataset: { agentId: id } }, parts.dot, parts.name, parts.status, parts.seen), parts };
      this.rows.set(id, row);
    } else {
      Object.assign(row.data, data);
    }
    this.renderRow(row);
    if (fresh && previous !== row.data.status) flash(row.el);
    this.render();
    return previous;
  }

  renderRow({ data, el, parts }) {
    el.className = `agent-row agent-${data.status}`;
    el.dataset.status = data.status;
    parts.name.textContent = data.hostname;
    parts.name.title = [data.ip_address, data.os, data.version].filter(Boolean).join(' · ');
    parts.status.textContent = data.status;
    parts.seen.textContent = seenText(data);
  }

  renderAges() {
    for (const row of this.rows.values()) row.parts.seen.textContent = seenText(row.data);
  }

  /** Offline first (that is what needs attention), then by host name. */
  render() {
    const rows = [...this.rows.values()].sort(
      (a, b) => (a.data.status === 'offline' ? 0 : 1) - (b.data.status === 'offline' ? 0 : 1)
        || a.data.hostname.localeCompare(b.data.hostname),
    );
    rows.forEach((row, i) => {
      if (this.list.children[i] !== row.el) this.list.insertBefore(row.el, this.list.children[i] || null);
    });
    const offline = rows.filter((r) => r.data.status === 'offline').length;
    this.noteEl.textContent = rows.length ? `${rows.length - offline} online · ${offline} offline` : '';
    this.emptyEl.hidden = rows.length > 0;
  }
}
