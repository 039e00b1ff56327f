// The live seat map: one event's seats drawn from their section, row and number, kept current
// by the server's stream (/api/events/{id}/stream). No build step, no dependencies.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PITCH = 6;          // distance between seat centres, in SVG units
const SEAT_R = 2.3;
const STAGE_R = 110;      // the stage (pitch, field) at the centre
const RING_GAP = 24;      // between tiers
const SECTION_GAP = 0.6;  // seat pitches left empty between neighbouring sections

const page = {
  eventId: null,
  seats: new Map(),     // seat_id -> seat (as the API gives it), the newest version shown
  elements: new Map(),  // seat_id -> its SVG element
  sections: new Map(),  // "code/price_level_id" -> count
  totals: null,
  newest: null,         // newest source_committed_at seen (ms since the epoch)
  source: null,
  relayout: null,
};

function eventFromPath() {
  const match = window.location.pathname.match(/^\/events\/(\d+)\/?$/);
  return match ? Number(match[1]) : null;
}

async function main() {
  page.eventId = eventFromPath();
  if (page.eventId === null) {
    await listEvents();
    return;
  }
  document.getElementById("event-title").textContent = `event ${page.eventId}`;
  document.getElementById("map-panel").hidden = false;
  document.getElementById("section-panel").hidden = false;
  connect();
  setInterval(showStatus, 100);
}

async function listEvents() {
  const panel = document.getElementById("events");
  panel.hidden = false;
  const list = document.getElementById("event-list");
  try {
    const response = await fetch("/api/events");
    const body = await response.json();
    for (const event of body.events) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = `/events/${event.event_id}`;
      const t = event.totals;
      link.textContent = `event ${event.event_id}` +
        (t ? `: ${t.open} open, ${t.held} held, ${t.sold} sold of ${t.total}` : "");
      item.dataset.eventId = event.event_id;
      item.appendChild(link);
      list.appendChild(item);
    }
    setStatus("live", body.events.length ? "choose an event" : "no events yet");
  } catch (error) {
    setStatus("offline", `cannot list events: ${error}`);
  }
}

function connect() {
  // EventSource reconnects by itself and sends Last-Event-ID: the server resumes after it, or
  // sends a fresh snapshot when this page fell too far behind.
  const source = new EventSource(`/api/events/${page.eventId}/stream`);
  page.source = source;
  source.addEventListener("open", () => setOffline(false));
  source.addEventListener("error", () => {
    setOffline(true);
    // A refused connection (an error status, a server that is not there) closes the
    // EventSource for good: open a new one, which starts from a snapshot.
    if (source.readyState === EventSource.CLOSED) {
      setTimeout(connect, 2000);
    }
  });
  source.addEventListener("snapshot", (e) => applySnapshot(JSON.parse(e.data)));
  source.addEventListener("changes", (e) => applyChanges(JSON.parse(e.data)));
}

function setOffline(offline) {
  document.getElementById("offline").hidden = !offline;
  document.body.dataset.offline = offline ? "true" : "false";
  showStatus();
}

function seen(committedAt) {
  if (committedAt != null && (page.newest === null || committedAt > page.newest)) {
    page.newest = committedAt;
  }
}

// --- applying what the stream says -------------------------------------------------------

function applySnapshot(snapshot) {
  page.seats = new Map(snapshot.seats.map((s) => [s.seat_id, s]));
  page.sections = new Map();
  for (const section of snapshot.sections) {
    for (const level of section.price_levels) {
      page.sections.set(`${level.section_code}/${level.price_level_id}`, level);
    }
  }
  page.totals = snapshot.totals;
  page.newest = null;
  seen(snapshot.updated_at);
  document.body.dataset.snapshotSeq = snapshot.seq;
  drawMap();
  drawSections();
  drawTotals();
}

// One frame of changes: every seat change in order, the newest count of each section and price
// level, the newest totals (null: unchanged). A seat whose place and price did not change comes
// brief, as [seat_id, status, version, source_committed_at]: the rest is what the page holds.
function applyChanges(changes) {
  for (const seat of changes.seats) {
    if (Array.isArray(seat)) {
      const [seatId, status, version, committedAt] = seat;
      applySeat({...page.seats.get(seatId), seat_id: seatId, status, version,
                 source_committed_at: committedAt});
    } else {
      applySeat(seat);
    }
  }
  for (const section of changes.sections) applySection(section);
  if (changes.totals !== null) applyTotals(changes.totals);
}

