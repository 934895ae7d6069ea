// Revive's page. Photos go up as one job (POST /v1/jobs, with upload progress
// from XMLHttpRequest); the job's server-sent events then update each photo's
// card: a bar per stage, the damage found (a coloured overlay per kind, with an
// opacity control), a before/after slider and the candidates, best first.
// The job's id goes into the address (#job=…), so a reload or a shared link
// shows the job again from the gateway.
const MAX_PHOTOS = 10;
const STAGES = ["decode", "detect", "generate", "upscale"];
const DAMAGE_COLOURS = { scratch: "rgb(255,59,48)", tear: "rgb(10,132,255)", stain: "rgb(255,204,0)" };
const form = document.getElementById("form");
const input = document.getElementById("files");
const drop = document.getElementById("drop");
const chosen = document.getElementById("chosen");
const submit = document.getElementById("submit");
const statusBox = document.getElementById("status");
const results = document.getElementById("results");
let files = [];
let events = null;

function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function choose(list) {
  files = Array.from(list).filter((f) => f.type.startsWith("image/") || f.type === "").slice(0, MAX_PHOTOS);
  chosen.replaceChildren(...files.map((f) => el("li", { textContent: `${f.name} (${Math.round(f.size / 1024)} KB)` })));
  statusBox.textContent = list.length > MAX_PHOTOS ? `Only the first ${MAX_PHOTOS} photos will be sent.` : "";
  submit.disabled = files.length === 0;
}

input.addEventListener("change", () => choose(input.files));
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); choose(e.dataTransfer.files); });

function bar(fraction) {
  return el("div", { className: "progress" }, [el("div", { style: `width:${Math.round(100 * fraction)}%` })]);
}

// What went wrong with a photo, in words a person can act on (the service's own message stays as a detail).
function explain(error) {
  const advice = {
    INVALID_ARGUMENT: "This file could not be used as a photo. Check that it is a JPEG, PNG, TIFF, BMP or WebP scan of at most 4096 pixels a side, and send it again.",
    UNAVAILABLE: "A restoration service is not reachable right now, so this photo was not restored. Try again in a few minutes.",
    DEADLINE_EXCEEDED: "The cluster was too busy to finish this photo in time. Try again later, or ask for fewer candidates.",
    RESOURCE_EXHAUSTED: "The cluster is full right now. Try again in a few minutes.",
    CANCELLED: "This photo was cancelled before it was finished.",
  }[error.code] ?? "Something went wrong on our side while restoring this photo. Try again; if it happens again, tell the people who run this service.";
  return el("div", { className: "error" }, [el("p", { textContent: advice }), el("p", { className: "detail", textContent: `Details: ${error.message}` })]);
}

function summary(job) {
  const total = job.photos.length;
  const done = job.photos.filter((p) => p.status === "done").length;
  const failed = job.photos.filter((p) => p.status === "failed").length;
  const photos = (n) => `${n} photo${n === 1 ? "" : "s"}`;
  if (job.state === "cancelled") return { ok: false, text: `The job was cancelled: ${photos(done)} of ${total} restored before it stopped.` };
  if (failed === 0 && done === total) return { ok: true, text: `All ${photos(total)} restored.` };
  if (done === 0) return { ok: false, text: `None of the ${photos(total)} could be restored; each card below says why and what to do.` };
  return { ok: false, text: `${photos(done)} of ${total} restored; ${photos(failed)} could not be: see the cards marked in red.` };
}

function legend(coverage) {
  return el("span", { className: "legend" }, Object.entries(DAMAGE_COLOURS)
    .filter(([kind]) => (coverage?.[kind] ?? 0) > 0)
    .map(([kind, colour]) => el("span", {}, [el("i", { style: `background:${colour}` }), ` ${kind}`])));
}

