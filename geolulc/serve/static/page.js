// The map page of `geolulc serve`: an area (drawn, uploaded or pasted), a month and a model make
// a map job (POST maps), polled until it ends (GET maps/ID); its land cover is then shown over
// the scene's true colour, with a legend of the areas per class and links to its files.
// Paths are relative, so the page also works behind a proxy under a prefix.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const AOI_STYLE = { color: "#d0103a", weight: 2, fill: false };
const GRID_STEPS = [30, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001];

const page = { aoi: null, aoiLayer: null, job: null, timer: null, landcover: null, truecolor: null };

// ---- requests: every one carries the token when there is one; every error is one line

function headers(extra = {}) {
  const token = $("token").value.trim();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function errorOf(response) {
  const body = await response.json().catch(() => ({}));
  return body.error || `${response.status} ${response.statusText}`;
}

async function api(method, path, body) {
  const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
  if (body) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (!response.ok) throw new Error(await errorOf(response));
  return response.json();
}

function showError(message) {
  const line = message ? String(message).split("\n")[0] : "";
  $("error").textContent = line;
  $("error").title = line; // the whole line, where the side bar cuts it short
}

// ---- the map: no basemap (nothing is fetched from the internet), a grid and the cursor position

const map = L.map("map", { center: [20, 0], zoom: 2, worldCopyJump: true });
map.createPane("grid").style.zIndex = 350; // above the tiles, below the area outline
const grid = L.layerGroup().addTo(map);

function drawGrid() {
  grid.clearLayers();
  const b = map.getBounds();
  const width = b.getEast() - b.getWest();
  const step = GRID_STEPS.find((s) => width / s >= 3) ?? GRID_STEPS.at(-1);
  const south = Math.max(b.getSouth(), -85), north = Math.min(b.getNorth(), 85);
  const style = { pane: "grid", color: "#9aa59a", weight: 1, interactive: false };
  for (let x = Math.ceil(b.getWest() / step) * step; x <= b.getEast(); x += step) {
    grid.addLayer(L.polyline([[south, x], [north, x]], style));
  }
  for (let y = Math.ceil(south / step) * step; y <= north; y += step) {
    grid.addLayer(L.polyline([[y, b.getWest()], [y, b.getEast()]], style));
  }
}
map.on("moveend", drawGrid);
drawGrid();

map.on("mousemove", (e) => {
  const p = e.latlng.wrap();
  $("cursor").textContent = `lat ${p.lat.toFixed(5)}, lon ${p.lng.toFixed(5)}`;
  if (drawing.active && drawing.points.length) drawing.preview.setLatLngs([...drawing.points, p]);
});

// ---- the area: drawn corner by corner, or GeoJSON uploaded or pasted

const drawing = {
  active: false,
  points: [],
  preview: L.polyline([], { ...AOI_STYLE, dashArray: "4 4", interactive: false }),
};

function startDrawing() {
  drawing.active = true;
  drawing.points = [];
  map.doubleClickZoom.disable();
  $("map").classList.add("drawing");
  drawing.preview.setLatLngs([]).addTo(map);
  $("aoi-info").textContent = "click the corners; double-click the last one";
}

function stopDrawing() {
  drawing.active = false;
  map.doubleClickZoom.enable();
  $("map").classList.remove("drawing");
  drawing.preview.remove();
}

map.on("click", (e) => {
  if (drawing.active) drawing.points.push(e.latlng.wrap());
});

map.on("dblclick", () => {
  if (!drawing.active) return;
  drawing.points.pop(); // the double-click's second click
  const points = drawing.points;
  stopDrawing();
  if (points.length < 3) {
    $("aoi-info").textContent = "";
    showError("an area needs three corners or more");
    return;
  }
  const ring = [...points, points[0]].map((p) => [+p.lng.toFixed(6), +p.lat.toFixed(6)]);
  const aoi = { type: "Polygon", coordinates: [ring] };
  $("aoi-text").value = JSON.stringify(aoi);
  useAoi(aoi, `drawn, ${points.length} corners`);
});

function useAoi(aoi, how) {
  const outline = L.geoJSON(aoi, { style: AOI_STYLE }); // throws on what is not GeoJSON
  if (!outline.getLayers().length) throw new Error("it holds no geometry");
  if (page.aoiLayer) page.aoiLayer.remove();
  page.aoi = aoi;
  page.aoiLayer = outline;
  if ($("show-aoi").checked) outline.addTo(map);
  map.fitBounds(outline.getBounds(), { padding: [20, 20] });
  $("aoi-info").textContent = how;
  showError("");
}

function useText(text, how) {
  try {
    useAoi(JSON.parse(text), how);
  } catch (error) {
    showError(`GeoJSON: ${error.message}`);
  }
}

$("draw").addEventListener("click", startDrawing);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && drawing.active) {
    stopDrawing();
    $("aoi-info").textContent = "";
  }
});
$("aoi-use").addEventListener("click", () => useText($("aoi-text").value, "pasted"));
$("aoi-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  const text = await file.text();
  $("aoi-text").value = text;
  useText(text, file.name);
  e.target.value = ""; // the same file may be chosen again
});

