// The alert page (/alerts/<id>/): what fired and why, where and who, every event it counted,
// its cases and history — kept current over /ws/alerts and /ws/incidents.

import { listOf } from './api.js';
import {
  CommentList,
  commentForm,
  debounce,
  errorReporter,
  drawBuckets,
  formatTime,
  huntLink,
  renderTimeline,
  setPill,
  setSeverity,
  subscribe,
} from './cases.js';
import { $, h, severityName, toast } from './dom.js';
import { createShell, TRIAGE_ROLES } from './shell.js';

const ALERT_ID = Number(document.body.dataset.alertId);
const EVENTS_PAGE = 25;
const OPEN = new Set(['new', 'acknowledged', 'investigating']);
// Entity kind → [label, query-language field on the hunting page].
const ENTITY_FIELDS = [
  ['hosts', 'Host', 'computer'],
  ['users', 'User', 'user_name'],
  ['source_ips', 'Source IP', 'source_ip'],
  ['logon_types', 'Logon type', 'LogonType'],
  ['processes', 'Process', 'ProcessName'],
];

const shell = createShell({ onSignedIn: start, onSignedOut: stop });
const { api } = shell;
const comments = new CommentList($('comments'));
let connections = [];
let alert = null;
let canTriage = false;
let eventsPage = 1;
let occurrenceBuckets = [];

const { fail, guarded } = errorReporter('Alert page');

// --- loading ---------------------------------------------------------------------------------
async function start(me) {
  canTriage = TRIAGE_ROLES.has(me.role);
  connections = subscribe(['alerts', 'incidents'], { shell, onMessage, onGap: reloadAll });
  await reloadAll();
  if (canTriage) await loadUsers();
}

function stop() {
  for (const live of connections) live.stop();
  connections = [];
}

async function reloadAll() {
  $('app').dataset.loaded = 'loading';
  const ok = await loadAlert();
  if (ok) {
    await Promise.all([loadEvents(eventsPage), loadComments(), loadRelated(), loadOccurrences()]);
  }
  $('app').dataset.loaded = 'loaded';
}

async function loadAlert() {
  try {
    alert = await api.get(`/alerts/${ALERT_ID}/`);
  } catch (err) {
    if (err.status === 404) {
      $('alert-title').textContent = `Alert #${ALERT_ID} does not exist`;
      return false;
    }
    if (err.status !== 401) fail(err.message);
    return false;
  }
  renderAlert();
  await loadIncidents();
  return true;
}

async function loadEvents(page) {
  const answer = await guarded(() => api.get(`/alerts/${ALERT_ID}/events/?page=${page}&page_size=${EVENTS_PAGE}`));
  if (!answer) return;
  eventsPage = page;
  renderEvents(listOf(answer), answer.count);
  $('events-prev').disabled = !answer.previous;
  $('events-next').disabled = !answer.next;
  renderAi(listOf(answer));
}

async function loadComments() {
  const answer = await guarded(() => api.get(`/alerts/${ALERT_ID}/comments/`));
  if (answer) comments.load(answer);
}

async function loadRelated() {
  const answer = await guarded(() => api.get(`/alerts/${ALERT_ID}/related/`));
  if (!answer) return;
  $('related').replaceChildren(
    ...(answer.length
      ? answer.map((other) =>
          h(
            'li',
            {},
            h('a', { href: `/alerts/${other.alert_id}/`, text: `#${other.alert_id} ${other.title}` }),
            ` · ${severityName(other.severity)} · ${other.status.replace('_', ' ')} · `,
            other.hostname ? huntLink('computer', other.hostname) : 'no host',
          ),
        )
      : [h('li', { class: 'muted', text: 'None.' })]),
  );
}

async function loadOccurrences() {
  const answer = await guarded(() => api.get(`/alerts/${ALERT_ID}/occurrences/`));
  if (!answer) return;
  occurrenceBuckets = answer.buckets;
  const minutes = answer.interval_sec >= 60 ? `${answer.interval_sec / 60} min` : `${answer.interval_sec} s`;
  $('occ-note').textContent = `per ${minutes}`;
  drawBuckets($('occ-chart'), occurrenceBuckets);
}

async function loadIncidents() {
  const ids = alert.incident_ids || [];
  const incidents = await Promise.all(ids.map((id) => guarded(() => api.get(`/incidents/${id}/`))));
  $('incident-list').replaceChildren(
    ...(ids.length
      ? incidents.filter(Boolean).map((incident) =>
          h(
            'li',
            {},
            h('a', { href: `/incidents/${incident.incident_id}/`, text: `#${incident.incident_id} ${incident.title}` }),
            ` · ${incident.status}`,
          ),
        )
      : [h('li', { class: 'muted', text: 'Not part of an incident.' })]),
  );
}

async function loadUsers() {
  const users = await guarded(() => api.get('/users/'));
  if (!users) return;
  const select = $('assign-user');
  select.replaceChildren(...users.map((user) => h('option', { value: user.username, text: `${user.username} (${user.role})` })));
  if (alert && alert.assigned_to) select.value = alert.assigned_to;
}