function comparison(original, restored, damage) {
  // The restored image is clipped to the slider's position over the original; the overlay shows what was repaired.
  const after = el("img", { className: "after", src: restored, alt: "restored" });
  const overlay = el("img", { className: "overlay", src: damage?.mask_url || "", alt: "damage found and repaired", hidden: true });
  const slider = el("input", { type: "range", min: 0, max: 100, value: 50, className: "slider", ariaLabel: "before / after" });
  const clip = () => { after.style.clipPath = `inset(0 0 0 ${slider.value}%)`; };
  slider.addEventListener("input", clip);
  clip();
  const opacity = el("input", { type: "range", min: 10, max: 100, value: 70, className: "opacity", ariaLabel: "overlay opacity",
    oninput: (e) => { overlay.style.opacity = e.target.value / 100; } });
  overlay.style.opacity = 0.7;
  const controls = damage?.mask_url ? el("div", { className: "overlay-controls" }, [
    el("label", {}, [el("input", { type: "checkbox", onchange: (e) => { overlay.hidden = !e.target.checked; } }), " show what was repaired"]),
    el("label", {}, [" opacity ", opacity]), legend(damage.coverage),
  ]) : "";
  const before = original ? el("img", { className: "before", src: original, alt: "original" }) : el("div", { className: "before" });
  return el("div", {}, [el("div", { className: "compare" }, [before, after, overlay]), slider, controls]);
}

function caption(c, i) {
  const parts = [i === 0 ? "Best" : `#${i + 1}`, `${c.width}×${c.height}`];
  if (c.identity_doubtful) parts.push("⚠ the face may not look like the original: check it");
  else if (c.scores.identity_similarity !== undefined) parts.push("face kept");
  return parts.join(" · ");
}