// ---- the month and the models

function lastMonth() {
  const d = new Date();
  d.setDate(1);
  d.setMonth(d.getMonth() - 1);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`;
}

async function loadModels() {
  try {
    const models = await api("GET", "models");
    const select = $("model");
    select.replaceChildren(new Option("auto", "auto"));
    for (const m of models) {
      const option = new Option(m.name, m.name);
      option.title = `${m.kind}: ${m.classes.join(", ")}`;
      select.add(option);
    }
  } catch (error) {
    showError(`models: ${error.message}`);
  }
}

// ---- a job: start, poll, cancel

$("start").addEventListener("click", async () => {
  showError("");
  if (!page.aoi) return showError("draw an area, or upload or paste GeoJSON, first");
  if (!$("date").value) return showError("choose a month");
  try {
    const body = { aoi: page.aoi, date: $("date").value, model: $("model").value };
    watch((await api("POST", "maps", body)).id);
  } catch (error) {
    showError(error.message);
  }
});

$("cancel").addEventListener("click", async () => {
  clearTimeout(page.timer);
  try {
    show(await api("DELETE", `maps/${page.job}`));
  } catch (error) {
    showError(error.message);
  }
});

/** Follow a job; `restore`: it was opened by its address, so its area and month come back. */
function watch(id, restore = false) {
  clearTimeout(page.timer);
  clearResult();
  page.job = id;
  history.replaceState(null, "", `#job=${id}`);
  poll(id, restore);
}

async function poll(id, restore = false) {
  try {
    const status = await api("GET", `maps/${id}`);
    if (id !== page.job) return; // another job was started meanwhile
    if (restore) restoreRequest(status.request);
    show(status);
    if (status.state === "queued" || status.state === "running") {
      page.timer = setTimeout(poll, POLL_MS, id);
    }
  } catch (error) {
    showError(error.message);
    show(null);
  }
}

/** The area outline and the month of the job's request, as if it had just been started here. */
function restoreRequest(request) {
  if (request.aoi) {
    $("aoi-text").value = JSON.stringify(request.aoi);
    useText($("aoi-text").value, "the job's area");
  }
  // The field holds a month: a job asked for a month, or a day of it, shows that month.
  if (/^\d{4}-\d{2}(-\d{2})?$/.test(request.date)) $("date").value = request.date.slice(0, 7);
}

function show(status) {
  const active = status !== null && (status.state === "queued" || status.state === "running");
  $("start").disabled = active;
  $("cancel").disabled = !active;
  if (status === null) return;
  const { done, total } = status.progress;
  const bar = $("progress");
  if (total > 0) bar.value = done / total;
  else if (status.state === "running") bar.removeAttribute("value"); // indeterminate
  else bar.value = status.state === "done" ? 1 : 0;
  $("progress-text").textContent = total > 0
    ? `${done.toLocaleString("en")} / ${total.toLocaleString("en")} cells` : "";
  $("state").textContent = status.state;
  if (status.state === "failed") showError(status.error || "the job failed");
  if (status.state === "done") showResult(status);
}

// ---- the result: layers, legend, files

/** Tiles fetched with the token (an <img> cannot send a header) and drawn from blob URLs. */
const JobTiles = L.TileLayer.extend({
  createTile(coords, done) {
    const tile = document.createElement("img");
    tile.alt = "";
    fetch(this.getTileUrl(coords), { headers: headers() })
      .then(async (response) => {
        if (!response.ok) throw new Error(await errorOf(response));
        return response.blob();
      })
      .then((blob) => {
        tile.onload = () => {
          URL.revokeObjectURL(tile.src);
          done(null, tile);
        };
        tile.src = URL.createObjectURL(blob);
      })
      .catch((error) => {
        showError(`tile ${coords.z}/${coords.x}/${coords.y}: ${error.message}`);
        done(error, tile);
      });
    return tile;
  },
});

