// The admin alert list, live: a banner for alerts that arrive while the analyst is on the page,
// and status / assignee changes made elsewhere applied to the visible rows in place.

import { h, severityName } from './dom.js';
import { LiveConnection } from './live.js';

const root = document.getElementById('live-alerts');
const stateEl = document.getElementById('live-alerts-state');
const newBox = document.getElementById('live-alerts-new');
const newList = document.getElementById('live-alerts-list');
const countEl = document.getElementById('live-alerts-count');
const arrived = new Map(); // alert_id → data, newest last
let interrupted = false; // some updates may have been missed
const SHOWN = 5;

document.getElementById('live-alerts-reload').addEventListener('click', (event) => {
  event.preventDefault();
  window.location.reload();
});

/** A one-time ticket for this admin session (the page never holds a bearer token). */
async function credential() {
  const response = await fetch(root.dataset.ticketUrl, {
    method: 'POST',
    headers: { 'X-CSRFToken': root.dataset.csrf, Accept: 'application/json' },
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (!response.ok) {
    const error = new Error(
      response.status === 403 ? 'your admin session has ended — reload to sign in' : `HTTP ${response.status}`,
    );
    error.status = response.status;
    throw error;
  }
  return { ticket: (await response.json()).ticket };
}

function changeUrl(id) {
  const base = window.location.pathname.endsWith('/') ? window.location.pathname : `${window.location.pathname}/`;
  return `${base}${id}/change/`;
}

/** The visible row of an alert: by its action checkbox, or by the link to its change page. */
function findRow(id) {
  const box = document.querySelector(`#result_list input.action-select[value="${CSS.escape(String(id))}"]`);
  if (box) return box.closest('tr');
  const link = document.querySelector(`#result_list a[href$="/${CSS.escape(String(id))}/change/"]`);
  return link ? link.closest('tr') : null;
}

function showArrived() {
  const count = arrived.size;
  newBox.hidden = count === 0 && !interrupted;
  countEl.textContent = interrupted
    ? 'Live updates were interrupted: reload the list to see every change'
    : `${count} new alert${count === 1 ? '' : 's'} since this list was loaded`;
  const newest = [...arrived.values()].slice(-SHOWN).reverse();
  newList.replaceChildren(
    ...newest.map((a) => {
      const sev = severityName(a.severity);
      return h(
        'li',
        { dataset: { alertId: a.alert_id } },
        h('span', { class: `live-sev live-sev-${sev}`, text: sev }),
        h('a', { href: changeUrl(a.alert_id), text: `#${a.alert_id} ${a.title}` }),
        h('span', { class: 'quiet', text: [a.hostname, a.category].filter(Boolean).join(' · ') }),
      );
    }),
  );
}

function applyToRow(data) {
  const row = findRow(data.alert_id);
  if (!row) return;
  const status = row.querySelector('td.field-status, th.field-status');
  if (status && data.status) status.textContent = data.status.replace('_', ' ');
  const assignee = row.querySelector('td.field-assigned_to');
  if (assignee && data.assigned_to !== undefined) assignee.textContent = data.assigned_to || '-';
  const repeats = row.querySelector('td.field-occurrence_count');
  if (repeats && data.occurrence_count !== undefined) repeats.textContent = String(data.occurrence_count);
  row.classList.remove('live-updated');
  void row.offsetWidth; // restart the highlight animation
  row.classList.add('live-updated');
}

function onMessage(msg) {
  if (msg.type !== 'alert') return;
  const data = msg.data || {};
  if (msg.action === 'created' && !findRow(data.alert_id)) {
    arrived.set(data.alert_id, data);
    showArrived();
  } else {
    if (arrived.has(data.alert_id)) Object.assign(arrived.get(data.alert_id), data);
    applyToRow(data);
  }
}

function onState({ state, reason }) {
  root.dataset.state = state;
  const text = {
    connecting: 'Connecting to live updates…',
    live: 'Live: new alerts and status changes appear here as they happen.',
    reconnecting: `Live updates interrupted (${reason}); reconnecting…`,
    auth: `Live updates stopped: ${reason}.`,
    stopped: 'Live updates stopped.',
  };
  stateEl.textContent = text[state] || state;
}

new LiveConnection({
  path: root.dataset.wsPath,
  credential,
  onMessage,
  onState,
  // The ticket's session is short-lived by design: when the socket outlives it (4003), get a new
  // ticket. A dead admin session makes `credential()` fail with 403, which stops the loop.
  onAuthLost: () => true,
  // Updates may have been missed (the history did not reach back far enough): the list itself
  // is the snapshot, so say so and offer the reload.
  onGap: () => {
    interrupted = true;
    showArrived();
  },
}).start();