function renderPhoto(card, photo, localOriginal) {
  card.className = `photo ${photo.status}`;
  const state = { queued: "Waiting", running: "Restoring…", done: "Restored", failed: "Not restored" }[photo.status] ?? photo.status;
  const parts = [el("h2", { textContent: photo.filename }), el("p", { className: "state", textContent: state })];
  if (photo.status !== "done" && photo.status !== "failed") {
    parts.push(el("div", { className: "stages" }, STAGES.map((stage) => el("div", { className: "stage" }, [
      el("span", { textContent: stage }), bar(photo.progress[stage] ?? 0),
    ]))));
  }
  if (photo.error) parts.push(explain(photo.error));
  const d = photo.damage;
  if (d) {
    const found = Object.entries(d.coverage).filter(([k, v]) => k !== "fading" && v > 0).map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`);
    parts.push(el("p", { className: "damage", textContent: `${d.width}×${d.height} · ${d.is_grayscale ? "black-and-white" : "colour"} · ${found.length ? `damage found: ${found.join(", ")}` : "no local damage found"} · faded ${Math.round(100 * d.fading_score)}%` }));
  }
  const original = localOriginal || d?.original_url;
  if (photo.candidates.length) {
    const best = photo.candidates[0];
    const compareBox = el("div", { className: "comparison" }, [comparison(original, best.url, d)]);
    parts.push(el("h3", { textContent: "Before / after" }), compareBox);
    parts.push(el("h3", { textContent: photo.status === "done" ? "Candidates, best first (click one to compare)" : "Candidates so far" }));
    parts.push(el("div", { className: "grid" }, photo.candidates.map((c, i) => el("figure", { className: "candidate" }, [
      el("img", { src: c.url, alt: `candidate ${i + 1}`, title: `seed ${c.seed} (the same seed and options give the same image)`,
        onclick: () => compareBox.replaceChildren(comparison(original, c.url, d)) }),
      el("figcaption", {}, [caption(c, i), " · ",
        el("a", { href: c.url, download: `${photo.filename.replace(/\.[^.]*$/, "")}-restored-${i + 1}.png`, textContent: "download" })]),
    ]))));
  }
  card.replaceChildren(...parts);
}

// A gateway with API keys answers 401 until the page has one: ask once, keep it in the gateway's
// HttpOnly cookie (POST /v1/session), then do what was asked again.
function askForKey(retry) {
  const field = el("input", { type: "password", placeholder: "API key", className: "key", autocomplete: "off" });
  const send = el("button", { type: "button", textContent: "Use this key" });
  const problem = el("p", { className: "error" });
  send.onclick = async () => {
    const reply = await fetch("/v1/session", { method: "POST", headers: { Authorization: `Bearer ${field.value.trim()}` } });
    if (reply.ok) { statusBox.replaceChildren(); retry(); } else { problem.textContent = "That key is not known here; check it and try again."; }
  };
  statusBox.replaceChildren(el("p", { textContent: "This Revive needs an API key (ask the people who run it)." }),
    el("div", { className: "login" }, [field, send]), problem);
  submit.disabled = false;
  field.focus();
}

function finish(job) {
  const { ok, text } = summary(job);
  statusBox.replaceChildren(el("p", { className: ok ? "finished" : "finished partial", textContent: text }),
    el("p", { className: "share" }, ["Link to these results: ", el("a", { href: location.href, textContent: location.href })]));
  submit.disabled = false;
}

function follow(job, originals = []) {
  history.replaceState(null, "", `#job=${job.id}`);
  if (events) events.close();
  const cards = job.photos.map(() => el("article", { className: "photo" }));
  results.replaceChildren(...cards);
  job.photos.forEach((p) => renderPhoto(cards[p.index], p, originals[p.index]));
  if (!["queued", "running"].includes(job.state)) { finish(job); return; }
  statusBox.replaceChildren(el("p", { textContent: "Restoring… you can close this page and come back with its address." }));
  events = new EventSource(`/v1/jobs/${job.id}/events`);
  events.addEventListener("photo", (e) => { const p = JSON.parse(e.data); renderPhoto(cards[p.index], p, originals[p.index]); });
  events.addEventListener("end", (e) => {
    const final = JSON.parse(e.data);
    final.photos.forEach((p) => renderPhoto(cards[p.index], p, originals[p.index]));
    finish(final);
    events.close();
  });
  events.onerror = () => { statusBox.textContent = "Lost the connection to the gateway; the job goes on: reload this page to see it."; };
}

async function reopen(id) {
  const reply = await fetch(`/v1/jobs/${encodeURIComponent(id)}`);
  if (reply.status === 401) { askForKey(() => reopen(id)); return; }
  if (!reply.ok) {
    statusBox.replaceChildren(el("p", { className: "error", textContent: reply.status === 404
      ? "These results are no longer here: results are kept for a day. Send the photos again to restore them."
      : `The gateway could not show this job (${reply.status}). Try reloading in a moment.` }));
    return;
  }
  follow(await reply.json());
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const body = new FormData();
  for (const [key, value] of new FormData(form).entries()) {
    if (key !== "photos" && value !== "" && value !== "auto") body.append(key, value);
  }
  files.forEach((f) => body.append("photos", f, f.name));
  const originals = files.map((f) => URL.createObjectURL(f));
  const upload = bar(0);
  statusBox.replaceChildren(el("p", { textContent: "Uploading…" }), upload);
  results.replaceChildren();
  submit.disabled = true;
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/jobs");
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) upload.firstChild.style.width = `${(100 * e.loaded) / e.total}%`; };
  xhr.onload = () => {
    let reply;
    try { reply = JSON.parse(xhr.responseText); } catch { reply = { error: { message: xhr.responseText } }; }
    if (xhr.status === 401) { askForKey(() => form.requestSubmit()); return; }
    if (xhr.status !== 202) {
      submit.disabled = false;
      const wait = xhr.getResponseHeader("Retry-After");
      const what = xhr.status === 429 ? `The service is busy; try again in ${wait ?? "a few"} seconds.`
        : xhr.status === 413 ? "A photo is larger than the service accepts; send a smaller scan."
        : "The photos were not accepted.";
      statusBox.replaceChildren(el("p", { className: "error", textContent: `${what} (${reply.error?.message ?? xhr.status})` }));
      return;
    }
    follow(reply, originals);
  };
  xhr.onerror = () => { submit.disabled = false; statusBox.textContent = "The upload failed: the gateway did not answer. Check your connection and try again."; };
  xhr.send(body);
});

const linked = new URLSearchParams(location.hash.slice(1)).get("job");
if (linked) reopen(linked);
