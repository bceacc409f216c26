// The bluegreen status page. It polls GET /v1/status once a second with
// If-None-Match (304 when nothing changed) and never sends anything but
// GET. The token, when the listener has one, lives in sessionStorage and
// goes in the Authorization header only.
"use strict";

(function () {
  const POLL_MS = 1000;
  const TOKEN_KEY = "bluegreen-token";
  const needsToken = document.querySelector('meta[name="bluegreen-auth"]').content === "token";

  const $ = (id) => document.getElementById(id);
  let etag = "";
  let data = null;
  let skew = 0; // server clock minus this clock, from the Date header
  let timer = 0;

  // el builds an element with attributes and children (strings become text).
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const k of kids) {
      if (k === null || k === undefined) continue;
      e.append(typeof k === "string" || typeof k === "number" ? String(k) : k);
    }
    return e;
  }
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  // poolClass names a pool's colour; blue and green get theirs, others a
  // palette. The name is always written next to the colour.
  function poolClass(name, i) {
    if (name === "blue" || name === "green") return "pool-" + name;
    return "pool-c" + (2 + (i % 4));
  }

  function pct(x) {
    const v = x * 100;
    return (v === 0 || v === 100 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1)) + " %";
  }

  function now() { return Date.now() + skew; }

  function dur(ms) {
    let s = Math.max(0, Math.ceil(ms / 1000));
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (h) return h + " h " + m + " min";
    if (m) return m + " min " + s + " s";
    return s + " s";
  }

  function weightsText(pools, w) {
    if (!w) return "";
    return pools.map((p) => p + " " + (w[p] || 0)).join(" / ");
  }

  function setConn(msg, isError) {
    const c = $("conn");
    c.textContent = msg;
    c.className = isError ? "error" : "";
  }

  function showLogin(msg, isError) {
    $("switches").replaceChildren();
    const f = $("login");
    f.hidden = false;
    const m = $("login-msg");
    if (msg) m.textContent = msg;
    m.className = isError ? "error" : "";
    $("token").focus();
  }

  // Countdowns: elements with data-until (ms since the epoch) and
  // data-prefix / data-done texts, refreshed every second.
  function countdown(until, prefix, doneText) {
    const s = el("span", { "data-until": String(until), "data-prefix": prefix, "data-done": doneText });
    tick(s);
    return s;
  }
  function tick(s) {
    const left = Number(s.dataset.until) - now();
    s.textContent = left > 0 ? s.dataset.prefix + dur(left) : s.dataset.done;
  }
  function tickAll() {
    for (const s of document.querySelectorAll("[data-until]")) tick(s);
  }

  function renderSplit(v) {
    const bar = el("div", { class: "split", role: "img", "aria-label": "Share of clients: " + v.pools.map((p) => p.name + " " + pct(v.shares[p.name] || 0)).join(", ") });
    v.pools.forEach((p, i) => {
      const share = v.shares[p.name] || 0;
      if (share <= 0) return;
      const seg = el("div", { class: "seg " + poolClass(p.name, i), title: p.name + " " + pct(share) }, share >= 0.12 ? p.name + " " + pct(share) : "");
      seg.style.width = (share * 100) + "%";
      bar.append(seg);
    });
    return bar;
  }

  function renderPools(v) {
    const rows = v.pools.map((p, i) => {
      const h = p.healthy ? el("span", { class: "healthy" }, "✓ healthy") : el("span", { class: "unhealthy" }, "✗ unhealthy");
      if (p.health && p.health.detail) h.title = p.health.detail;
      return el("tr", { "data-pool": p.name },
        el("td", {}, el("span", { class: "swatch " + poolClass(p.name, i), "aria-hidden": "true" }), p.name),
        el("td", { class: "num" }, p.weight),
        el("td", { class: "num" }, p.effective_weight),
        el("td", { class: "num" }, pct(v.shares[p.name] || 0)),
        el("td", {}, h));
    });
    return el("div", { class: "scroll" }, el("table", { class: "pools" },
      el("thead", {}, el("tr", {}, el("th", {}, "Pool"), el("th", { class: "num" }, "Weight"), el("th", { class: "num" }, "Effective"), el("th", { class: "num" }, "Share"), el("th", {}, "Health"))),
      el("tbody", {}, ...rows)));
  }

  function renderRollout(v) {
    const r = v.rollout;
    if (!r) return null;
    const names = v.pools.map((p) => p.name);
    const wrap = el("div", { class: "rollout" });
    const head = "Rollout " + r.state + (r.state === "running" || r.state === "paused" ? ", step " + (r.step + 1) + " of " + r.steps.length : "");
    wrap.append(el("h3", {}, head));
    if (r.reason) wrap.append(el("p", { class: "meta" }, "Reason: " + r.reason));
    const active = r.state === "running" || r.state === "paused";
    const ol = el("ol", { class: "steps" });
    r.steps.forEach((s, i) => {
      let cls, label;
      if (r.state === "completed" || (active && i < r.step)) { cls = "done"; label = "✓ done"; }
      else if (active && i === r.step) { cls = "current"; label = r.state === "paused" ? "‖ paused" : "▶ current"; }
      else { cls = "todo"; label = r.state === "aborted" ? "– skipped" : "○ to come"; }
      const li = el("li", { class: cls, "data-step": String(i) },
        el("span", { class: "stepstate" }, label), " ", "Step " + (i + 1) + ": " + weightsText(names, s.weights), s.hold ? ", hold " + s.hold : "");
      if (cls === "current" && r.state === "running" && r.next_change_at) {
        li.append(" — ", countdown(Date.parse(r.next_change_at), "next step in ", "next step due"));
      }
      ol.append(li);
    });
    wrap.append(ol);
    const a = renderAnalysis(r.analysis);
    if (a) wrap.append(a);
    return wrap;
  }

  // renderAnalysis shows canary analysis checks when the rollout carries
  // them, with each check's last measured value where the JSON has one.
  function renderAnalysis(an) {
    if (!an || typeof an !== "object") return null;
    const checks = Array.isArray(an.checks) ? an.checks : [];
    const wrap = el("div", { class: "analysis" }, el("h3", {}, "Analysis" + (an.interval ? " (every " + an.interval + ")" : "")));
    if (!checks.length) { wrap.append(el("p", { class: "empty" }, "No checks.")); return wrap; }
    const rows = checks.map((c) => {
      let last = c.last_value !== undefined ? c.last_value : (c.last !== undefined ? c.last : c.value);
      let phase = c.last_result || c.phase || c.status || c.result || "";
      if (c.passes !== undefined) phase = (phase ? phase + " · " : "") + c.passes + " passed, " + (c.failures || 0) + " failed, " + (c.inconclusives || 0) + " inconclusive";
      const ms = Array.isArray(c.measurements) ? c.measurements : [];
      if (ms.length) {
        const m = ms[ms.length - 1];
        if (last === undefined) last = m.value;
        if (!phase) phase = m.phase || m.status || m.result || "";
      }
      const range = (c.min !== undefined && c.min !== null ? c.min : "−∞") + " … " + (c.max !== undefined && c.max !== null ? c.max : "+∞");
      return el("tr", {},
        el("td", {}, c.name || ""), el("td", {}, c.pool || ""), el("td", {}, range),
        el("td", { class: "num" }, last === undefined || last === null ? "–" : String(typeof last === "number" ? Math.round(last * 1e4) / 1e4 : last)),
        el("td", {}, String(phase)));
    });
    wrap.append(el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "Check"), el("th", {}, "Pool"), el("th", {}, "Range"), el("th", { class: "num" }, "Last"), el("th", {}, "Result"))),
      el("tbody", {}, ...rows))));
    return wrap;
  }

  // renderChart draws each pool's share of answers per sample over the
  // last 15 minutes; each line is labelled with its pool and last share.
  function renderChart(v, samples) {
    const wrap = el("div", { class: "chart" }, el("h3", {}, "Answers by pool, last 15 minutes"));
    const names = v.pools.map((p) => p.name);
    const pts = samples.filter((s) => names.some((p) => (s.counts[p] || 0) > 0));
    if (!pts.length) {
      wrap.append(el("p", { class: "empty" }, samples.length ? "No answers from the pools in the last 15 minutes." : "Collecting: a sample every 5 s."));
      return wrap;
    }
    const W = 600, H = 160, L = 36, R = 110, T = 8, B = 20;
    const t1 = Date.parse(samples[samples.length - 1].at), t0 = t1 - 15 * 60 * 1000;
    const x = (t) => L + (W - L - R) * Math.max(0, (t - t0)) / (t1 - t0 || 1);
    const y = (f) => T + (H - T - B) * (1 - f);
    const chart = svg("svg", { class: "chart", viewBox: "0 0 " + W + " " + H, role: "img" });
    let summary = [];
    for (const f of [0, 0.5, 1]) {
      chart.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: y(f), y2: y(f) }));
      const t = svg("text", { x: L - 4, y: y(f) + 4, "text-anchor": "end" }); t.textContent = (f * 100) + "%"; chart.append(t);
    }
    const tl = svg("text", { x: L, y: H - 4 }); tl.textContent = "−15 min"; chart.append(tl);
    const tr = svg("text", { x: W - R, y: H - 4, "text-anchor": "end" }); tr.textContent = "now"; chart.append(tr);
    const dashes = ["", "6 3", "2 3", "8 3 2 3", "1 2", "10 4"];
    const labelsY = [];
    names.forEach((p, i) => {
      const coords = pts.map((s) => {
        const tot = names.reduce((a, q) => a + (s.counts[q] || 0), 0);
        return [x(Date.parse(s.at)), y((s.counts[p] || 0) / tot), (s.counts[p] || 0) / tot];
      });
      const line = svg("polyline", { class: "line " + poolClass(p, i), points: coords.map((c) => c[0].toFixed(1) + "," + c[1].toFixed(1)).join(" ") });
      if (dashes[i % dashes.length]) line.setAttribute("stroke-dasharray", dashes[i % dashes.length]);
      chart.append(line);
      for (const c of coords) {
        chart.append(svg("circle", { class: "dot " + poolClass(p, i), cx: c[0].toFixed(1), cy: c[1].toFixed(1), r: 2 }));
      }
      const last = coords[coords.length - 1];
      let ly = last[1] + 4;
      while (labelsY.some((u) => Math.abs(u - ly) < 12)) ly += 12;
      labelsY.push(ly);
      const lbl = svg("text", { class: "label", x: W - R + 6, y: Math.min(H - B, ly) });
      lbl.textContent = p + " " + pct(last[2]);
      chart.append(lbl);
      summary.push(p + " " + pct(last[2]));
    });
    chart.setAttribute("aria-label", "Share of answers per pool over the last 15 minutes; last sample: " + summary.join(", "));
    wrap.append(chart);
    return wrap;
  }

  function renderHistory(v, hist) {
    const wrap = el("div", { class: "history" }, el("h3", {}, "Last changes"));
    if (!hist.length) { wrap.append(el("p", { class: "empty" }, "No changes yet.")); return wrap; }
    const names = v.pools.map((p) => p.name);
    const rows = hist.map((c) => el("tr", {},
      el("td", {}, new Date(c.time).toLocaleString()),
      el("td", {}, c.source),
      el("td", {}, weightsText(names, c.from) + " → " + weightsText(names, c.to)),
      el("td", {}, c.reason || "")));
    wrap.append(el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "Time"), el("th", {}, "Source"), el("th", {}, "Weights"), el("th", {}, "Reason"))),
      el("tbody", {}, ...rows))));
    return wrap;
  }

  function renderSwitch(sw) {
    const v = sw.state;
    const sec = el("section", { class: "switch", "data-switch": v.name, "aria-labelledby": "sw-" + v.name },
      el("h2", { id: "sw-" + v.name }, v.name));
    const meta = el("p", { class: "meta" }, "version " + v.version + " · store " + v.store + " · sticky " + v.sticky + " · ttl " + v.ttl.max + "/" + v.ttl.min + " s");
    if (v.fail_open) meta.append(" ", el("span", { class: "flag bad" }, "fail open: every weighted pool is unhealthy"));
    if (v.store_stale) meta.append(" ", el("span", { class: "flag warn" }, "store not answering: weights may be stale"));
    sec.append(meta, renderSplit(v));
    const settle = el("p", { class: "settle" }, countdown(Date.parse(v.effective_at), "Caches settle in ", "Caches settled on the current weights"));
    sec.append(settle, renderPools(v));
    const r = renderRollout(v);
    if (r) sec.append(r);
    sec.append(renderChart(v, sw.answers || []), renderHistory(v, sw.history || []));
    return sec;
  }

  function render() {
    const box = $("switches");
    if (!data.switches.length) {
      box.replaceChildren(el("p", { class: "empty" }, "No switches on this listener."));
      return;
    }
    box.replaceChildren(...data.switches.map(renderSwitch));
  }

  async function poll() {
    const headers = {};
    const tok = sessionStorage.getItem(TOKEN_KEY);
    if (needsToken) {
      if (!tok) { showLogin(); setConn("Token required.", false); return; }
      headers["Authorization"] = "Bearer " + tok;
    }
    if (etag) headers["If-None-Match"] = etag;
    let res;
    try {
      res = await fetch("/v1/status", { method: "GET", headers: headers, cache: "no-store", credentials: "omit", redirect: "error" });
    } catch (e) {
      setConn("Cannot reach the admin listener; retrying…", true);
      schedule();
      return;
    }
    const date = Date.parse(res.headers.get("Date") || "");
    if (!isNaN(date)) skew = date - Date.now();
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      etag = "";
      showLogin("401: the token was refused. Enter the token from the Corefile's token file.", true);
      setConn("Not authorised (401).", true);
      return;
    }
    if (res.status === 403) {
      let msg = "";
      try { msg = (await res.json()).error || ""; } catch (e) { /* not JSON */ }
      setConn("Refused (403): " + (msg || "this Host or origin is not allowed") + ". Open the page through the listener's own address or a loopback name.", true);
      schedule();
      return;
    }
    if (res.status === 304) {
      setConn("Live · updated " + new Date().toLocaleTimeString(), false);
      schedule();
      return;
    }
    if (!res.ok) {
      setConn("Error " + res.status + " from /v1/status; retrying…", true);
      schedule();
      return;
    }
    data = await res.json();
    etag = res.headers.get("ETag") || "";
    $("login").hidden = true;
    render();
    setConn("Live · updated " + new Date().toLocaleTimeString(), false);
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(poll, POLL_MS);
  }

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    $("login").hidden = true;
    etag = "";
    setConn("Loading…", false);
    poll();
  });

  setInterval(tickAll, 1000);
  poll();
})();
