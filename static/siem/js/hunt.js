// The hunting page (/events/): query, time range, histogram, top values, results with their raw
// records, saved searches, export and a live tail over /ws/events. The URL holds the query and
// the range (`?q=…&range=24h` or `?q=…&since=…&until=…`), so a search can be shared as a link.

import { listOf } from './api.js';
import { Histogram } from './histogram.js';
import { $, formatNumber, h, severityName, toast } from './dom.js';
import { LiveConnection } from './live.js';
import { createShell, session } from './shell.js';

const WS_PATH = document.body.dataset.wsPath;
const PRESETS = { '15m': 15 * 60e3, '1h': 3600e3, '24h': 24 * 3600e3, '7d': 7 * 24 * 3600e3 };
const PAGE_SIZE = 100;
const LINK_FIELDS = { computer: 'computer', user_name: 'user_name', source_ip: 'source_ip' };
// Raw fields that name a host, a user or an address: their values link to a search too.
const RAW_LINKS = /^(Computer|WorkstationName|Workstation|TargetUserName|SubjectUserName|User|AccountName|IpAddress|SourceAddress|DestAddress|SourceIp|DestinationIp|ClientAddress)$/;

// The analysts' shared frame (shell.js): sign-in, sign-out, the REST client, socket tickets.
const shell = createShell({ onSignedIn: startPage, onSignedOut: stopTail });
const { api } = shell;

const state = { q: '', range: '24h', since: null, until: null, page: 1, next: false, shown: new Set(), me: null };
let live = null;
let tailTimer = null;
let searchSeq = 0;
const histogram = new Histogram($('histogram'), {
  onPick: (start, end) => {
    setCustomRange(new Date(start), new Date(end));
    runSearch({ push: true });
  },
});

async function startPage(me) {
  state.me = me;
  readUrl();
  await Promise.all([runSearch({ push: false }), loadSaved()]);
}

// --- URL and time range -------------------------------------------------------------------------
function readUrl() {
  const params = new URLSearchParams(window.location.search);
  state.q = params.get('q') || '';
  $('q').value = state.q;
  const since = params.get('since');
  const until = params.get('until');
  if (since && !Number.isNaN(Date.parse(since))) {
    setCustomRange(new Date(since), until && !Number.isNaN(Date.parse(until)) ? new Date(until) : new Date());
  } else {
    state.range = PRESETS[params.get('range')] ? params.get('range') : '24h';
    $('range').value = state.range;
    showCustom(false);
  }
}

function writeUrl(push) {
  const params = new URLSearchParams();
  if (state.q) params.set('q', state.q);
  if (state.range === 'custom') {
    params.set('since', state.since.toISOString());
    params.set('until', state.until.toISOString());
  } else {
    params.set('range', state.range);
  }
  const url = `${window.location.pathname}?${params}`;
  if (url === `${window.location.pathname}${window.location.search}`) return;
  if (push) window.history.pushState(null, '', url);
  else window.history.replaceState(null, '', url);
}

window.addEventListener('popstate', () => {
  readUrl();
  runSearch({ push: false });
});

function setCustomRange(since, until) {
  state.range = 'custom';
  state.since = since;
  state.until = until;
  $('range').value = 'custom';
  $('since').value = toLocalInput(since);
  $('until').value = toLocalInput(until);
  showCustom(true);
}

function showCustom(shown) {
  $('since').hidden = !shown;
  $('until').hidden = !shown;
}

/** datetime-local inputs hold UTC here (the page speaks UTC, like the dashboard). */
function toLocalInput(date) {
  return date.toISOString().slice(0, 19);
}

function fromLocalInput(value) {
  const ms = Date.parse(`${value}Z`);
  return Number.isNaN(ms) ? null : new Date(ms);
}

/** {since, until} ISO strings of the current range; presets end now. */
function currentRange() {
  if (state.range === 'custom') return { since: state.since.toISOString(), until: state.until.toISOString() };
  const until = new Date();
  return { since: new Date(until.getTime() - PRESETS[state.range]).toISOString(), until: until.toISOString() };
}

$('range').addEventListener('change', () => {
  const value = $('range').value;
  if (value === 'custom') {
    const { since, until } = currentRange();
    setCustomRange(new Date(since), new Date(until));
    $('since').focus();
    return;
  }
  state.range = value;
  showCustom(false);
  runSearch({ push: true });
});

