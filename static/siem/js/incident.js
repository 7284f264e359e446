// The incident page (/incidents/<id>/): its alerts, tasks, observables, comments and one
// timeline; close with "resolve its alerts" — kept current over /ws/incidents and /ws/alerts.

import { listOf } from './api.js';
import {
  CommentList,
  commentForm,
  debounce,
  errorReporter,
  formatTime,
  huntLink,
  renderTimeline,
  setPill,
  setSeverity,
  subscribe,
} from './cases.js';
import { $, h, severityName } from './dom.js';
import { createShell, TRIAGE_ROLES } from './shell.js';

const INCIDENT_ID = Number(document.body.dataset.incidentId);
// Observable kind → [label, query-language field] (hash and domain have no hunting field).
const KINDS = { host: ['Hosts', 'computer'], user: ['Users', 'user_name'], ip: ['IPs', 'source_ip'], hash: ['Hashes', null], domain: ['Domains', null] };

const shell = createShell({ onSignedIn: start, onSignedOut: stop });
const { api } = shell;
const comments = new CommentList($('comments'));
let connections = [];
let incident = null;
let canTriage = false;
let users = [];
let alertIds = new Set();

const { fail, guarded } = errorReporter('Incident page');

async function start(me) {
  canTriage = TRIAGE_ROLES.has(me.role);
  connections = subscribe(['incidents', 'alerts'], { shell, onMessage, onGap: reloadAll });
  if (canTriage) users = (await guarded(() => api.get('/users/'))) || [];
  renderUserSelect($('task-assignee'), null, 'nobody');
  await reloadAll();
}

function stop() {
  for (const live of connections) live.stop();
  connections = [];
}

async function reloadAll() {
  $('app').dataset.loaded = 'loading';
  if (await loadIncident()) await Promise.all([loadAlerts(), loadTasks(), loadObservables(), loadComments()]);
  $('app').dataset.loaded = 'loaded';
}

async function loadIncident() {
  try {
    incident = await api.get(`/incidents/${INCIDENT_ID}/`);
  } catch (err) {
    if (err.status === 404) $('incident-title').textContent = `Incident #${INCIDENT_ID} does not exist`;
    else if (err.status !== 401) fail(err.message);
    return false;
  }
  alertIds = new Set(incident.alert_ids);
  renderIncident();
  return true;
}

function renderIncident() {
  document.title = `SIEM · Incident #${incident.incident_id} ${incident.title}`;
  $('incident-title').textContent = incident.title;
  setSeverity($('incident-severity'), incident.severity);
  setPill($('incident-status'), 'status', incident.status);
  const parts = [`#${incident.incident_id}`, `opened ${formatTime(incident.created_at)}`, `assigned to ${incident.assigned_to || 'nobody'}`];
  if (incident.escalation_level) parts.push(`escalation level ${incident.escalation_level}`);
  if (incident.closed_at) parts.push(`closed ${formatTime(incident.closed_at)}`);
  if (incident.resolution) parts.push(`resolution: ${incident.resolution}`);
  $('incident-summary').textContent = parts.join(' · ');
  if (incident.description) $('incident-summary').append(h('div', { text: incident.description }));
  renderTimeline($('timeline'), incident.timeline || []);
  const closed = incident.status === 'closed';
  $('incident-actions').hidden = !canTriage || closed;
  for (const id of ['task-form', 'observable-form', 'comment-form']) $(id).hidden = !canTriage;
}

async function loadAlerts() {
  const page = await guarded(() => api.get(`/alerts/?incident=${INCIDENT_ID}&page_size=500`));
  if (!page) return;
  const alerts = listOf(page);
  $('alerts-note').textContent = `${alerts.length} alert${alerts.length === 1 ? '' : 's'}`;
  $('alert-rows').replaceChildren(
    ...alerts.map((a) =>
      h(
        'tr',
        { dataset: { alertId: a.alert_id, status: a.status } },
        h('td', {}, h('a', { href: `/alerts/${a.alert_id}/`, text: `#${a.alert_id} ${a.title}` })),
        h('td', {}, h('span', { class: 'sev-badge', text: severityName(a.severity) })),
        h('td', { class: 'alert-status', text: a.status.replace('_', ' ') }),
        h('td', {}, a.hostname ? huntLink('computer', a.hostname) : ''),
        h('td', { text: a.assigned_to || '' }),
        h('td', { class: 'mono', text: a.occurrence_count }),
      ),
    ),
  );
}

function renderUserSelect(select, value, none) {
  select.replaceChildren(h('option', { value: '', text: none }), ...users.map((u) => h('option', { value: u.username, text: u.username })));
  select.value = value || '';
}