async function loadOpenIncidents() {
  const page = await guarded(() => api.get('/incidents/?status=open&status=investigating&status=escalated&page_size=100'));
  if (!page) return;
  const mine = new Set(alert.incident_ids || []);
  $('incident-existing').replaceChildren(
    h('option', { value: '', text: 'an open incident…' }),
    ...listOf(page)
      .filter((incident) => !mine.has(incident.incident_id))
      .map((incident) => h('option', { value: incident.incident_id, text: `#${incident.incident_id} ${incident.title}` })),
  );
}

// --- rendering -------------------------------------------------------------------------------
function renderAlert() {
  document.title = `SIEM · Alert #${alert.alert_id} ${alert.title}`;
  $('alert-title').textContent = alert.title;
  setSeverity($('alert-severity'), alert.severity);
  setPill($('alert-status'), 'status', alert.status);
  const summary = $('alert-summary');
  summary.replaceChildren(
    `#${alert.alert_id} · ${alert.category} · `,
    alert.hostname ? huntLink('computer', alert.hostname) : 'no host',
    ` · ×${alert.occurrence_count} · first ${formatTime(alert.first_seen)} · last ${formatTime(alert.last_seen)} · assigned to `,
    h('strong', { id: 'alert-assignee', text: alert.assigned_to || 'nobody' }),
  );
  if (alert.resolution) summary.append(` · resolution: ${alert.resolution}`);
  renderRule();
  renderEntities();
  renderTimeline($('timeline'), alert.timeline || []);
  const open = OPEN.has(alert.status);
  $('alert-actions').hidden = !canTriage;
  $('act-acknowledge').hidden = alert.status !== 'new';
  for (const id of ['act-assign', 'assign-user', 'act-resolve', 'act-false-positive', 'resolution']) $(id).hidden = !open;
  $('act-reopen').hidden = open;
  $('comment-form').hidden = !canTriage;
  $('incident-actions').hidden = !canTriage;
  if (alert.assigned_to && $('assign-user').querySelector(`option[value="${CSS.escape(alert.assigned_to)}"]`)) {
    $('assign-user').value = alert.assigned_to;
  }
}

function renderRule() {
  const rule = alert.rule;
  const facts = [];
  if (rule) {
    const ruleLink = h('a', { href: `/rules/?${new URLSearchParams({ rule: rule.id })}`, text: rule.name, title: 'The rule: hits, exceptions, coverage' });
    facts.push(['Rule', ruleLink], ['Source', rule.source === 'sigma' ? 'Sigma' : 'built-in'], ['Level', rule.level || '–'], ['Rule id', rule.id]);
  } else {
    facts.push(['Raised by', alert.source === 'ai' ? 'the AI analyzer' : 'hand (manual alert)']);
  }
  for (const also of alert.also_matched_by || []) {
    const events = also.event_ids.length === 1 ? '1 event' : `${also.event_ids.length} events`;
    facts.push(['Also matched by', `${also.name} (${also.source === 'sigma' ? 'Sigma' : 'built-in'}, ${also.level || '–'}, ${events}) · ${also.id}`]);
  }
  if (alert.description) facts.push(['Description', alert.description]);
  $('rule').replaceChildren(...facts.flatMap(([term, value]) => [h('dt', { text: term }), h('dd', {}, value)]));
  $('rule-text-box').hidden = !rule;
  $('rule-text').textContent = '';
  $('mitre').replaceChildren(
    ...(alert.mitre.length
      ? alert.mitre.map((t) =>
          h('li', {}, h('strong', { text: t.id }), ` ${t.name}`, t.tactic ? h('span', { class: 'muted', text: ` · ${t.tactic}` }) : null),
        )
      : [h('li', { class: 'muted', text: 'No ATT&CK technique.' })]),
  );
}

$('rule-text-box').addEventListener('toggle', async () => {
  if (!$('rule-text-box').open || $('rule-text').textContent || !alert.rule) return;
  const doc = await guarded(() => api.get(`/rules/${encodeURIComponent(alert.rule.id)}/`));
  if (doc) $('rule-text').textContent = doc.text || '(The rule file is not readable on this server.)';
});

function renderEntities() {
  const dl = $('entities');
  dl.replaceChildren();
  for (const [kind, label, field] of ENTITY_FIELDS) {
    const values = alert.entities[kind] || [];
    dl.append(
      h('dt', { text: label }),
      h('dd', { dataset: { entity: kind } }, ...(values.length ? values.map((v) => huntLink(field, v)) : ['–'])),
    );
  }
}