for (const id of ['since', 'until']) {
  $(id).addEventListener('change', () => {
    const since = fromLocalInput($('since').value);
    const until = fromLocalInput($('until').value);
    if (since && until) {
      state.since = since;
      state.until = until;
    }
  });
}

$('query-form').addEventListener('submit', (event) => {
  event.preventDefault();
  state.q = $('q').value.trim();
  runSearch({ push: true });
});

document.addEventListener('keydown', (event) => {
  if (event.key === '/' && !['INPUT', 'TEXTAREA', 'SELECT'].includes(document.activeElement.tagName)) {
    event.preventDefault();
    $('q').focus();
  }
});

// --- search -------------------------------------------------------------------------------------
function queryParams(extra = {}) {
  const params = new URLSearchParams({ ...currentRange(), ...extra });
  if (state.q) params.set('q', state.q);
  return params;
}

function showQueryError(err) {
  const box = $('q-error');
  if (err) {
    box.textContent = err.body && err.body.q ? `Query: ${err.body.q.join(' ')}` : err.message;
    box.hidden = false;
    $('q').setAttribute('aria-invalid', 'true');
  } else {
    box.hidden = true;
    $('q').removeAttribute('aria-invalid');
  }
}

async function runSearch({ push }) {
  const seq = ++searchSeq;
  writeUrl(push);
  $('app').dataset.search = 'loading';
  state.page = 1;
  const results = api.get(`/events/?${queryParams({ page_size: PAGE_SIZE, page: 1 })}`);
  const buckets = api.get(`/events/histogram/?${queryParams()}`);
  try {
    const [page, hist] = await Promise.all([results, buckets]);
    if (seq !== searchSeq) return;
    showQueryError(null);
    showResults(page, { replace: true });
    histogram.set(hist);
    $('hits').textContent = `${formatNumber(page.count)} matching`;
    loadFacets();
  } catch (err) {
    if (seq !== searchSeq || err.status === 401) return;
    showQueryError(err);
  } finally {
    if (seq === searchSeq) $('app').dataset.search = 'done';
  }
  if ($('tail').checked) startTail();
}

function showResults(page, { replace }) {
  const tbody = $('results');
  if (replace) {
    tbody.replaceChildren();
    state.shown.clear();
  }
  for (const event of listOf(page)) {
    if (state.shown.has(event.event_id)) continue;
    state.shown.add(event.event_id);
    tbody.append(...eventRows(event));
  }
  state.next = Boolean(page.next);
  $('more').hidden = !state.next;
  $('results-empty').hidden = state.shown.size > 0;
  $('results-note').textContent = `${formatNumber(state.shown.size)} of ${formatNumber(page.count)} shown`;
}

$('more').addEventListener('click', async () => {
  state.page += 1;
  try {
    showResults(await api.get(`/events/?${queryParams({ page_size: PAGE_SIZE, page: state.page })}`), { replace: false });
  } catch (err) {
    toast({ kind: 'error', title: 'Could not load more events', body: err.message });
  }
});

/** A link to the hunting page for `field:"value"` over the current range. */
export function huntLink(field, value, text = value) {
  const params = new URLSearchParams({ q: `${field}:${quote(value)}` });
  if (state.range === 'custom') {
    params.set('since', state.since.toISOString());
    params.set('until', state.until.toISOString());
  } else params.set('range', state.range);
  return h('a', { href: `/events/?${params}`, class: 'pivot', title: `Search ${field}:${value}`, text });
}

