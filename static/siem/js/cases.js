// Pieces the alert and incident pages share: hunting links, the timeline, comments, a small
// bucket chart, and a live subscription that reloads what a message touches.

import { h, parseTime, severityName, toast } from './dom.js';
import { LiveConnection } from './live.js';

/** A query-language value: bare when it is one plain word, else "quoted" with \ and " escaped. */
export function queryValue(value) {
  const text = String(value);
  if (/^[A-Za-z0-9_.@$-]+$/.test(text)) return text;
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The hunting page for `field:value` (e.g. /events/?q=computer:WS-001). */
export function huntHref(field, value) {
  return `/events/?${new URLSearchParams({ q: `${field}:${queryValue(value)}` })}`;
}

export function huntLink(field, value) {
  return h('a', { href: huntHref(field, value), class: 'hunt-link', title: `Hunt ${field}:${value}`, text: value });
}

/** `2026-11-30 12:00:05 UTC` */
export function formatTime(value) {
  const ms = parseTime(value);
  return ms === null ? '' : `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

export function setPill(el, kind, value) {
  el.dataset[kind] = value;
  el.textContent = String(value).replace('_', ' ');
}

export function setSeverity(el, severity) {
  setPill(el, 'sev', severityName(severity));
}

/** Timeline rows: when, who, what (and from which status), the note. */
export function renderTimeline(list, entries) {
  list.replaceChildren(
    ...entries.map((entry) => {
      const change = entry.from_status && entry.to_status && entry.from_status !== entry.to_status
        ? ` (${entry.from_status} → ${entry.to_status})`
        : '';
      return h(
        'li',
        {},
        h('time', { datetime: entry.created_at, text: formatTime(entry.created_at) }),
        h(
          'div',
          {},
          h('span', { class: 'who', text: entry.actor || 'system' }),
          ` ${entry.action}${change}`,
          entry.note ? h('div', { class: 'note', text: entry.note }) : null,
        ),
      );
    }),
  );
}

/** Comments by id: a live one and the REST list may both deliver the same comment. */
export class CommentList {
  constructor(list) {
    this.list = list;
    this.ids = new Set();
  }

  load(comments) {
    this.ids.clear();
    this.list.replaceChildren();
    for (const comment of comments) this.add(comment, { fresh: false });
  }

  add(comment, { fresh = true } = {}) {
    if (this.ids.has(comment.comment_id)) return;
    this.ids.add(comment.comment_id);
    const el = h(
      'li',
      { dataset: { commentId: comment.comment_id }, class: fresh ? 'fresh' : '' },
      h('div', { class: 'comment-head', text: `${comment.author} · ${formatTime(comment.created_at) || 'just now'}` }),
      h('div', { class: 'comment-text', text: comment.text }),
    );
    this.list.append(el);
    this.list.scrollTop = this.list.scrollHeight;
  }
}

/** Wire a comment form: POST the text, show it at once (the broadcast is merged by id). */
export function commentForm(form, { post, comments, onError }) {
  const text = form.querySelector('textarea');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = text.value.trim();
    if (!value) return;
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      comments.add(await post(value));
      text.value = '';
    } catch (err) {
      onError(`Comment failed: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  });
  // Ctrl+Enter sends, as in chat tools; Enter alone makes a new line.
  text.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
}

/** Bars of [{start, count}] on a canvas, drawn by hand (no chart library under the CSP). */
export function drawBuckets(canvas, buckets, { color = '#4da3ff' } = {}) {
  const box = canvas.parentElement.getBoundingClientRect();
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.floor(box.width * ratio));
  canvas.height = Math.max(1, Math.floor(box.height * ratio));
  canvas.style.width = `${box.width}px`;
  canvas.style.height = `${box.height}px`;
  const ctx = canvas.getContext('2d');
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, box.width, box.height);
  if (!buckets.length) return;
  const max = Math.max(...buckets.map((b) => b.count), 1);
  const bottom = box.height - 16;
  const width = box.width / buckets.length;
  ctx.fillStyle = color;
  buckets.forEach((bucket, i) => {
    const height = Math.round((bucket.count / max) * (bottom - 4));
    ctx.fillRect(i * width + 1, bottom - height, Math.max(1, width - 2), height);
  });
  ctx.fillStyle = '#8b98a9';
  ctx.font = '11px sans-serif';
  ctx.fillText(formatTime(buckets[0].start).slice(5, 16), 2, box.height - 3);
  const last = formatTime(buckets[buckets.length - 1].start).slice(5, 16);
  ctx.fillText(last, Math.max(0, box.width - ctx.measureText(last).width - 2), box.height - 3);
  ctx.fillText(`max ${max}`, 2, 11);
}

/**
 * Subscribe to channels (e.g. ['alerts', 'incidents']); `onMessage(msg)` for each data message,
 * `onGap()` when messages may have been missed (reload over REST). Returns the connections.
 */
export function subscribe(channels, { shell, onMessage, onGap }) {
  return channels.map((channel) => {
    const live = new LiveConnection({
      path: `/ws/${channel}`,
      credential: shell.wsCredential,
      onMessage,
      onState: shell.showConnection,
      onAuthLost: (reason) => {
        shell.signOutLocally(`The live connection was refused (${reason}). Please sign in again.`);
        return false;
      },
      onGap,
    });
    live.start();
    return live;
  });
}

/**
 * A page's error reporting: `fail(message)` shows a toast; `guarded(call)` runs an API call and
 * returns its answer, or null after showing why it failed (a 401 already went back to sign-in).
 */
export function errorReporter(title) {
  const fail = (message) => toast({ kind: 'error', title, body: message, timeoutMs: 15000 });
  const guarded = async (action) => {
    try {
      return await action();
    } catch (err) {
      if (err.status !== 401) fail(err.message);
      return null;
    }
  };
  return { fail, guarded };
}

/** Run `fn` at most once per `ms` (a burst of repeats reloads once). */
export function debounce(fn, ms = 300) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}