async function loadTasks() {
  const tasks = await guarded(() => api.get(`/incidents/${INCIDENT_ID}/tasks/`));
  if (!tasks) return;
  const open = tasks.filter((t) => t.status === 'open').length;
  $('tasks-note').textContent = tasks.length ? `${open} open of ${tasks.length}` : '';
  $('tasks').replaceChildren(
    ...(tasks.length ? tasks.map(taskRow) : [h('li', { class: 'muted', text: 'No tasks yet.' })]),
  );
}

function taskRow(task) {
  const done = h('input', { type: 'checkbox', 'aria-label': `Done: ${task.title}` });
  done.checked = task.status === 'done';
  done.disabled = !canTriage;
  done.addEventListener('change', () => patchTask(task, { status: done.checked ? 'done' : 'open' }));
  const assignee = h('select', { 'aria-label': `Assignee of ${task.title}` });
  renderUserSelect(assignee, task.assigned_to, 'nobody');
  if (!users.some((u) => u.username === task.assigned_to) && task.assigned_to) {
    assignee.append(h('option', { value: task.assigned_to, text: task.assigned_to }));
    assignee.value = task.assigned_to;
  }
  assignee.disabled = !canTriage;
  assignee.addEventListener('change', () => patchTask(task, { assigned_to: assignee.value || null }));
  return h(
    'li',
    { class: task.status === 'done' ? 'done' : '', dataset: { taskId: task.task_id } },
    done,
    h('span', { class: 'task-title', text: task.title }),
    assignee,
  );
}

async function patchTask(task, changes) {
  await guarded(() => api.patch(`/tasks/${task.task_id}/`, changes));
  await Promise.all([loadTasks(), loadIncident()]);
}

async function loadObservables() {
  const items = await guarded(() => api.get(`/incidents/${INCIDENT_ID}/observables/`));
  if (!items) return;
  const dl = $('observables');
  dl.replaceChildren();
  for (const [kind, [label, field]] of Object.entries(KINDS)) {
    const values = items.filter((item) => item.kind === kind);
    if (!values.length) continue;
    dl.append(
      h('dt', { text: label }),
      h(
        'dd',
        { dataset: { kind } },
        ...values.map((item) => {
          const el = field ? huntLink(field, item.value) : h('span', { class: 'mono', text: item.value });
          if (item.source === 'manual') el.title = `${el.title || item.value} (added by hand)`;
          return el;
        }),
      ),
    );
  }
  if (!dl.children.length) dl.append(h('dd', { class: 'muted', text: 'None yet.' }));
}

async function loadComments() {
  const answer = await guarded(() => api.get(`/incidents/${INCIDENT_ID}/comments/`));
  if (answer) comments.load(answer);
}

// --- actions ---------------------------------------------------------------------------------
$('task-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const title = $('task-title').value.trim();
  if (!title) return;
  const task = await guarded(() =>
    api.post(`/incidents/${INCIDENT_ID}/tasks/`, { title, assigned_to: $('task-assignee').value || null }),
  );
  if (task) {
    $('task-title').value = '';
    await Promise.all([loadTasks(), loadIncident()]);
  }
});

$('observable-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const value = $('observable-value').value.trim();
  if (!value) return;
  const added = await guarded(() => api.post(`/incidents/${INCIDENT_ID}/observables/`, { kind: $('observable-kind').value, value }));
  if (added) {
    $('observable-value').value = '';
    await Promise.all([loadObservables(), loadIncident()]);
  }
});

$('close-incident').addEventListener('click', async () => {
  const answer = await guarded(() =>
    api.post(`/incidents/${INCIDENT_ID}/close/`, {
      resolution: $('close-resolution').value.trim(),
      resolve_alerts: $('close-resolve-alerts').checked,
    }),
  );
  if (answer) {
    incident = answer;
    renderIncident();
    await loadAlerts();
  }
});

$('escalate-incident').addEventListener('click', async () => {
  const answer = await guarded(() => api.post(`/incidents/${INCIDENT_ID}/escalate/`, {}));
  if (answer) {
    incident = answer;
    renderIncident();
  }
});

commentForm($('comment-form'), {
  post: (text) => api.post(`/incidents/${INCIDENT_ID}/comments/`, { text }),
  comments,
  onError: fail,
});

// --- live ------------------------------------------------------------------------------------
const refreshCase = debounce(async () => {
  if (await loadIncident()) await Promise.all([loadAlerts(), loadTasks(), loadObservables()]);
});
const refreshAlerts = debounce(() => loadAlerts());

function onMessage(msg) {
  if (msg.type === 'incident' && msg.data && msg.data.incident_id === INCIDENT_ID) {
    if (msg.action === 'commented') comments.add({ ...msg.data, created_at: msg.data.created_at || msg.timestamp });
    refreshCase();
  } else if (msg.type === 'alert' && msg.data && alertIds.has(msg.data.alert_id)) {
    refreshAlerts();
  }
}

shell.boot();