function quote(value) {
  return `"${String(value).replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function eventRows(event) {
  const sev = severityName(event.severity);
  const cell = (field) => (event[field] ? huntLink(LINK_FIELDS[field], event[field]) : '');
  const row = h(
    'tr',
    { class: `event-row sev-${sev}`, tabindex: '0', 'aria-expanded': 'false', dataset: { eventId: event.event_id } },
    h('td', { class: 'mono', text: event.timestamp.slice(5, 19).replace('T', ' '), title: event.timestamp }),
    h('td', {}, h('span', { class: 'sev-badge', text: sev })),
    h('td', { class: 'strong' }, cell('computer')),
    h('td', { class: 'mono', text: event.event_code }),
    h('td', {}, cell('user_name')),
    h('td', { class: 'mono' }, cell('source_ip')),
    h('td', { class: 'msg', text: event.message, title: event.message }),
  );
  const detail = h('tr', { class: 'event-detail', hidden: true }, h('td', { colspan: '7' }, rawRecord(event)));
  const toggle = (e) => {
    if (e.target.closest('a')) return;
    const open = detail.hidden;
    detail.hidden = !open;
    row.setAttribute('aria-expanded', String(open));
  };
  row.addEventListener('click', toggle);
  row.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      toggle(e);
    }
  });
  return [row, detail];
}

function rawRecord(event) {
  const fields = Object.entries(event.raw || {});
  const list = h('dl', { class: 'raw' });
  const summary = [
    ['event_id', event.event_id],
    ['source_type', event.source_type],
    ['ai_score', event.ai_score],
    ['ai_category', event.ai_category],
  ].filter(([, v]) => v !== null && v !== undefined && v !== '');
  for (const [key, value] of [...summary, ...fields]) {
    const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
    const isScalar = typeof value !== 'object' || value === null;
    list.append(
      h('dt', { class: 'mono', text: key }),
      h('dd', { class: 'mono' }, RAW_LINKS.test(key) && isScalar && text ? huntLink(key, text) : text),
    );
  }
  if (!fields.length) list.append(h('dt', { text: 'raw' }), h('dd', { class: 'muted', text: 'no raw record' }));
  return list;
}

// --- top values ---------------------------------------------------------------------------------
async function loadFacets() {
  const field = $('facet-field').value.trim() || 'computer';
  const list = $('facets');
  try {
    const answer = await api.get(`/events/facets/?${queryParams({ field })}`);
    const max = Math.max(1, ...answer.values.map((v) => v.count));
    list.replaceChildren(
      ...answer.values.map(({ value, count }) => {
        const bar = h('span', { class: 'facet-bar' });
        bar.style.width = `${Math.round((count / max) * 100)}%`;
        return h(
          'li',
          { class: 'facet', dataset: { value: String(value) } },
          h('span', { class: 'facet-value mono', title: String(value), text: String(value) }),
          h('span', { class: 'facet-count', text: formatNumber(count) }),
          h('button', { type: 'button', class: 'btn btn-small facet-in', 'aria-label': `Only ${field} ${value}`, title: `${field}:${value}`, text: '+', onclick: () => addFilter(field, value, false) }),
          h('button', { type: 'button', class: 'btn btn-small facet-out', 'aria-label': `Not ${field} ${value}`, title: `NOT ${field}:${value}`, text: '−', onclick: () => addFilter(field, value, true) }),
          bar,
        );
      }),
    );
    $('facets-empty').hidden = answer.values.length > 0;
    // A raw field is counted over the newest matching events only when many match.
    const sampled = $('facets-sampled');
    sampled.hidden = !answer.sampled;
    sampled.textContent = answer.sampled ? `Counted over the newest ${formatNumber(answer.sample_size)} matching events.` : '';
  } catch (err) {
    if (err.status !== 401) toast({ kind: 'error', title: 'Could not load top values', body: err.message });
  }
}

$('facet-field').addEventListener('change', loadFacets);

function addFilter(field, value, negate) {
  const term = `${negate ? 'NOT ' : ''}${field}:${quote(value)}`;
  const current = $('q').value.trim();
  const base = /\bor\b/i.test(current) ? `(${current})` : current;
  state.q = base ? `${base} AND ${term}` : term;
  $('q').value = state.q;
  runSearch({ push: true });
}

// --- saved searches -----------------------------------------------------------------------------
async function loadSaved() {
  try {
    const searches = await api.get('/searches/');
    $('saved').replaceChildren(
      ...searches.map((search) => {
        const mine = state.me && search.owner === state.me.username;
        return h(
          'li',
          { class: 'saved-item', dataset: { searchId: search.search_id } },
          h('button', { type: 'button', class: 'linkish saved-load', title: search.q, text: search.name, onclick: () => {
            state.q = search.q;
            $('q').value = search.q;
            runSearch({ push: true });
          } }),
          h('span', { class: 'muted saved-meta', text: search.shared ? `shared · ${search.owner}` : 'private' }),
          mine
            ? h('button', { type: 'button', class: 'btn btn-small saved-delete', 'aria-label': `Delete ${search.name}`, text: '×', onclick: () => deleteSaved(search) })
            : null,
        );
      }),
    );
  } catch (err) {
    if (err.status !== 401) toast({ kind: 'error', title: 'Could not load saved searches', body: err.message });
  }
}

$('save-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const name = $('save-name').value.trim();
  if (!name) {
    $('save-name').focus();
    return;
  }
  try {
    await api.post('/searches/', { name, q: $('q').value.trim(), shared: $('save-shared').checked });
    $('save-name').value = '';
    toast({ kind: 'info', title: 'Search saved', body: name, timeoutMs: 4000 });
    await loadSaved();
  } catch (err) {
    toast({ kind: 'error', title: 'Could not save the search', body: err.message });
  }
});

async function deleteSaved(search) {
  try {
    await api.del(`/searches/${search.search_id}/`);
    await loadSaved();
  } catch (err) {
    toast({ kind: 'error', title: 'Could not delete the search', body: err.message });
  }
}

// --- export -------------------------------------------------------------------------------------
async function exportAs(format) {
  // The token is not a cookie, so a plain link would be refused: fetch, then hand over a file.
  try {
    const response = await fetch(`${API_BASE}/events/export/?${queryParams({ format })}`, {
      headers: { Authorization: `Bearer ${session.token}` },
      credentials: 'omit',
      cache: 'no-store',
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const name = (response.headers.get('Content-Disposition') || '').match(/filename="([^"]+)"/);
    const link = h('a', { href: url, download: name ? name[1] : `events.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    toast({ kind: 'error', title: 'Export failed', body: err.message });
  }
}

