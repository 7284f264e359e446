// Events-per-minute bar chart on a <canvas>, drawn by hand (no chart library to vendor).
// Counts events per UTC minute of their event time over a sliding window: the past comes from the
// API (setHistory), live events add to it; the current minute is drawn brighter.

const MINUTE = 60000;

export const MINUTE_MS = MINUTE;

export class RateChart {
  constructor(canvas, { minutes = 30, color = '#4da3ff', currentColor = '#9fd0ff' } = {}) {
    this.canvas = canvas;
    this.minutes = minutes;
    this.colors = { bar: color, current: currentColor, grid: 'rgba(255,255,255,0.07)', text: '#8b98a9' };
    this.buckets = new Map(); // minute index → count
    this.pending = false;
    new ResizeObserver(() => this.draw()).observe(canvas.parentElement);
    // The window slides even when nothing arrives.
    setInterval(() => this.draw(), 10000);
  }

  /** Count one event that happened at `ms` (epoch milliseconds). */
  add(ms = Date.now()) {
    const minute = Math.floor(ms / MINUTE);
    if (minute <= Math.floor(Date.now() / MINUTE) - this.minutes) return;
    this.buckets.set(minute, (this.buckets.get(minute) || 0) + 1);
    this.schedule();
  }

  /** Replace whole minutes with counts from the server (Map: minute index → count). */
  setHistory(counts) {
    for (const [minute, count] of counts) this.buckets.set(minute, count);
    this.schedule();
  }

  /** The minute indexes the window shows, oldest first. */
  window() {
    const now = Math.floor(Date.now() / MINUTE);
    return Array.from({ length: this.minutes }, (_, i) => now - this.minutes + 1 + i);
  }

  reset() {
    this.buckets.clear();
    this.schedule();
  }

  /** Count in the current minute (for the panel header). */
  current() {
    return this.buckets.get(Math.floor(Date.now() / MINUTE)) || 0;
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  series() {
    const now = Math.floor(Date.now() / MINUTE);
    for (const minute of this.buckets.keys()) if (minute <= now - this.minutes) this.buckets.delete(minute);
    const values = [];
    for (let m = now - this.minutes + 1; m <= now; m += 1) values.push([m, this.buckets.get(m) || 0]);
    return values;
  }

  draw() {
    const { canvas } = this;
    const box = canvas.parentElement.getBoundingClientRect();
    if (box.width < 10 || box.height < 10) return;
    const dpr = window.devicePixelRatio || 1;
    const width = Math.floor(box.width);
    const height = Math.floor(box.height);
    if (canvas.width !== width * dpr || canvas.height !== height * dpr) {
      canvas.width = width * dpr;
      canvas.height = height * dpr;
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const values = this.series();
    const max = Math.max(1, ...values.map(([, v]) => v));
    const top = niceCeiling(Math.max(5, max));
    const pad = { left: 44, right: 16, top: 14, bottom: 24 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;

    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    ctx.fillStyle = this.colors.text;
    ctx.strokeStyle = this.colors.grid;
    ctx.lineWidth = 1;
    // Five grid steps: every "nice" ceiling from 5 up divides into whole numbers.
    for (let i = 0; i <= 5; i += 1) {
      const y = pad.top + plotH - (plotH * i) / 5;
      ctx.beginPath();
      ctx.moveTo(pad.left, Math.round(y) + 0.5);
      ctx.lineTo(width - pad.right, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.textAlign = 'right';
      ctx.fillText(String((top * i) / 5), pad.left - 6, y);
    }

    const slot = plotW / values.length;
    const barW = Math.max(1, slot * 0.72);
    ctx.textAlign = 'center';
    ctx.textBaseline = 'alphabetic';
    values.forEach(([minute, value], i) => {
      const x = pad.left + i * slot + (slot - barW) / 2;
      const barH = (value / top) * plotH;
      ctx.fillStyle = i === values.length - 1 ? this.colors.current : this.colors.bar;
      if (value > 0) ctx.fillRect(x, pad.top + plotH - barH, barW, Math.max(barH, 1.5));
      if (minute % 5 === 0) {
        ctx.fillStyle = this.colors.text;
        ctx.fillText(new Date(minute * MINUTE).toISOString().slice(11, 16), x + barW / 2, height - 7);
      }
    });
  }
}

function niceCeiling(value) {
  const exp = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * exp >= value) return step * exp;
  return 10 * exp;
}
