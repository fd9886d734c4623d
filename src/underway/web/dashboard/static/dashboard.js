// underway dashboard: live updates over the API's event stream, confirmations, the chart.
// No inline script anywhere: the Content-Security-Policy allows scripts from this file only.
"use strict";

(function () {
  const body = document.body;
  const base = body.dataset.base || "";
  const indicator = document.getElementById("live");

  // --- live updates ---------------------------------------------------------------------------

  function setState(state, text) {
    if (!indicator) return;
    indicator.dataset.state = state;
    indicator.textContent = text;
  }

  function each(root, selector, fn) {
    root.querySelectorAll(selector).forEach(fn);
  }

  // A job changed: move its progress bars and badges at once, wherever the page shows it.
  function showJob(job) {
    each(document, '[data-job-id="' + job.id + '"]', function (row) {
      each(row, "progress[data-field=progress]", function (bar) {
        if (job.progress === null || job.progress === undefined) {
          bar.value = 0;
          bar.dataset.empty = "1";
        } else {
          bar.value = job.progress;
          delete bar.dataset.empty;
        }
      });
      each(row, "[data-field=percent]", function (el) {
        el.textContent = job.progress === null ? "" : Math.round(job.progress * 100) + "%";
      });
      each(row, "[data-field=status_message]", function (el) {
        el.textContent = job.status_message || "";
      });
      each(row, "[data-field=status]", function (el) {
        el.textContent = job.status + (job.cancel_requested && job.status === "running" ? " · cancelling" : "");
        el.className = "status s-" + job.status;
      });
    });
  }

  // The rest of the page (counts, lists, attempts) is fetched again and the live regions
  // swapped in: at most once a second however many changes arrive.
  let refreshTimer = null;
  let lastRefresh = 0;

  let refreshCost = 0; // how long the last refresh took: a slow server is asked less often

  function scheduleRefresh() {
    if (refreshTimer !== null || !document.querySelector("[data-live]")) return;
    const gap = Math.max(1000, 4 * refreshCost);
    const wait = Math.max(250, gap - (Date.now() - lastRefresh));
    refreshTimer = setTimeout(refresh, wait);
  }

  function busy(region) {
    const active = document.activeElement;
    const dialog = document.getElementById("confirm");
    return (dialog && dialog.open) ||
      (active && region.contains(active) && (active.tagName === "INPUT" || active.tagName === "SELECT"));
  }

  function refresh() {
    refreshTimer = null;
    const started = Date.now();
    lastRefresh = started;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) {
        refreshCost = Date.now() - started;
        if (!response.ok || response.redirected) return null;
        return response.text();
      })
      .then(function (html) {
        if (html === null) return;
        const fresh = new DOMParser().parseFromString(html, "text/html");
        each(document, "[data-live][id]", function (region) {
          const next = fresh.getElementById(region.id);
          if (next && next.innerHTML !== region.innerHTML && !busy(region)) {
            region.innerHTML = next.innerHTML;
          }
        });
      })
      .catch(function () { /* the server is away; the stream's reconnect refreshes again */ });
  }

  function connect() {
    // From where the page was read: no change between rendering and connecting is lost.
    const params = new URLSearchParams(body.dataset.stream || "");
    if (body.dataset.since) params.set("since", body.dataset.since);
    const query = params.toString();
    const source = new EventSource(base + "/api/v1/events" + (query ? "?" + query : ""));
    let dropped = false;
    source.onopen = function () {
      setState("live", "live");
      if (dropped) scheduleRefresh(); // changes while away were replayed or are in the page now
      dropped = false;
    };
    source.addEventListener("job", function (event) {
      showJob(JSON.parse(event.data));
      scheduleRefresh();
    });
    source.onerror = function (event) {
      if (event.data) {
        // The server's own `event: error`: the feed no longer holds the page's cursor (it was
        // open a long time). A fresh page starts from a fresh one.
        source.close();
        window.location.reload();
        return;
      }
      dropped = true;
      setState("reconnecting", "reconnecting…");
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (the server answered with an error while restarting): start over.
        setTimeout(connect, 2000);
      }
    };
  }

  if (indicator) connect();
  if (body.dataset.poll) setInterval(scheduleRefresh, Number(body.dataset.poll) * 1000);

  // --- confirmations --------------------------------------------------------------------------

  const dialog = document.getElementById("confirm");
  let pending = null;

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm || !dialog) return;
    if (form.dataset.confirmed === "1") {
      delete form.dataset.confirmed;
      return;
    }
    event.preventDefault();
    pending = form;
    document.getElementById("confirm-text").textContent = form.dataset.confirm;
    dialog.returnValue = "";
    dialog.showModal();
    document.getElementById("confirm-ok").focus();
  });

  if (dialog) {
    dialog.addEventListener("close", function () {
      const form = pending;
      pending = null;
      if (form && dialog.returnValue === "ok") {
        form.dataset.confirmed = "1";
        form.requestSubmit();
      }
    });
  }

  each(document, "select[data-autosubmit]", function (select) {
    select.addEventListener("change", function () { select.form.requestSubmit(); });
  });

  // --- the last hour's chart ------------------------------------------------------------------

  const chart = document.getElementById("history");
  const SVG = "http://www.w3.org/2000/svg";

  function element(name, attributes) {
    const el = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (k) { el.setAttribute(k, attributes[k]); });
    return el;
  }

  function drawChart(minutes) {
    const width = 600, height = 120, top = 4, bottom = 1;
    const most = Math.max(1, ...minutes.map(function (m) { return m.completed + m.failed; }));
    const step = width / Math.max(1, minutes.length);
    const svg = element("svg", { viewBox: "0 0 " + width + " " + height, preserveAspectRatio: "none", role: "img" });
    const scale = (height - top - bottom) / most;
    let completed = 0, failed = 0;
    minutes.forEach(function (m, i) {
      completed += m.completed;
      failed += m.failed;
      const x = i * step + step * 0.12, w = step * 0.76;
      const hc = m.completed * scale, hf = m.failed * scale;
      const title = m.at.slice(11, 16) + " UTC: " + m.completed + " completed, " + m.failed + " failed";
      const group = element("g", {});
      const tip = element("title", {});
      tip.textContent = title;
      group.appendChild(tip);
      group.appendChild(element("rect", { x: x, y: height - bottom - hc, width: w, height: hc, class: "completed" }));
      group.appendChild(element("rect", { x: x, y: height - bottom - hc - hf, width: w, height: hf, class: "failed" }));
      svg.appendChild(group);
    });
    svg.appendChild(element("line", { x1: 0, x2: width, y1: height - bottom, y2: height - bottom, class: "gridline" }));
    // Labels are HTML beside the SVG: the SVG stretches to the panel's width, text would too.
    const labels = document.createElement("div");
    labels.className = "axis-labels";
    [0, Math.floor(minutes.length / 2), minutes.length - 1].forEach(function (i) {
      const label = document.createElement("span");
      label.textContent = minutes[i] ? minutes[i].at.slice(11, 16) + " UTC" : "";
      labels.appendChild(label);
    });
    const peak = document.createElement("span");
    peak.className = "peak";
    peak.textContent = most + " a minute";
    svg.setAttribute("aria-label", completed + " completed and " + failed + " failed in the last hour");
    chart.replaceChildren(peak, svg, labels);
    const rate = document.getElementById("failure-rate");
    if (rate) {
      rate.textContent = completed + failed === 0 ? "· nothing finished"
        : "· failure rate " + (100 * failed / (completed + failed)).toFixed(1) + "%";
    }
  }

  function loadChart() {
    fetch(chart.dataset.src, { credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 404) return { minutes: null };
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (data === null) return;
        if (data.minutes === null || !Array.isArray(data.minutes)) {
          const empty = document.createElement("p");
          empty.className = "empty";
          empty.textContent = "No history yet.";
          chart.replaceChildren(empty);
        } else {
          drawChart(data.minutes);
        }
      })
      .catch(function () { /* kept as it was; tried again in a minute */ });
  }

  if (chart && chart.dataset.src) {
    loadChart();
    setInterval(loadChart, 30000);
  }
})();
