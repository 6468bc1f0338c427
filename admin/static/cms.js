/* The analysts' dashboard: live statuses (the files' Server-Sent Events streams, plus a light poll of
 * /cms/status.json for everything on the page) and the findings chart (Chart.js, served by the gateway). */
(function () {
  "use strict";

  function readJSON(id) {
    var node = document.getElementById(id);
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  function slug(status) { return status === "--------" ? "waiting" : (status || ""); }

  var watch = readJSON("watch-data");
  var note = document.getElementById("live-note");
  var newActivity = document.getElementById("new-activity");

  function showNewActivity() { if (newActivity) newActivity.hidden = false; }

  function setLive(on, text) {
    if (!note) return;
    note.classList.toggle("on", on);
    note.textContent = text;
  }

  // -- applying states --------------------------------------------------------------------------------
  function analysisNodes(id) {
    return document.querySelectorAll('[data-analysis-id="' + String(id).replace(/[^0-9]/g, "") + '"]');
  }

  function applyAnalysis(id, data) {
    var nodes = analysisNodes(id);
    if (!nodes.length) {
      if (watch && !watch.analysis_id) showNewActivity();  // the dashboard: an analysis not listed yet
      return;
    }
    nodes.forEach(function (node) {
      var badge = node.querySelector("[data-status]");
      if (badge && data.status !== undefined && badge.textContent !== slug(data.status)) {
        badge.textContent = slug(data.status);
        badge.className = "status status-" + slug(data.status) + " changed";
        if (watch && watch.analysis_id === Number(id)) showNewActivity();
      }
      var reason = node.querySelector("[data-reason]");
      if (reason && data.status !== undefined) {
        reason.textContent = data.reason || "";
        reason.hidden = !data.reason;
      }
      var suggested = node.querySelector("[data-suggested]");
      if (suggested && data.suggested_age_rating !== undefined && data.suggested_age_rating !== null &&
          suggested.textContent !== data.suggested_age_rating) {
        suggested.textContent = data.suggested_age_rating;
        if (watch && watch.analysis_id === Number(id)) showNewActivity();
      }
      if (data.result_url) {
        var result = document.getElementById("result");
        var link = result && result.querySelector("[data-result-link]");
        if (link && watch && watch.analysis_id === Number(id)) {
          link.setAttribute("href", data.result_url);
          result.hidden = false;
        }
      }
    });
  }

  function applyFile(id, data) {
    document.querySelectorAll("[data-file-id]").forEach(function (node) {
      if (node.getAttribute("data-file-id") !== id) return;
      var state = node.querySelector("[data-file-state]");
      if (state && data.state) {
        state.textContent = data.state;
        state.className = "file-state state-" + data.state;
      }
      var bar = node.querySelector("[data-file-progress]");
      if (bar) {
        if (data.length) bar.max = data.length;
        if (typeof data.offset === "number") bar.value = data.offset;
        if (data.state && data.state !== "uploading") bar.hidden = true;
      }
    });
  }

  // -- polling ---------------------------------------------------------------------------------------------
  var pollTimer = null;

  function poll() {
    if (!watch || !watch.files || !watch.files.length || document.hidden) return schedule();
    var query = watch.files.map(function (id) { return "file=" + encodeURIComponent(id); }).join("&");
    fetch(watch.status_url + "?" + query, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (answer) {
        if (answer.status === 401) {
          setLive(false, "logged out — reload to log in again");
          return null;
        }
        return answer.ok ? answer.json() : null;
      })
      .then(function (body) {
        if (!body) return;
        Object.keys(body.files || {}).forEach(function (id) { applyFile(id, body.files[id]); });
        Object.keys(body.analyses || {}).forEach(function (id) { applyAnalysis(id, body.analyses[id]); });
      })
      .catch(function () { setLive(false, "offline — retrying"); })
      .then(schedule);
  }

  function schedule() {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, ((watch && watch.poll_seconds) || 10) * 1000);
  }

  // -- event streams ---------------------------------------------------------------------------------------
  function listen(fileId) {
    if (!window.EventSource) return;
    var source = new EventSource(watch.events_url.replace("FILE_ID", encodeURIComponent(fileId)));
    function on(type, handler) {
      source.addEventListener(type, function (event) {
        var data;
        try { data = JSON.parse(event.data); } catch (e) { return; }
        handler(data);
      });
    }
    source.onopen = function () { setLive(true, "live"); };
    source.onerror = function () { setLive(false, "reconnecting…"); };
    on("snapshot", function (data) {
      if (data.file) applyFile(fileId, data.file);
      (data.analyses || []).forEach(function (a) { applyAnalysis(a.analysis_id, a); });
    });
    on("status", function (data) { applyAnalysis(data.analysis_id, data); });
    on("upload", function (data) { applyFile(fileId, data); });
    on("ready", function () { poll(); });  // the poll gives the result link as a path on this site
    on("comment", function (data) {
      if (watch.analysis_id === data.analysis_id) showNewActivity();
    });
    // "refer" events (download URLs carrying refer keys) are deliberately not shown.
  }

  // -- the findings chart -------------------------------------------------------------------------------
  var SEVERITY_COLOURS = {"severe": "#d64550", "moderate": "#f08c2e", "mild": "#e7c13c", "None": "#8fb996",
                          "----": "#8a94a6"};

  function shorten(text, limit) { return text.length > limit ? text.slice(0, limit - 1) + "…" : text; }

  function drawChart() {
    var findings = readJSON("findings-data");
    var box = document.getElementById("findings-chart-container");
    var canvas = document.getElementById("findings-chart");
    if (!findings || !findings.length || !box || !canvas || !window.Chart) return;
    box.style.height = (60 + 34 * findings.length) + "px";
    var narrow = window.matchMedia && window.matchMedia("(max-width: 600px)").matches;
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: findings.map(function (f) { return shorten(f.name, narrow ? 22 : 48); }),
        datasets: [{
          label: "occurrences",
          data: findings.map(function (f) { return f.count; }),
          backgroundColor: findings.map(function (f) { return SEVERITY_COLOURS[f.severity] || "#8a94a6"; }),
          borderRadius: 3
        }]
      },
      options: {
        indexAxis: "y",
        maintainAspectRatio: false,
        responsive: true,
        animation: false,
        scales: {x: {beginAtZero: true, ticks: {precision: 0}}},
        plugins: {
          legend: {display: false},
          tooltip: {callbacks: {
            title: function (items) { return findings[items[0].dataIndex].name; },
            label: function (item) {
              var f = findings[item.dataIndex];
              return f.count + " × · severity " + f.severity +
                (f.age_min ? " · " + f.age_min + (f.age_max && f.age_max !== f.age_min ? "–" + f.age_max : "") : "");
            }
          }}
        }
      }
    });
  }

  function localTimes() {
    document.querySelectorAll("time[datetime]").forEach(function (node) {
      var when = new Date(node.getAttribute("datetime"));
      if (!isNaN(when)) node.textContent = when.toLocaleString();
    });
  }

  function start() {
    localTimes();
    drawChart();
    if (!watch) return;
    (watch.streams || []).forEach(listen);
    if (!(watch.streams || []).length) setLive(false, "updates every " + (watch.poll_seconds || 10) + " s");
    schedule();
    document.addEventListener("visibilitychange", function () { if (!document.hidden) poll(); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
