/* The uploader's page: resumable upload with tus-js-client, the analysis form, live status over SSE. */
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const PARALLEL_FROM = 32 * 1024 * 1024; // smaller files go in one stream: their file ID is known at once
  const STORE = "gateway.watching";
  const state = { upload: null, fileId: null, pendingForm: null, analysisId: null, events: null, paused: false };

  const say = (id, text, kind) => { const el = $(id); el.textContent = text || ""; el.dataset.kind = kind || ""; };
  const human = (bytes) => {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i += 1; }
    return `${bytes.toFixed(i ? 1 : 0)} ${units[i]}`;
  };
  const duration = (seconds) => {
    if (!isFinite(seconds) || seconds < 0) return "";
    const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    return m ? `${m} min ${s} s left` : `${s} s left`;
  };
  const fileIdOf = (url) => url.split("/").filter(Boolean).pop();

  // -- upload -------------------------------------------------------------------------------------------
  let samples = [];
  function progress(sent, total) {
    const now = performance.now();
    samples.push([now, sent]);
    samples = samples.filter(([t]) => now - t < 5000);
    const [t0, s0] = samples[0];
    const rate = now > t0 ? (sent - s0) / ((now - t0) / 1000) : 0;
    const percent = total ? (sent / total) * 100 : 0;
    $("progress").value = percent;
    $("percent").textContent = `${percent.toFixed(1)}% of ${human(total)}`;
    $("speed").textContent = rate ? `${human(rate)}/s` : "";
    $("eta").textContent = rate ? duration((total - sent) / rate) : "";
  }

  function startUpload(file) {
    if (state.upload) state.upload.abort();
    samples = [];
    $("progress-box").hidden = false;
    $("drop-text").textContent = `${file.name} (${human(file.size)})`;
    say("upload-message", "Uploading…");
    const upload = new tus.Upload(file, {
      endpoint: "/files/",
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000, 60000, 60000],
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
      parallelUploads: file.size >= PARALLEL_FROM ? 4 : 1,
      removeFingerprintOnSuccess: true,
      onUploadUrlAvailable: () => {
        state.fileId = fileIdOf(upload.url);
        $("submit").disabled = false;
        if (state.pendingForm) sendForm(state.pendingForm);
      },
      onProgress: progress,
      onSuccess: () => {
        progress(file.size, file.size);
        $("eta").textContent = "";
        say("upload-message", "Upload complete.", "ok");
        $("pause").hidden = true;
      },
      onError: (error) => say("upload-message", `The upload stopped: ${error.message || error}. Pick the file again to resume.`, "error"),
    });
    state.upload = upload;
    $("submit").disabled = false;
    upload.findPreviousUploads().then((previous) => {
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
        say("upload-message", "Resuming where the upload stopped…");
      }
      upload.start();
    });
  }

  $("file").addEventListener("change", (e) => { if (e.target.files[0]) startUpload(e.target.files[0]); });
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files[0]) startUpload(e.dataTransfer.files[0]); });
  $("pause").addEventListener("click", () => {
    if (!state.upload) return;
    state.paused = !state.paused;
    if (state.paused) { state.upload.abort(); $("pause").textContent = "Resume"; say("upload-message", "Paused."); }
    else { state.upload.start(); $("pause").textContent = "Pause"; say("upload-message", "Uploading…"); }
  });

  // -- the analysis form -------------------------------------------------------------------------------
  async function csrfToken() {
    const answer = await fetch("/csrftoken/", { credentials: "same-origin" });
    return (await answer.json()).csrfToken;
  }

  async function sendForm(fields) {
    state.pendingForm = null;
    say("form-message", "Sending…");
    try {
      const answer = await fetch("/cinema/", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": await csrfToken() },
        body: JSON.stringify({ ...fields, file_id: state.fileId }),
      });
      const body = await answer.json();
      if (!answer.ok) { say("form-message", body.error || `Refused (${answer.status})`, "error"); return; }
      say("form-message", `Analysis #${body.id} requested.`, "ok");
      watch(state.fileId, body.id);
    } catch (error) {
      say("form-message", `Could not send the form: ${error.message}`, "error");
    }
  }

  $("analysis-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(e.target);
    const fields = { title: data.get("title"), target_audience: data.get("target_audience"), comment: data.get("comment") };
    if (state.fileId) sendForm(fields);
    else { state.pendingForm = fields; say("form-message", "The form will be sent as soon as the upload has started."); }
  });

  // -- live status ------------------------------------------------------------------------------------
  const LABELS = {
    "--------": "Waiting for the upload to finish", processing: "The analyzer has the file",
    ready: "The report is ready", db_ready: "Report and recommendation are ready", error: "Failed",
  };

  function mark(text, kind) {
    const item = document.createElement("li");
    item.textContent = text;
    item.dataset.kind = kind || "";
    $("timeline").appendChild(item);
  }

  function watch(fileId, analysisId) {
    state.fileId = fileId;
    state.analysisId = analysisId;
    localStorage.setItem(STORE, JSON.stringify({ fileId, analysisId }));
    $("status-card").hidden = false;
    if (state.events) state.events.close();
    const events = new EventSource(`/events/${encodeURIComponent(fileId)}/`);
    state.events = events;
    const mine = (e) => JSON.parse(e.data).analysis_id === analysisId;
    let last = null;
    const status = (value, reason) => {
      if (value === last) return;
      last = value;
      mark(`${LABELS[value] || value}${reason ? `: ${reason}` : ""}`, value === "error" ? "error" : "");
      $("timeline").dataset.status = value;
      if (value === "db_ready" || value === "ready") loadFindings();
      if (value === "db_ready" || value === "error") events.close();
    };
    events.addEventListener("snapshot", (e) => {
      const snapshot = JSON.parse(e.data);
      const analysis = snapshot.analyses.find((a) => a.analysis_id === analysisId);
      if (analysis) status(analysis.status, analysis.reason);
    });
    events.addEventListener("status", (e) => { if (mine(e)) { const d = JSON.parse(e.data); status(d.status, d.reason); } });
    events.addEventListener("downloading", (e) => { if (mine(e)) mark("The analyzer is reading the script"); });
    events.addEventListener("ready", (e) => { if (mine(e)) showReport(JSON.parse(e.data).result_url); });
  }

  function showReport(url) {
    if (!url) return;
    const link = $("report-link");
    link.href = url;
    link.hidden = false;
  }

  async function loadFindings() {
    const q = `file_id=${encodeURIComponent(state.fileId)}`;
    const [analysis, comments] = await Promise.all([
      fetch(`/cinema/${state.analysisId}/?${q}`).then((r) => r.json()),
      fetch(`/comments/?analysis_id=${state.analysisId}&${q}`).then((r) => r.json()),
    ]);
    $("findings-card").hidden = false;
    $("rating-line").textContent = `Suggested rating: ${analysis.suggested_age_rating || "—"} · target audience: ${analysis.target_audience}`;
    showReport(analysis.result_url);
    const body = $("by-category").querySelector("tbody");
    body.replaceChildren();
    for (const v of analysis.violations) {
      const row = body.insertRow();
      [v.name, v.count, v.severity || ""].forEach((text) => { row.insertCell().textContent = text; });
    }
    if (!analysis.violations.length) body.insertRow().insertCell().textContent = "No category found.";
    const scenes = new Map();
    for (const c of comments.filter((c) => c.author === "AI")) {
      const scene = (c.location || "").split(", line")[0] || "—";
      if (!scenes.has(scene)) scenes.set(scene, []);
      scenes.get(scene).push(c);
    }
    const box = $("by-scene");
    box.replaceChildren();
    for (const [scene, items] of scenes) {
      const title = document.createElement("h4");
      title.textContent = scene;
      const list = document.createElement("ul");
      for (const c of items) {
        const li = document.createElement("li");
        li.textContent = `${c.name} (${c.severity}, ×${c.count}): “${c.quote}”`;
        li.className = "finding";
        li.dataset.violation = c.violation_id;
        list.appendChild(li);
      }
      box.append(title, list);
    }
  }

  const watching = JSON.parse(localStorage.getItem(STORE) || "null");
  if (watching && watching.fileId && watching.analysisId) watch(watching.fileId, watching.analysisId);
})();