function renderEvents(events, count) {
  const first = (eventsPage - 1) * EVENTS_PAGE + 1;
  $('events-note').textContent = count ? `${first}–${first + events.length - 1} of ${count}` : 'none';
  const rows = [];
  for (const event of events) {
    const raw = h('tr', { class: 'raw-row', hidden: true }, h('td', { colspan: '8' }, rawFields(event)));
    const toggle = h('button', {
      type: 'button',
      class: 'btn btn-small',
      'aria-expanded': 'false',
      'aria-label': `Raw record of event ${event.event_id}`,
      text: 'Raw',
    });
    toggle.addEventListener('click', () => {
      raw.hidden = !raw.hidden;
      toggle.setAttribute('aria-expanded', String(!raw.hidden));
    });
    rows.push(
      h(
        'tr',
        { class: `event-row sev-${severityName(event.severity)}`, dataset: { eventId: event.event_id } },
        h('td', { class: 'mono', text: formatTime(event.timestamp).slice(0, 19) }),
        h('td', {}, h('span', { class: 'sev-badge', text: severityName(event.severity) })),
        h('td', {}, huntLink('computer', event.computer)),
        h('td', { class: 'mono', text: event.event_code }),
        h('td', {}, event.user_name ? huntLink('user_name', event.user_name) : ''),
        h('td', {}, event.source_ip ? huntLink('source_ip', event.source_ip) : ''),
        h('td', { text: event.message }),
        h('td', {}, toggle),
      ),
      raw,
    );
  }
  $('event-rows').replaceChildren(...rows);
}

/** The raw Windows record, one field per line (nested values as JSON). */
function rawFields(event) {
  const entries = Object.entries(event.raw || {});
  if (!entries.length) return h('span', { class: 'muted', text: 'No raw record.' });
  return h(
    'dl',
    { class: 'raw-fields' },
    ...entries.flatMap(([key, value]) => [
      h('dt', { text: key }),
      h('dd', { text: typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value) }),
    ]),
  );
}

function renderAi(events) {
  const analyzed = events.filter((e) => e.ai_score !== null && e.ai_score !== undefined).sort((a, b) => b.ai_score - a.ai_score);
  const box = $('ai');
  if (alert.source === 'ai') {
    box.replaceChildren(h('p', { text: alert.description }));
    return;
  }
  if (!analyzed.length) {
    box.replaceChildren(h('p', { class: 'muted', text: 'No event on this page has been analyzed yet.' }));
    return;
  }
  box.replaceChildren(
    ...analyzed.slice(0, 3).map((e) =>
      h('p', {}, h('strong', { text: `Score ${e.ai_score}` }), ` · ${e.ai_category || 'uncategorized'} · event #${e.event_id}: `, e.ai_description || ''),
    ),
  );
}

// --- actions ---------------------------------------------------------------------------------
async function act(path, body = {}) {
  const answer = await guarded(() => api.post(`/alerts/${ALERT_ID}/${path}/`, body));
  if (answer) {
    alert = answer;
    renderAlert();
    await loadIncidents();
  }
}

$('act-acknowledge').addEventListener('click', () => act('acknowledge'));
$('act-assign').addEventListener('click', () => act('assign', { assigned_to: $('assign-user').value || null }));
$('act-resolve').addEventListener('click', () => act('resolve', { resolution: $('resolution').value.trim() }));
$('act-false-positive').addEventListener('click', () =>
  act('resolve', { resolution: $('resolution').value.trim(), false_positive: true }),
);
$('act-reopen').addEventListener('click', async () => {
  const answer = await guarded(() => api.patch(`/alerts/${ALERT_ID}/`, { status: 'new' }));
  if (answer) {
    alert = answer;
    renderAlert();
  }
});
$('events-prev').addEventListener('click', () => loadEvents(eventsPage - 1));
$('events-next').addEventListener('click', () => loadEvents(eventsPage + 1));

$('incident-new').addEventListener('click', async () => {
  const incident = await guarded(() =>
    api.post('/incidents/', { title: alert.title, severity: alert.severity, alert_ids: [ALERT_ID], description: `From alert #${ALERT_ID}.` }),
  );
  if (incident) {
    toast({ kind: 'info', title: `Incident #${incident.incident_id} opened`, body: incident.title });
    await loadAlert();
  }
});
$('incident-existing').addEventListener('focus', loadOpenIncidents);
$('incident-add').addEventListener('click', async () => {
  const id = $('incident-existing').value;
  if (!id) return;
  const incident = await guarded(() => api.post(`/incidents/${id}/alerts/`, { alert_ids: [ALERT_ID] }));
  if (incident) await loadAlert();
});

commentForm($('comment-form'), {
  post: (text) => api.post(`/alerts/${ALERT_ID}/comments/`, { text }),
  comments,
  onError: fail,
});

// --- live ------------------------------------------------------------------------------------
const refresh = debounce(async () => {
  if (await loadAlert()) await Promise.all([eventsPage === 1 ? loadEvents(1) : null, loadOccurrences()]);
});
const refreshIncidents = debounce(() => loadIncidents(), 300);

function onMessage(msg) {
  if (msg.type === 'alert' && msg.data && msg.data.alert_id === ALERT_ID) {
    if (msg.action === 'commented') {
      comments.add({ ...msg.data, created_at: msg.data.created_at || msg.timestamp });
    }
    refresh();
  } else if (msg.type === 'incident' && alert && (alert.incident_ids || []).includes(msg.data.incident_id)) {
    refreshIncidents();
  } else if (msg.type === 'incident' && msg.action === 'updated') {
    refresh(); // it may have just taken this alert in
  }
}

new ResizeObserver(() => drawBuckets($('occ-chart'), occurrenceBuckets)).observe($('occ-chart').parentElement);
shell.boot();
