// The analysts' live dashboard: sign-in, REST snapshot, then /ws/dashboard keeps it current.

import { createApi, listOf } from './api.js';
import { MINUTE_MS, RateChart } from './chart.js';
import { $, formatClock, parseTime, toast } from './dom.js';
import { AgentList, AlertFeed, Counters, EventStream } from './feeds.js';
import { LiveConnection } from './live.js';
import { bindSignin, session, showSignin } from './signin.js';

const API_BASE = document.body.dataset.apiBase;
const WS_PATH = document.body.dataset.wsPath;
const TRIAGE_ROLES = new Set(['admin', 'analyst']);
const DAY = 86400000;
const HOUR = 3600000;

const api = createApi({
  base: API_BASE,
  getToken: () => session.token,
  onUnauthorized: (reason) => signOutLocally(`Your session ended (${reason}). Please sign in again.`),
});

const counters = new Counters($('app'), $('stats-updated'));
const chart = new RateChart($('rate-chart'));
const alerts = new AlertFeed($('alert-feed'), {
  onAction: async (id, action) => {
    const answer = await api.post(`/alerts/${id}/${action}/`);
    // The broadcast will say the same; applying the answer now makes the click feel instant.
    if (answer && answer.alert_id !== undefined) onAlert(action, answer);
  },
  emptyEl: $('alerts-empty'),
  countEl: $('alerts-count'),
  openOnlyEl: $('alerts-open-only'),
});
const events = new EventStream($('event-stream'), { pauseButton: $('events-pause'), noteEl: $('events-note') });
const agents = new AgentList($('agent-list'), { emptyEl: $('agents-empty'), noteEl: $('agents-note') });

let live = null;

// --- sign-in -----------------------------------------------------------------------------------
bindSignin({ api, start: () => startDashboard(), signOutLocally });

function signOutLocally(message) {
  if (live) live.stop();
  live = null;
  session.token = null;
  alerts.clear();
  events.clear();
  agents.clear();
  chart.reset();
  showSignin(message);
}

// --- the dashboard -----------------------------------------------------------------------------
async function startDashboard() {
  const me = await api.get('/auth/me');
  $('whoami').textContent = `${me.username} · ${me.role || 'no role'}`;
  alerts.setCanTriage(TRIAGE_ROLES.has(me.role));
  $('signin').hidden = true;
  $('app').hidden = false;
  chart.draw();
  // Subscribe first, then fetch: whatever happens while the snapshot loads arrives on the
  // socket and is merged by id, so nothing falls between the snapshot and the stream. A socket
  // that cannot connect must not keep the panels empty, hence the time limit.
  let subscribed;
  const firstLive = new Promise((resolve) => {
    subscribed = resolve;
  });
  live = new LiveConnection({
    path: WS_PATH,
    credential: wsCredential,
    onMessage: handleMessage,
    onState: (state) => {
      if (state.state === 'live') subscribed();
      showConnection(state);
    },
    onAuthLost: (reason) => {
      signOutLocally(`The live connection was refused (${reason}). Please sign in again.`);
      return false;
    },
    onGap: () => loadSnapshot(),
  });
  live.start();
  await Promise.race([firstLive, new Promise((resolve) => setTimeout(resolve, 3000))]);
  await loadSnapshot();
}

/** A one-time ticket for each socket: the access token itself never goes into a URL. */
async function wsCredential() {
  const answer = await api.post('/auth/ws-ticket');
  return { ticket: answer.ticket };
}

/** Load (or after a gap, reload) every panel over REST; a failing call shows its reason. */
async function loadSnapshot() {
  $('app').dataset.snapshot = 'loading';
  const tasks = [
    ['statistics', () => api.get('/dashboard/statistics/'), (stats) => counters.set(stats)],
    ['alerts', () => api.get('/alerts/?page_size=100'), (page) => alerts.load(listOf(page))],
    ['events', () => api.get('/events/?page_size=200'), (page) => events.load(listOf(page))],
    ['the event rate', loadRateHistory, (counts) => {
      chart.setHistory(counts);
      renderRate();
    }],
    ['agents', () => api.get('/agents/?page_size=200'), (page) => agents.load(listOf(page))],
  ];
  await Promise.all(tasks.map(async ([name, fetchIt, apply]) => {
    try {
      apply(await fetchIt());
    } catch (err) {
      if (err.status === 401) return; // already back at sign-in
      toast({ kind: 'error', title: `Could not load ${name}`, body: err.message, timeoutMs: 15000 });
    }
  }));
  $('app').dataset.snapshot = 'loaded';
}

