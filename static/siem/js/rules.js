// The rules page (/rules/): ATT&CK coverage by tactic (GET /rules/coverage), the rules with
// their hits (GET /rules/?…), one rule with its exceptions and text (GET /rules/{id}).
// The URL keeps the filters and the open rule (?technique=T1003&rule=sigma:…), so it links.

import { listOf } from './api.js';
import { $, formatNumber, h, toast } from './dom.js';
import { formatTime } from './cases.js';
import { createShell } from './shell.js';

const shell = createShell({ onSignedIn: startPage });
const { api } = shell;
const FILTERS = { q: 'f-q', technique: 'f-technique', source: 'f-source', enabled: 'f-enabled', level: 'f-level' };
const state = { me: null, rule: '' };

async function startPage(me) {
  state.me = me;
  readUrl();
  await Promise.all([loadCoverage(), loadRules(), state.rule ? openRule(state.rule) : null]);
}

function readUrl() {
  const params = new URLSearchParams(window.location.search);
  for (const [name, id] of Object.entries(FILTERS)) $(id).value = params.get(name) || '';
  state.rule = params.get('rule') || '';
}

function filters() {
  const params = new URLSearchParams();
  for (const [name, id] of Object.entries(FILTERS)) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

function pushUrl() {
  const params = filters();
  if (state.rule) params.set('rule', state.rule);
  const query = params.toString();
  window.history.replaceState(null, '', query ? `?${query}` : window.location.pathname);
}

function failed(title, err) {
  if (err.status !== 401) toast({ kind: 'error', title, body: err.message });
}

// --- coverage ------------------------------------------------------------------------------------
async function loadCoverage() {
  let coverage;
  try {
    coverage = await api.get('/rules/coverage');
  } catch (err) {
    failed('Could not load the coverage', err);
    return;
  }
  $('coverage-note').textContent = `${coverage.covered} of ${coverage.techniques} techniques have an enabled rule · ${formatNumber(coverage.rules_enabled)} rules enabled · ${coverage.rules_without_technique} without a technique`;
  $('coverage-empty').hidden = coverage.tactics.length > 0;
  const current = $('f-technique').value.trim().toUpperCase();
  $('tactics').replaceChildren(
    ...coverage.tactics.map((tactic) =>
      h(
        'section',
        { class: 'tactic', 'aria-label': tactic.tactic },
        h('h3', { text: `${tactic.tactic} · ${tactic.covered}/${tactic.techniques.length}` }),
        h('ul', {}, tactic.techniques.map((technique) => h('li', {}, tile(technique, current)))),
      ),
    ),
  );
}

function tile(technique, current) {
  const counts = technique.disabled ? `${technique.enabled} on · ${technique.disabled} off` : `${technique.enabled} on`;
  return h(
    'button',
    {
      type: 'button',
      class: `tile ${technique.enabled ? 'covered' : 'off'}`,
      title: `${technique.name}: ${technique.rules.map((rule) => rule.name).join(', ')}`,
      'aria-pressed': technique.id === current ? 'true' : 'false',
      dataset: { technique: technique.id },
      onclick: (event) => {
        $('f-technique').value = technique.id;
        for (const other of document.querySelectorAll('.tile')) other.setAttribute('aria-pressed', String(other === event.currentTarget));
        loadRules();
      },
    },
    h('span', { class: 'tile-id', text: technique.id }),
    h('span', { class: 'tile-count', text: counts }),
    h('div', { text: technique.name }),
  );
}

// --- the rules -----------------------------------------------------------------------------------
async function loadRules() {
  pushUrl();
  const params = filters();
  params.set('page_size', '500');
  params.set('ordering', '-alerts_24h');
  let payload;
  try {
    payload = await api.get(`/rules/?${params}`);
  } catch (err) {
    failed('Could not load the rules', err);
    return;
  }
  const rules = listOf(payload);
  const total = payload.count ?? rules.length;
  $('rules-note').textContent = total > rules.length ? `first ${rules.length} of ${formatNumber(total)}` : `${formatNumber(total)} rules`;
  $('rules-empty').hidden = rules.length > 0;
  $('rules').replaceChildren(...rules.map(row));
}

function row(rule) {
  const stateText = !rule.loaded ? 'refused' : rule.enabled ? 'on' : 'off';
  return h(
    'tr',
    { 'aria-selected': rule.id === state.rule ? 'true' : 'false', dataset: { rule: rule.id } },
    h('td', { title: rule.id }, h('a', { href: `?rule=${encodeURIComponent(rule.id)}`, text: rule.name, onclick: (event) => pick(event, rule.id) })),
    h('td', { text: rule.source }),
    h('td', { text: rule.level || '–', title: rule.level_override ? `override (rule says ${rule.default_level || 'nothing'})` : '' }),
    h('td', { class: stateText === 'on' ? '' : stateText, text: stateText, title: rule.error || '' }),
    h('td', { text: formatNumber(rule.hits.alerts_24h) }),
    h('td', { text: formatNumber(rule.hits.events_7d) }),
    h('td', { text: rule.hits.last_hit ? formatTime(rule.hits.last_hit) : 'never' }),
    h('td', { text: formatNumber(rule.exception_count) }),
  );
}

function pick(event, ruleId) {
  event.preventDefault();
  openRule(ruleId);
}

// --- one rule ------------------------------------------------------------------------------------
async function openRule(ruleId) {
  state.rule = ruleId;
  pushUrl();
  for (const tr of $('rules').children) tr.setAttribute('aria-selected', String(tr.dataset.rule === ruleId));
  let rule;
  try {
    rule = await api.get(`/rules/${encodeURIComponent(ruleId)}`);
  } catch (err) {
    failed('Could not open the rule', err);
    return;
  }
  $('detail-empty').hidden = true;
  $('detail').hidden = false;
  $('detail-name').textContent = rule.name;
  const admin = $('detail-admin');
  admin.hidden = state.me?.role !== 'admin';
  const model = rule.source === 'builtin' ? 'detectionrule' : 'sigmarule';
  admin.href = `/admin/alerts/${model}/?${new URLSearchParams({ rule_id: rule.id })}`;
  const level = rule.level_override ? `${rule.level} (override; the rule says ${rule.default_level || 'nothing'})` : rule.level;
  const facts = [
    ['Id', rule.id],
    ['Source', rule.path ? `${rule.source} · ${rule.path}` : rule.source],
    ['State', !rule.loaded ? `refused: ${rule.error}` : rule.enabled ? 'enabled' : 'disabled'],
    ['Level', level || '–'],
    ['ATT&CK', rule.techniques.map((t) => `${t.id} ${t.name}`).join('\n') || '–'],
    ['Alerts', `${rule.hits.alerts_24h} in 24 h · ${rule.hits.alerts_7d} in 7 d`],
    ['Events', `${rule.hits.events_24h} in 24 h · ${rule.hits.events_7d} in 7 d`],
    ['Last hit', rule.hits.last_hit ? formatTime(rule.hits.last_hit) : 'never'],
  ];
  if (rule.threshold) facts.push(['Threshold', `${rule.threshold} in ${rule.window_seconds} s`]);
  $('detail-facts').replaceChildren(...facts.flatMap(([name, value]) => [h('dt', { text: name }), h('dd', { text: value })]));
  $('detail-exceptions').replaceChildren(
    ...(rule.exceptions.length
      ? rule.exceptions.map((exception) =>
          h(
            'li',
            {},
            h('span', { class: 'mono', text: Object.entries(exception.conditions).map(([field, values]) => `${field}: ${values.join(' | ')}`).join(' AND ') }),
            exception.comment ? h('div', { class: 'muted', text: exception.comment }) : null,
          ),
        )
      : [h('li', { class: 'muted', text: 'None.' })]),
  );
  $('detail-text').textContent = rule.text || '(the rule file is not readable here)';
}

$('rules-filter').addEventListener('submit', (event) => {
  event.preventDefault();
  loadRules();
});
$('f-clear').addEventListener('click', () => {
  for (const id of Object.values(FILTERS)) $(id).value = '';
  for (const other of document.querySelectorAll('.tile')) other.setAttribute('aria-pressed', 'false');
  loadRules();
});

shell.boot();