// The version rule: a seat shows its newest version; an update whose version is not above the
// one shown (a duplicate, or older news reaching us after a reconnect) is ignored. A delete
// carries the deleted row's last version, so it applies at that version too.
function applySeat(change) {
  const shown = page.seats.get(change.seat_id);
  if (change.deleted) {
    if (shown && change.version >= shown.version) {
      page.seats.delete(change.seat_id);
      const element = page.elements.get(change.seat_id);
      if (element) {
        element.dataset.status = "gone";
        element.dataset.version = change.version;
      }
    }
    return;
  }
  if (shown && change.version <= shown.version) {
    return;
  }
  page.seats.set(change.seat_id, change);
  seen(change.source_committed_at);
  const element = page.elements.get(change.seat_id);
  if (!element) {
    scheduleRelayout();  // a seat the map has no place for yet
    return;
  }
  element.dataset.status = change.status.toLowerCase();
  element.dataset.version = change.version;
}

function applySection(change) {
  const key = `${change.section_code}/${change.price_level_id}`;
  if (change.deleted) {
    page.sections.delete(key);
  } else {
    page.sections.set(key, change);
    seen(change.source_committed_at);
  }
  scheduleSections();
}

function applyTotals(change) {
  page.totals = change.deleted ? null : change;
  if (!change.deleted) seen(change.source_committed_at);
  drawTotals();
}

// --- the section list and totals ---------------------------------------------------------

let sectionsPending = false;
function scheduleSections() {
  // An on-sale changes sections hundreds of times a second: redraw once a frame at most.
  if (!sectionsPending) {
    sectionsPending = true;
    requestAnimationFrame(() => { sectionsPending = false; drawSections(); });
  }
}

