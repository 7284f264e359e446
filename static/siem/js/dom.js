// Small DOM and formatting helpers shared by the dashboard and the admin live list.
// Every piece of server data goes into the page through textContent, never innerHTML.

export const SEVERITY_NAMES = { 1: 'info', 2: 'low', 3: 'medium', 4: 'high', 5: 'critical' };

export function severityName(value) {
  return SEVERITY_NAMES[value] || 'unknown';
}

/** h('div', {class: 'x', dataset: {id: 1}}, 'text', childNode) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function $(id) {
  return document.getElementById(id);
}

const numberFormat = new Intl.NumberFormat('en-US');

export function formatNumber(value) {
  return Number.isFinite(value) ? numberFormat.format(value) : '–';
}

export function parseTime(value) {
  if (!value) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

/** HH:MM:SS in UTC — the wall screen and the server logs speak the same time zone. */
export function formatClock(ms, { seconds = true } = {}) {
  if (ms === null || ms === undefined) return '';
  const iso = new Date(ms).toISOString();
  return seconds ? iso.slice(11, 19) : iso.slice(11, 16);
}

export function formatAgo(ms, now = Date.now()) {
  if (ms === null || ms === undefined) return 'never';
  const sec = Math.max(0, Math.round((now - ms) / 1000));
  if (sec < 5) return 'just now';
  if (sec < 60) return `${sec} s ago`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ago`;
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ago`;
  return `${Math.floor(sec / 86400)} d ago`;
}

/** A toast in the corner; returns its element. `timeoutMs: 0` keeps it until dismissed. */
export function toast({ kind = 'info', title, body = '', timeoutMs = 8000 }) {
  const container = $('toasts');
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss', text: '×' });
  const el = h(
    'div',
    { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('div', { class: 'toast-title', text: title }),
    body ? h('div', { class: 'toast-body', text: body }) : null,
    close,
  );
  const remove = () => el.remove();
  close.addEventListener('click', remove);
  container.prepend(el);
  collapseOverflow(container);
  if (timeoutMs > 0) setTimeout(remove, timeoutMs);
  return el;
}

const MAX_TOASTS = 3;
let collapsed = 0;

/** A burst of notifications must not bury the screen: the newest few, then "+N more". */
function collapseOverflow(container) {
  const shown = [...container.querySelectorAll('.toast:not(.toast-more)')];
  for (const old of shown.slice(MAX_TOASTS)) {
    old.remove();
    collapsed += 1;
  }
  if (!collapsed) return;
  let more = container.querySelector('.toast-more');
  if (!more) {
    more = h('button', { type: 'button', class: 'toast toast-more' });
    more.addEventListener('click', () => {
      collapsed = 0;
      more.remove();
    });
    container.append(more);
  }
  more.textContent = `+${collapsed} more notification${collapsed === 1 ? '' : 's'} · dismiss`;
}
