// The status page: one self-contained HTML document (no build step, no external asset) whose script reads
// `metrics` (JSON, next to the page) on load and every REFRESH_SECONDS (or ?refresh=N), then draws the figures and a chart of
// the last hour. Serving it needs no database query: a page left open costs one metrics read per refresh.

export const REFRESH_SECONDS = 10;

// The browser side, plain JavaScript: it runs in the reader's browser, not in Deno.
const script = `
const $ = (id) => document.getElementById(id);
const fmt = (n) => Number(n).toLocaleString("en-US", { maximumFractionDigits: 2 });
const el = (tag, attrs = {}, text) => {
  const node = document.createElementNS(tag === "svg" || tag === "polyline" || tag === "line" || tag === "text"
    ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
};
// Completions usually equal claims: dashed, so the line under them stays visible.
const SERIES = [["claims", "#2563eb", ""], ["completions", "#16a34a", "6 4"], ["dead_letters", "#dc2626", ""]];

function figures(m) {
  const b = m.buffers, h = m.last_hour;
  const values = {
    buffers: b.buffers, messages: b.messages, due_now: b.due_now, in_flight: b.in_flight,
    oldest_overdue_seconds: b.oldest_overdue_seconds, backing_off: b.backing_off,
    claims: h.claims, completions: h.completions, dead_letters_hour: h.dead_letters,
    duplicates_suppressed: h.duplicates_suppressed, rate_limit_rejections: h.rate_limit_rejections,
    sessions_expired_hour: h.sessions_expired, dead_letters: m.dead_letters, outbound_unknown: m.outbound_unknown,
    calls_in_progress: m.calls.in_progress, calls_unanswered: m.calls.unanswered_too_long,
    calls_answered_today: m.calls.answered_today, calls_missed_today: m.calls.missed_today,
  };
  for (const [id, value] of Object.entries(values)) $(id).textContent = fmt(value);
}

function chart(per) {
  const W = 600, H = 160, P = 4;
  const max = Math.max(1, ...SERIES.flatMap(([key]) => per[key]));
  const svg = el("svg", { viewBox: "0 0 " + W + " " + (H + 18), role: "img", "aria-label": "last hour per minute" });
  svg.append(el("line", { x1: 0, y1: H, x2: W, y2: H, stroke: "#9ca3af" }));
  for (const [key, color, dash] of SERIES) {
    const points = per[key].map((v, i) =>
      (P + i * (W - 2 * P) / (per[key].length - 1)).toFixed(1) + "," + (H - P - v / max * (H - 2 * P)).toFixed(1));
    svg.append(el("polyline", { points: points.join(" "), fill: "none", stroke: color, "stroke-width": 2,
                                "stroke-dasharray": dash, "data-series": key }));
  }
  svg.append(el("text", { x: 0, y: H + 14, "font-size": 11 }, "-60 min"));
  svg.append(el("text", { x: W, y: H + 14, "font-size": 11, "text-anchor": "end" }, "now"));
  svg.append(el("text", { x: 0, y: 11, "font-size": 11 }, "max " + fmt(max) + "/min"));
  $("chart").replaceChildren(svg);
}

function jobs(m) {
  const rows = Object.entries(m.cron_jobs).map(([name, job]) => {
    const run = job.last_run;
    const tr = el("tr");
    tr.append(el("td", {}, name), el("td", {}, job.schedule),
      el("td", { class: run && run.status === "failed" ? "bad" : "" }, run ? run.status : "never ran"),
      el("td", {}, run ? new Date(run.started_at).toLocaleTimeString() : ""));
    return tr;
  });
  $("jobs").replaceChildren(...rows);
  const breakers = Object.entries(m.circuit_breakers).map(([name, b]) => name + ": " + b.state);
  $("breakers").textContent = breakers.length ? breakers.join(", ") : "none recorded";
}

async function refresh() {
  try {
    const res = await fetch("metrics" + location.search, { headers: { accept: "application/json" } });
    const body = await res.json();
    if (!res.ok || !body.metrics) throw new Error(body.error ? body.error.message : body.reasons.join("; "));
    $("state").textContent = body.ready ? "ready" : "not ready";
    $("state").className = body.ready ? "ok" : "bad";
    $("reasons").replaceChildren(...body.reasons.map((r) => el("li", {}, r)));
    figures(body.metrics);
    chart(body.metrics.per_minute);
    jobs(body.metrics);
    $("updated").textContent = "updated " + new Date(body.metrics.generated_at).toLocaleTimeString();
  } catch (error) {
    $("state").textContent = "unreachable";
    $("state").className = "bad";
    $("reasons").replaceChildren(el("li", {}, String(error.message || error)));
  }
}
refresh();
// ?refresh=N reads every N seconds (at least 1) instead of every ${REFRESH_SECONDS}.
const every = Math.max(1, Number(new URLSearchParams(location.search).get("refresh")) || ${REFRESH_SECONDS});
setInterval(refresh, every * 1000);
`;