function compareCodes(a, b) {
  const na = /^\d+$/.test(a), nb = /^\d+$/.test(b);
  if (na && nb) return Number(a) - Number(b);
  if (na !== nb) return na ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function drawSections() {
  const bySection = new Map();
  for (const level of page.sections.values()) {
    const row = bySection.get(level.section_code) ||
      { open: 0, held: 0, sold: 0, lowest: null };
    row.open += level.open;
    row.held += level.held;
    row.sold += level.sold;
    if (level.open > 0 && level.lowest_open_price != null &&
        (row.lowest === null || Number(level.lowest_open_price) < Number(row.lowest))) {
      row.lowest = level.lowest_open_price;
    }
    bySection.set(level.section_code, row);
  }
  const body = document.querySelector("#sections tbody");
  const rows = [];
  for (const code of [...bySection.keys()].sort(compareCodes)) {
    const s = bySection.get(code);
    const tr = document.createElement("tr");
    tr.dataset.section = code;
    tr.dataset.open = s.open;
    tr.dataset.held = s.held;
    tr.dataset.sold = s.sold;
    tr.dataset.lowestOpenPrice = s.lowest ?? "";
    for (const text of [code, s.open, s.held, s.sold, s.lowest ?? "–"]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

function drawTotals() {
  const box = document.getElementById("totals");
  const t = page.totals;
  box.dataset.open = t ? t.open : "";
  box.dataset.held = t ? t.held : "";
  box.dataset.sold = t ? t.sold : "";
  box.textContent = t ? `${t.open} open · ${t.held} held · ${t.sold} sold of ${t.total}` : "";
}

// --- status line ---------------------------------------------------------------------------

function setStatus(state, text) {
  const line = document.getElementById("status-line");
  line.dataset.state = state;
  line.textContent = text;
}

function showStatus() {
  if (page.eventId === null) return;
  const offline = document.body.dataset.offline === "true";
  const line = document.getElementById("status-line");
  line.dataset.updatedAt = page.newest ?? "";
  if (page.newest === null) {
    setStatus(offline ? "offline" : "live", offline ? "offline" : "live · no change yet");
    return;
  }
  const ago = Math.max(0, Date.now() - page.newest);
  line.dataset.ageMs = ago;
  const age = ago < 10_000 ? `${ago} ms` : ago < 120_000 ? `${Math.round(ago / 1000)} s`
    : `${Math.round(ago / 60_000)} min`;
  setStatus(offline ? "offline" : "live", `${offline ? "offline" : "live"} · updated ${age} ago`);
}

// --- the map -------------------------------------------------------------------------------

function scheduleRelayout() {
  if (page.relayout === null) {
    page.relayout = setTimeout(() => { page.relayout = null; drawMap(); }, 500);
  }
}

function rowOrder(a, b) {
  // Rows run A, B, … Z, AA or 1, 2, … 10: shorter labels first, then by name.
  const na = /^\d+$/.test(a), nb = /^\d+$/.test(b);
  if (na && nb) return Number(a) - Number(b);
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

// Sections -> rows -> seats, by the seats' section code, row label and seat number.
function venueOf(seats) {
  const sections = new Map();
  for (const seat of seats) {
    const code = seat.section_code ?? "?";
    if (!sections.has(code)) sections.set(code, new Map());
    const rows = sections.get(code);
    const row = seat.row_label ?? "";
    if (!rows.has(row)) rows.set(row, []);
    rows.get(row).push(seat);
  }
  // Tiers are the sections' hundreds (101…, 201…, 301…): one ring each around the stage.
  const tiers = new Map();
  for (const code of [...sections.keys()].sort(compareCodes)) {
    const tier = /^\d{3,}$/.test(code) ? code.slice(0, -2) : "other";
    if (!tiers.has(tier)) tiers.set(tier, []);
    const rows = sections.get(code);
    const labels = [...rows.keys()].sort(rowOrder);
    const ordered = labels.map((label) =>
      rows.get(label).sort((a, b) => (a.seat_number ?? 0) - (b.seat_number ?? 0)));
    tiers.get(tier).push({ code, rows: ordered });
  }
  return [...tiers.keys()].sort(compareCodes).map((t) => tiers.get(t));
}

function drawMap() {
  const svg = document.getElementById("seat-map");
  const layer = document.createDocumentFragment();
  page.elements = new Map();

  const stage = document.createElementNS(SVG, "circle");
  stage.setAttribute("class", "stage");
  layer.appendChild(stage);
  const label = document.createElementNS(SVG, "text");
  label.setAttribute("class", "stage-label");
  label.textContent = "STAGE";
  layer.appendChild(label);

  let inner = STAGE_R + RING_GAP;
  let firstInner = null;
  for (const sections of venueOf(page.seats.values())) {
    // A tier is a ring all around the stage: each section gets a share of the ring as wide as
    // its widest row, and the ring's radius grows until all of them fit around it.
    const widths = sections.map((s) => Math.max(1, ...s.rows.map((r) => r.length)) + SECTION_GAP);
    const depth = Math.max(1, ...sections.map((s) => s.rows.length));
    const total = widths.reduce((a, b) => a + b, 0);
    inner = Math.max(inner, (total * PITCH) / (2 * Math.PI));
    if (firstInner === null) firstInner = inner;
    let angle = -Math.PI / 2 - Math.PI / sections.length;  // the first section at the top
    sections.forEach((section, i) => {
      const span = (2 * Math.PI * widths[i]) / total;
      const g = document.createElementNS(SVG, "g");
      g.setAttribute("class", "section");
      g.dataset.section = section.code;
      section.rows.forEach((row, r) => {
        const radius = inner + r * PITCH;
        const step = PITCH / radius;  // the same seat pitch in every row
        const start = angle + span / 2 - ((row.length - 1) * step) / 2;
        row.forEach((seat, k) => {
          const a = start + k * step;
          const c = document.createElementNS(SVG, "circle");
          c.setAttribute("class", "seat");
          c.setAttribute("cx", (radius * Math.cos(a)).toFixed(1));
          c.setAttribute("cy", (radius * Math.sin(a)).toFixed(1));
          c.setAttribute("r", SEAT_R);
          c.dataset.seatId = seat.seat_id;
          c.dataset.status = seat.status.toLowerCase();
          c.dataset.version = seat.version;
          // Attributes, not a <title> each: a stadium is tens of thousands of seats.
          c.dataset.row = seat.row_label ?? "";
          c.dataset.seatNumber = seat.seat_number ?? "";
          g.appendChild(c);
          page.elements.set(seat.seat_id, c);
        });
      });
      const mid = angle + span / 2;
      const labelRadius = inner - PITCH * 3;
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("class", "section-label");
      text.setAttribute("x", (labelRadius * Math.cos(mid)).toFixed(1));
      text.setAttribute("y", (labelRadius * Math.sin(mid)).toFixed(1));
      text.textContent = section.code;
      g.appendChild(text);
      layer.appendChild(g);
      angle += span;
    });
    inner += depth * PITCH + RING_GAP;
  }
  // The stage fills the middle, as the field of a bowl does.
  const stageR = Math.max(STAGE_R, (firstInner ?? STAGE_R) * 0.6);
  stage.setAttribute("r", stageR.toFixed(1));
  label.setAttribute("font-size", (stageR / 4).toFixed(0));
  const extent = inner + PITCH;
  svg.setAttribute("viewBox", `${-extent} ${-extent} ${2 * extent} ${2 * extent}`);
  svg.replaceChildren(layer);
  svg.dataset.seats = page.elements.size;
}

main();