/** Events per minute of the chart's window, counted by the API (a few requests at a time). */
async function loadRateHistory() {
  const queue = chart.window();
  const counts = new Map();
  const worker = async () => {
    while (queue.length) {
      const minute = queue.shift();
      const since = new Date(minute * MINUTE_MS).toISOString();
      const until = new Date((minute + 1) * MINUTE_MS - 1).toISOString();
      const query = new URLSearchParams({ since, until, page_size: '1' });
      const page = await api.get(`/events/?${query}`);
      counts.set(minute, typeof page.count === 'number' ? page.count : listOf(page).length);
    }
  };
  await Promise.all(Array.from({ length: 5 }, worker));
  return counts;
}

function renderRate() {
  $('rate-now').textContent = `${chart.current()} this minute`;
}

// --- live messages -----------------------------------------------------------------------------
function handleMessage(msg) {
  switch (msg.type) {
    case 'statistics':
      counters.set(msg.data);
      break;
    case 'event':
      onEvent(msg.data);
      break;
    case 'alert':
      onAlert(msg.action, msg.data);
      break;
    case 'agent':
      onAgent(msg.action, msg.data);
      break;
    case 'incident':
      onIncident(msg.action, msg.data);
      break;
    case 'notification':
      onNotification(msg);
      break;
    case 'error':
      toast({ kind: 'error', title: 'Server says', body: msg.message });
      break;
    default:
      break; // newer servers may send more types; ignoring them is safe
  }
}

function onEvent(data) {
  if (!events.add(data)) return;
  const happened = parseTime(data.timestamp) ?? Date.now();
  chart.add(happened);
  renderRate();
  const age = Date.now() - happened;
  if (age < DAY) {
    counters.bump('events', 'total_24h', 1);
    if (data.severity >= 4) counters.bump('events', 'high_severity', 1);
  }
  if (age < HOUR) counters.bump('events', 'last_hour', 1);
}

function onAlert(action, data) {
  const previous = alerts.upsert(data);
  if (action === 'created' && data.status === 'new') counters.bump('alerts', 'new', 1);
  if (previous?.status === 'new' && data.status !== 'new') counters.bump('alerts', 'new', -1);
  const severity = data.severity ?? previous?.severity;
  if (severity === 5) {
    if (action === 'created') counters.bump('alerts', 'critical', 1);
    const closed = ['resolved', 'false_positive'];
    if (previous && !closed.includes(previous.status) && closed.includes(data.status)) {
      counters.bump('alerts', 'critical', -1);
    }
  }
}

function onAgent(action, data) {
  const previous = agents.upsert(data);
  if (previous === null) {
    // An agent missing from the loaded page may already be counted; only a new one is certain.
    if (action === 'registered') {
      counters.bump('agents', 'total', 1);
      counters.bump('agents', data.status, 1);
    }
  } else if (previous !== data.status) {
    counters.bump('agents', previous, -1);
    counters.bump('agents', data.status, 1);
  }
}

function onIncident(action, data) {
  if (action === 'created') counters.bump('incidents', 'open', 1);
  if (action === 'closed') counters.bump('incidents', 'open', -1);
  if (action === 'created' || action === 'escalated') {
    toast({ kind: action === 'escalated' ? 'high' : 'info', title: `Incident ${action}: #${data.incident_id}`, body: data.title });
  }
}

function onNotification(msg) {
  const d = msg.data || {};
  const kind = ['critical', 'high', 'warning'].includes(msg.severity) ? msg.severity : 'info';
  toast({
    kind,
    title: `AI ${msg.severity} risk · score ${d.ai_score} · ${d.computer}`,
    body: [d.ai_category, d.ai_description || d.message].filter(Boolean).join(' — '),
    timeoutMs: kind === 'critical' ? 30000 : 15000,
  });
}

// --- connection indicator ----------------------------------------------------------------------
let countdown = null;

function showConnection({ state, attempt, retryAt, reason }) {
  const box = $('connection');
  const text = $('connection-text');
  box.dataset.state = state;
  box.title = reason || '';
  clearInterval(countdown);
  if (state === 'live') text.textContent = 'Live';
  else if (state === 'connecting') text.textContent = attempt ? `Reconnecting (attempt ${attempt})…` : 'Connecting…';
  else if (state === 'reconnecting') {
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      text.textContent = `Connection lost — retrying in ${seconds} s`;
    };
    tick();
    countdown = setInterval(tick, 1000);
  } else text.textContent = 'Offline';
}

$('connection').addEventListener('click', () => live && live.retryNow());

// --- clock and boot ----------------------------------------------------------------------------
function tickClock() {
  $('clock').textContent = `${formatClock(Date.now())} UTC`;
}
tickClock();
setInterval(tickClock, 1000);
setInterval(renderRate, 5000);

(async function boot() {
  if (!session.token) {
    showSignin();
    return;
  }
  try {
    await startDashboard();
  } catch (err) {
    if (err.status !== 401) showSignin(`Could not open the dashboard: ${err.message}`);
  }
})();
