// Revive's page: pick photos, send them with the options, show each photo's
// damage and candidates. Upload progress comes from XMLHttpRequest's events.
const form = document.getElementById("form");
const input = document.getElementById("files");
const drop = document.getElementById("drop");
const chosen = document.getElementById("chosen");
const submit = document.getElementById("submit");
const statusBox = document.getElementById("status");
const results = document.getElementById("results");
const MAX_PHOTOS = 10;
let files = [];

function choose(list) {
  files = Array.from(list).slice(0, MAX_PHOTOS);
  chosen.replaceChildren(...files.map((f) => Object.assign(document.createElement("li"), { textContent: `${f.name} (${Math.round(f.size / 1024)} KB)` })));
  if (list.length > MAX_PHOTOS) statusBox.textContent = `Only the first ${MAX_PHOTOS} photos will be sent.`;
  submit.disabled = files.length === 0;
}

input.addEventListener("change", () => choose(input.files));
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); choose(e.dataTransfer.files); });

function el(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function renderPhoto(photo, original) {
  const box = el("article", { className: "photo" + (photo.status === "failed" ? " failed" : "") });
  box.append(el("h2", { textContent: `${photo.filename}` }));
  if (photo.error) {
    box.append(el("p", { className: "error", textContent: `${photo.error.code}: ${photo.error.message}` }));
    return box;
  }
  const d = photo.damage;
  if (d) {
    const coverage = Object.entries(d.coverage).map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`).join(", ");
    box.append(el("p", { textContent: `${d.width}x${d.height}, ${d.is_grayscale ? "black-and-white" : "colour"}, fading ${d.fading_score.toFixed(2)}; damage: ${coverage}; upscaled x${photo.upscale}` }));
    const compare = el("div", { className: "compare" }, [el("img", { src: original, alt: "original" })]);
    if (d.mask_url) compare.append(el("img", { className: "overlay", src: d.mask_url, alt: "damage mask" }));
    box.append(el("h3", { textContent: "Before, with the damage found" }), compare);
  }
  box.append(el("h3", { textContent: "Candidates (best first)" }));
  box.append(el("div", { className: "grid" }, photo.candidates.map((c, i) => el("figure", {}, [
    el("a", { href: c.url, download: `restored-${i + 1}.png` }, [el("img", { src: c.url, alt: `candidate ${i + 1}` })]),
    el("figcaption", { textContent: `#${i + 1} seed ${c.seed} · ${c.width}x${c.height} · score ${c.scores.overall.toFixed(2)}` }),
  ]))));
  return box;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const body = new FormData();
  for (const [key, value] of new FormData(form).entries()) {
    if (key !== "photos" && value !== "" && value !== "auto") body.append(key, value);
  }
  files.forEach((f) => body.append("photos", f, f.name));
  const originals = files.map((f) => URL.createObjectURL(f));
  const bar = el("div");
  statusBox.replaceChildren(el("p", { textContent: "Uploading…" }), el("div", { className: "progress" }, [bar]));
  results.replaceChildren();
  submit.disabled = true;
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/restorations");
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.style.width = `${(100 * e.loaded) / e.total}%`; };
  xhr.upload.onload = () => { statusBox.firstChild.textContent = "Restoring… (detecting damage, generating and upscaling candidates)"; };
  xhr.onload = () => {
    submit.disabled = false;
    let reply;
    try { reply = JSON.parse(xhr.responseText); } catch { reply = { error: { message: xhr.responseText } }; }
    statusBox.replaceChildren(el("p", { textContent: xhr.status === 200 ? "Done." : `Failed (${xhr.status}): ${reply.error?.message ?? ""}` }));
    (reply.photos || []).forEach((p) => results.append(renderPhoto(p, originals[p.index])));
  };
  xhr.onerror = () => { submit.disabled = false; statusBox.textContent = "The upload failed: is the gateway running?"; };
  xhr.send(body);
});