$('export-csv').addEventListener('click', () => exportAs('csv'));
$('export-jsonl').addEventListener('click', () => exportAs('jsonl'));

// --- live tail ----------------------------------------------------------------------------------
// An `event` message carries the stored columns, not the raw record, so whether a new event
// matches is asked of the server: the newest page of the same query, merged by event_id.
$('tail').addEventListener('change', () => {
  if ($('tail').checked) {
    if (state.range === 'custom') {
      state.range = '24h';
      $('range').value = '24h';
      showCustom(false);
      writeUrl(false);
    }
    startTail();
  } else stopTail();
});

function startTail() {
  if (live) return;
  live = new LiveConnection({
    path: WS_PATH,
    credential: shell.wsCredential,
    onMessage: (msg) => {
      if (msg.type === 'event') scheduleTail();
    },
    onState: showConnection,
    onAuthLost: (reason) => {
      toast({ kind: 'error', title: 'Live tail refused', body: reason });
      return false;
    },
    onGap: () => scheduleTail(),
  });
  live.start();
}

function stopTail() {
  if (live) live.stop();
  live = null;
  clearTimeout(tailTimer);
  showConnection({ state: 'stopped' });
}

function scheduleTail() {
  clearTimeout(tailTimer);
  tailTimer = setTimeout(tailFetch, 400);
}

async function tailFetch() {
  try {
    const page = await api.get(`/events/?${queryParams({ page_size: PAGE_SIZE, page: 1 })}`);
    const fresh = listOf(page).filter((event) => !state.shown.has(event.event_id));
    const tbody = $('results');
    for (const event of fresh.reverse()) {
      state.shown.add(event.event_id);
      const [row, detail] = eventRows(event);
      row.classList.add('fresh');
      tbody.prepend(row, detail);
      histogram.add(Date.parse(event.timestamp));
    }
    if (fresh.length) {
      $('hits').textContent = `${formatNumber(page.count)} matching`;
      $('results-empty').hidden = true;
      $('results-note').textContent = `${formatNumber(state.shown.size)} of ${formatNumber(page.count)} shown`;
    }
  } catch (err) {
    if (err.status !== 401) toast({ kind: 'error', title: 'Live tail', body: err.message });
  }
}

function showConnection({ state: connState }) {
  const box = $('connection');
  box.dataset.state = connState;
  $('connection-text').textContent = {
    live: 'Live tail',
    connecting: 'Connecting…',
    reconnecting: 'Reconnecting…',
    auth: 'Tail refused',
  }[connState] || 'Tail off';
}

// --- boot ---------------------------------------------------------------------------------------
shell.boot();