const figure = (id: string, label: string) => `<div class="fig"><dt>${label}</dt><dd id="${id}">–</dd></div>`;

/** The whole page. */
export function statusPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wabase status</title>
<link rel="icon" href="data:,">
<style>
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1rem;max-width:60rem;color:#111827}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1rem;margin:1.2rem 0 .4rem;color:#374151}
.ok{color:#15803d}.bad{color:#b91c1c;font-weight:bold}
dl{display:grid;grid-template-columns:repeat(auto-fill,minmax(9rem,1fr));gap:.5rem;margin:0}
.fig{background:#f3f4f6;border-radius:.4rem;padding:.5rem .7rem}
dd{margin:0;font-size:1.5rem;font-variant-numeric:tabular-nums}dt{font-size:.8rem;color:#4b5563}
#chart svg{width:100%;height:auto;background:#f9fafb;margin-top:.8rem}
.legend span{margin-right:1rem;font-size:.85rem}.legend b{display:inline-block;width:.8rem;height:.3rem;
vertical-align:middle;margin-right:.3rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}td{padding:.25rem .5rem;border-top:1px solid #e5e7eb}
#updated{color:#6b7280;font-size:.8rem}
</style></head>
<body>
<h1>wabase is <span id="state">loading</span></h1>
<ul id="reasons"></ul>
<p id="updated"></p>
<h2>Buffers</h2>
<dl>${
    [
      figure("buffers", "conversations waiting"),
      figure("messages", "messages waiting"),
      figure("due_now", "due now"),
      figure("in_flight", "in flight"),
      figure("oldest_overdue_seconds", "oldest overdue (s)"),
      figure("backing_off", "backing off"),
    ].join("")
  }</dl>
<h2>Last hour</h2>
<dl>${
    [
      figure("claims", "batches claimed"),
      figure("completions", "batches completed"),
      figure("dead_letters_hour", "dead letters"),
      figure("duplicates_suppressed", "duplicates suppressed"),
      figure("rate_limit_rejections", "rate-limit refusals"),
      figure("sessions_expired_hour", "sessions expired"),
    ].join("")
  }</dl>
<div id="chart"></div>
<p class="legend"><span><b style="background:#2563eb"></b>claims</span><span><b style="background:#16a34a"></b>completions</span><span><b style="background:#dc2626"></b>dead letters</span></p>
<h2>Calls</h2>
<dl>${
    [
      figure("calls_in_progress", "in progress"),
      figure("calls_unanswered", "ringing too long"),
      figure("calls_answered_today", "answered today"),
      figure("calls_missed_today", "missed today"),
    ].join("")
  }</dl>
<h2>In all</h2>
<dl>${
    [figure("dead_letters", "dead letters"), figure("outbound_unknown", "sends of unknown outcome")].join("")
  }</dl>
<h2>Scheduled jobs</h2>
<table><tbody id="jobs"></tbody></table>
<p>Circuit breakers: <span id="breakers"></span></p>
<script>${script}</script>
</body></html>
`;
}