function clearResult() {
  for (const layer of [page.landcover, page.truecolor]) if (layer) layer.remove();
  page.landcover = page.truecolor = null;
  $("result").hidden = true;
  $("legend").tBodies[0].replaceChildren();
  $("files").replaceChildren();
}

async function showResult(status) {
  const [west, south, east, north] = status.bbox;
  map.fitBounds([[south, west], [north, east]]);
  const tiles = (layer) => `maps/${status.id}/tiles/${layer}/{z}/{x}/{y}.png`;
  page.truecolor = new JobTiles(tiles("truecolor"), {
    maxZoom: 19, className: "truecolor-layer",
    attribution: "Contains modified Copernicus Sentinel data",
  });
  page.landcover = new JobTiles(tiles("landcover"), {
    maxZoom: 19, className: "landcover-layer", opacity: +$("opacity").value,
  });
  if ($("show-truecolor").checked) page.truecolor.addTo(map);
  if ($("show-landcover").checked) page.landcover.addTo(map);

  const files = $("files");
  for (const name of status.files) {
    const link = document.createElement("a");
    link.href = `maps/${status.id}/files/${encodeURIComponent(name)}`;
    link.download = name;
    link.textContent = name;
    link.addEventListener("click", download);
    const item = document.createElement("li");
    item.append(link);
    files.append(item);
  }
  $("result").hidden = false;
  fillLegend(status, await colours(status));
}

/** The class colours, from the map's STAC Item (classification:classes). */
async function colours(status) {
  if (!status.files.includes("map.json")) return {};
  try {
    const item = await api("GET", `maps/${status.id}/files/map.json`);
    const classes = item.assets.landcover["raster:bands"][0]["classification:classes"];
    return Object.fromEntries(classes.filter((c) => c.color_hint)
      .map((c) => [c.value, `#${c.color_hint}`]));
  } catch (error) {
    showError(`legend colours: ${error.message}`);
    return {};
  }
}

function fillLegend(status, colour) {
  const body = $("legend").tBodies[0];
  for (const row of status.classes) {
    const tr = body.insertRow();
    tr.dataset.class = row.class;
    if (!row.area_km2) tr.className = "empty";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour[row.code] ?? "transparent";
    tr.insertCell().append(swatch);
    tr.insertCell().textContent = row.class.replaceAll("_", " ");
    tr.insertCell().textContent = row.area_km2.toFixed(2);
    tr.insertCell().textContent = row.percent.toFixed(1);
  }
}

/** With a token a plain link cannot send it: fetch the file and save it from a blob. */
async function download(e) {
  if (!$("token").value.trim()) return;
  e.preventDefault();
  const link = e.currentTarget;
  try {
    const response = await fetch(link.href, { headers: headers() });
    if (!response.ok) throw new Error(await errorOf(response));
    const url = URL.createObjectURL(await response.blob());
    Object.assign(document.createElement("a"), { href: url, download: link.download }).click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000); // once the download has begun
  } catch (error) {
    showError(`${link.download}: ${error.message}`);
  }
}

// ---- layer toggles

function toggle(checkbox, layer) {
  if (layer) checkbox.checked ? layer.addTo(map) : layer.remove();
}

$("show-landcover").addEventListener("change", (e) => toggle(e.target, page.landcover));
$("show-truecolor").addEventListener("change", (e) => toggle(e.target, page.truecolor));
$("show-aoi").addEventListener("change", (e) => toggle(e.target, page.aoiLayer));
$("show-grid").addEventListener("change", (e) => toggle(e.target, grid));
$("opacity").addEventListener("input", (e) => page.landcover?.setOpacity(+e.target.value));

// ---- start: the token of this tab, the models, and the job named in the address if any

$("token").value = sessionStorage.getItem("geolulc-token") ?? "";
$("token").addEventListener("change", () => {
  sessionStorage.setItem("geolulc-token", $("token").value.trim());
  loadModels();
});
$("date").value = lastMonth();
loadModels();
const named = new URLSearchParams(location.hash.slice(1)).get("job");
if (named) watch(named, true);
