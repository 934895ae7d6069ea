// Revive's page. Photos go up as one job (POST /v1/jobs, with upload progress
// from XMLHttpRequest); the job's server-sent events then update each photo's
// card: a bar per stage, the damage found (as an overlay on the original), a
// before/after slider and the candidates, best first, with their scores.
const MAX_PHOTOS = 10;
const STAGES = ["decode", "detect", "generate"];
const form = document.getElementById("form");
const input = document.getElementById("files");
const drop = document.getElementById("drop");
const chosen = document.getElementById("chosen");
const submit = document.getElementById("submit");
const statusBox = document.getElementById("status");
const results = document.getElementById("results");
let files = [];

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

function comparison(original, restored, maskUrl) {
  // The restored image is clipped to the slider's position over the original.
  const after = el("img", { className: "after", src: restored, alt: "restored" });
  const overlay = el("img", { className: "overlay", src: maskUrl || "", alt: "damage found", hidden: true });
  const slider = el("input", { type: "range", min: 0, max: 100, value: 50, className: "slider", ariaLabel: "before / after" });
  const clip = () => { after.style.clipPath = `inset(0 0 0 ${slider.value}%)`; };
  slider.addEventListener("input", clip);
  clip();
  const toggle = el("label", {}, [el("input", { type: "checkbox", onchange: (e) => { overlay.hidden = !e.target.checked; } }), " show the damage found"]);
  return el("div", {}, [
    el("div", { className: "compare" }, [el("img", { className: "before", src: original, alt: "original" }), after, overlay]),
    slider, maskUrl ? toggle : "",
  ]);
}

function renderPhoto(card, photo, original) {
  card.className = `photo ${photo.status}`;
  const parts = [el("h2", { textContent: photo.filename }), el("p", { className: "state", textContent: photo.status })];
  parts.push(el("div", { className: "stages" }, STAGES.map((stage) => el("div", { className: "stage" }, [
    el("span", { textContent: stage }), bar(photo.progress[stage] ?? 0),
  ]))));
  if (photo.error) parts.push(el("p", { className: "error", textContent: `${photo.error.code}: ${photo.error.message}` }));
  const d = photo.damage;
  if (d) {
    const coverage = Object.entries(d.coverage).map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`).join(" · ");
    parts.push(el("p", { className: "damage", textContent: `${d.width}×${d.height} · ${d.is_grayscale ? "black-and-white" : "colour"} · fading ${d.fading_score.toFixed(2)} · ${coverage}` }));
  }
  if (photo.candidates.length) {
    const best = photo.candidates[0];
    const compareBox = el("div", { className: "comparison" }, [comparison(original, best.url, d?.mask_url)]);
    parts.push(el("h3", { textContent: "Before / after" }), compareBox);
    parts.push(el("h3", { textContent: photo.status === "done" ? "Candidates, best first" : "Candidates so far" }));
    parts.push(el("div", { className: "grid" }, photo.candidates.map((c, i) => el("figure", { className: "candidate" }, [
      el("img", { src: c.url, alt: `candidate ${i + 1}`, onclick: () => compareBox.replaceChildren(comparison(original, c.url, d?.mask_url)) }),
      el("figcaption", {}, [
        `#${i + 1} · seed ${c.seed} · ${c.width}×${c.height} · score ${(c.scores.overall ?? 0).toFixed(2)}`,
        c.scores.identity_similarity !== undefined ? ` · identity ${c.scores.identity_similarity.toFixed(2)}` : "",
        " · ", el("a", { href: c.url, download: `${photo.filename.replace(/\.[^.]*$/, "")}-restored-${i + 1}.png`, textContent: "download" }),
      ]),
    ]))));
  }
  card.replaceChildren(...parts);
}

function follow(job, originals) {
  const cards = job.photos.map(() => el("article", { className: "photo" }));
  results.replaceChildren(...cards);
  job.photos.forEach((p) => renderPhoto(cards[p.index], p, originals[p.index]));
  const events = new EventSource(job.links.events);
  events.addEventListener("photo", (e) => { const p = JSON.parse(e.data); renderPhoto(cards[p.index], p, originals[p.index]); });
  events.addEventListener("end", (e) => {
    const final = JSON.parse(e.data);
    final.photos.forEach((p) => renderPhoto(cards[p.index], p, originals[p.index]));
    statusBox.replaceChildren(el("p", { className: "finished", textContent: `Job ${final.state}.` }));
    submit.disabled = false;
    events.close();
  });
  events.onerror = () => { statusBox.textContent = "Lost the connection to the gateway; the job goes on — reload to see it."; };
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
    if (xhr.status !== 202) {
      submit.disabled = false;
      const wait = xhr.getResponseHeader("Retry-After");
      statusBox.replaceChildren(el("p", { className: "error", textContent: `Refused (${xhr.status}): ${reply.error?.message ?? ""}${wait ? ` — try again in ${wait} s` : ""}` }));
      return;
    }
    statusBox.replaceChildren(el("p", { textContent: "Restoring…" }));
    follow(reply, originals);
  };
  xhr.onerror = () => { submit.disabled = false; statusBox.textContent = "The upload failed: is the gateway running?"; };
  xhr.send(body);
});
