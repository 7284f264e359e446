// Matching events per time bucket on a <canvas>, drawn by hand like the dashboard's rate chart.
// Buckets come from GET /api/v1/events/histogram/; clicking a bar calls onPick(start, end).

export class Histogram {
  constructor(canvas, { onPick = () => {}, color = '#4da3ff', hover = '#9fd0ff' } = {}) {
    this.canvas = canvas;
    this.onPick = onPick;
    this.colors = { bar: color, hover, grid: 'rgba(255,255,255,0.07)', text: '#8b98a9' };
    this.buckets = [];
    this.interval = 60;
    this.hoverIndex = -1;
    new ResizeObserver(() => this.draw()).observe(canvas.parentElement);
    canvas.addEventListener('mousemove', (event) => this.hover(this.indexAt(event)));
    canvas.addEventListener('mouseleave', () => this.hover(-1));
    canvas.addEventListener('click', (event) => {
      const index = this.indexAt(event);
      if (index < 0) return;
      const start = Date.parse(this.buckets[index].start);
      this.onPick(start, start + this.interval * 1000);
    });
  }

  /** {interval_sec, buckets: [{start, count}]} as the API answers. */
  set({ interval_sec: interval, buckets }) {
    this.interval = interval;
    this.buckets = buckets;
    this.draw();
  }

  /** One more event at `ms` (live tail), if it falls inside the drawn range. */
  add(ms) {
    for (let i = this.buckets.length - 1; i >= 0; i -= 1) {
      const start = Date.parse(this.buckets[i].start);
      if (ms >= start && ms < start + this.interval * 1000) {
        this.buckets[i].count += 1;
        this.draw();
        return;
      }
    }
  }

  total() {
    return this.buckets.reduce((sum, bucket) => sum + bucket.count, 0);
  }

  hover(index) {
    if (index === this.hoverIndex) return;
    this.hoverIndex = index;
    const bucket = this.buckets[index];
    this.canvas.title = bucket ? `${bucket.start.slice(0, 19).replace('T', ' ')} UTC · ${bucket.count} events` : '';
    this.canvas.style.cursor = bucket ? 'pointer' : 'default';
    this.draw();
  }

  layout() {
    const box = this.canvas.parentElement.getBoundingClientRect();
    const pad = { left: 44, right: 12, top: 10, bottom: 22 };
    return { width: Math.floor(box.width), height: Math.floor(box.height), pad };
  }

  indexAt(event) {
    const { width, pad } = this.layout();
    const rect = this.canvas.getBoundingClientRect();
    const x = event.clientX - rect.left - pad.left;
    const slot = (width - pad.left - pad.right) / Math.max(1, this.buckets.length);
    const index = Math.floor(x / slot);
    return index >= 0 && index < this.buckets.length ? index : -1;
  }

  draw() {
    const { canvas } = this;
    const { width, height, pad } = this.layout();
    if (width < 10 || height < 10) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== width * dpr || canvas.height !== height * dpr) {
      canvas.width = width * dpr;
      canvas.height = height * dpr;
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const values = this.buckets.map((bucket) => bucket.count);
    const top = niceCeiling(Math.max(5, ...values));
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = this.colors.text;
    ctx.strokeStyle = this.colors.grid;
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i += 1) {
      const y = Math.round(pad.top + plotH - (plotH * i) / 4) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.left, y);
      ctx.lineTo(width - pad.right, y);
      ctx.stroke();
      ctx.textAlign = 'right';
      ctx.fillText(formatCount((top * i) / 4), pad.left - 6, y);
    }
    if (!values.length) return;
    const slot = plotW / values.length;
    const barW = Math.max(1, slot * 0.8);
    const labelEvery = Math.max(1, Math.ceil(values.length / Math.max(1, Math.floor(plotW / 90))));
    ctx.textAlign = 'center';
    ctx.textBaseline = 'alphabetic';
    values.forEach((value, i) => {
      const x = pad.left + i * slot + (slot - barW) / 2;
      const barH = (value / top) * plotH;
      ctx.fillStyle = i === this.hoverIndex ? this.colors.hover : this.colors.bar;
      if (value > 0) ctx.fillRect(x, pad.top + plotH - barH, barW, Math.max(barH, 1.5));
      if (i % labelEvery === 0) {
        ctx.fillStyle = this.colors.text;
        ctx.fillText(label(this.buckets[i].start, this.interval), x + barW / 2, height - 6);
      }
    });
  }
}

function label(iso, interval) {
  if (interval >= 86400) return iso.slice(5, 10);
  if (interval >= 3600) return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
  return iso.slice(11, interval < 60 ? 19 : 16);
}

function formatCount(value) {
  return value >= 1000 ? `${Math.round(value / 100) / 10}k` : String(Math.round(value * 10) / 10);
}

function niceCeiling(value) {
  const exp = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * exp >= value) return step * exp;
  return 10 * exp;
}
