// The transcription page: upload a file as a job, follow its progress, then draw, list and
// play its notes. Everything runs against this server's /v1 API; nothing loads from elsewhere.
"use strict";

const API = "/v1/transcriptions";
const TOKEN_KEY = "keras-mt3-token";
const POLL_MS = 400;
const DRUM_COLOR = "#555b66";
const PALETTE = [
  "#2563eb", "#dc2626", "#16a34a", "#d97706", "#9333ea", "#0891b2",
  "#db2777", "#65a30d", "#7c3aed", "#ea580c", "#0d9488", "#be123c",
];
const NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "", file: null, notes: null, drawOrder: [], urls: [],
};

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `the server answered ${status}`);
    this.status = status;
  }
}

// ---- talking to the API -------------------------------------------------------------------

function authHeaders() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

async function apiFetch(url) {
  const response = await fetch(url, { headers: authHeaders() });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  return response;
}

function upload(file) {
  // XMLHttpRequest rather than fetch: it reports upload progress.
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", `${API}?async=true`);
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) showProgress(`Uploading ${file.name}`, event.loaded / event.total);
    };
    request.onload = () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch (error) { /* not JSON */ }
      if (request.status === 202 || request.status === 200) resolve(body);
      else reject(new ApiError(request.status, body));
    };
    request.onerror = () => reject(new Error("the upload failed: the server could not be reached"));
    const form = new FormData();
    form.append("file", file, file.name);
    request.send(form);
  });
}

async function waitForJob(job) {
  for (;;) {
    if (job.status === "done") return job;
    if (job.status === "failed" || job.status === "cancelled") {
      throw new Error(job.error ? job.error.message : `the job was ${job.status}`);
    }
    const done = job.segments_total ? ` (${job.segments_done} of ${job.segments_total} segments)` : "";
    showProgress(`Transcribing${done}`, job.progress);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    job = await (await apiFetch(job.status_url)).json();
  }
}

async function transcribe(file) {
  state.file = file;
  hide("error-box");
  hide("token-box");
  hide("result");
  stopPlayback();
  try {
    showProgress(`Uploading ${file.name}`, 0);
    const job = await waitForJob(await upload(file));
    showProgress("Fetching the notes", 1);
    const notes = await (await apiFetch(`${job.result_url}?format=json`)).json();
    const midi = await (await apiFetch(`${job.result_url}?format=mid`)).blob();
    hide("status-box");
    showResult(file.name, notes, midi);
  } catch (error) {
    hide("status-box");
    if (error.status === 401) {
      show("token-box");
      $("token-input").focus();
    }
    showError(error.message);
  }
}

// ---- page state ---------------------------------------------------------------------------

function show(id) { $(id).hidden = false; }
function hide(id) { $(id).hidden = true; }

function showProgress(text, fraction) {
  show("status-box");
  $("status-text").textContent = text;
  const bar = $("progress");
  if (fraction === null || fraction === undefined) bar.removeAttribute("value");
  else bar.value = fraction;
}

function showError(message) {
  $("error-box").textContent = message;
  show("error-box");
}

// Notes and instruments alike: one key per (program, is_drum), as in the JSON's instruments.
function instrumentKey(item) {
  return item.is_drum ? "drums" : `program ${item.program}`;
}

function instrumentColors(instruments) {
  const colors = new Map();
  let next = 0;
  for (const instrument of instruments) {
    colors.set(instrumentKey(instrument), instrument.is_drum ? DRUM_COLOR : PALETTE[next++ % PALETTE.length]);
  }
  return colors;
}

function showResult(filename, notes, midiBlob) {
  state.notes = notes;
  state.colors = instrumentColors(notes.instruments);
  // Instruments with few notes are drawn last, so that busier parts do not hide them.
  const counts = new Map(notes.instruments.map((i) => [instrumentKey(i), i.num_notes]));
  const count = (note) => counts.get(instrumentKey(note));
  state.drawOrder = [...notes.notes].sort((a, b) => count(b) - count(a));
  for (const url of state.urls) URL.revokeObjectURL(url);
  const stem = filename.replace(/\.[^.]*$/, "") || "transcription";
  const jsonBlob = new Blob([JSON.stringify(notes, null, 1)], { type: "application/json" });
  state.urls = [URL.createObjectURL(midiBlob), URL.createObjectURL(jsonBlob)];
  Object.assign($("download-midi"), { href: state.urls[0], download: `${stem}.mid` });
  Object.assign($("download-json"), { href: state.urls[1], download: `${stem}.json` });
  $("result-title").textContent = filename;
  $("note-count").textContent = notes.num_notes;
  $("instrument-count").textContent = notes.instruments.length;
  $("duration").textContent = notes.duration.toFixed(1);
  fillInstrumentTable(notes.instruments);
  fillNoteTable(notes.notes);
  show("result");
  drawPianoRoll();
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fillInstrumentTable(instruments) {
  const body = $("instrument-table").tBodies[0];
  body.replaceChildren();
  for (const instrument of instruments) {
    const row = body.insertRow();
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = state.colors.get(instrumentKey(instrument));
    row.insertCell().append(swatch);
    cell(row, instrument.instrument);
    cell(row, instrument.is_drum ? "drums" : instrument.program, "num");
    cell(row, instrument.num_notes, "num");
  }
}

function pitchName(pitch) {
  return `${NOTE_NAMES[pitch % 12]}${Math.floor(pitch / 12) - 1}`;
}

function fillNoteTable(notes) {
  const body = $("note-table").tBodies[0];
  const rows = document.createDocumentFragment();
  for (const note of notes) {
    const row = document.createElement("tr");
    cell(row, note.onset.toFixed(3), "num");
    cell(row, note.offset.toFixed(3), "num");
    cell(row, note.is_drum ? `${note.pitch}` : `${pitchName(note.pitch)} (${note.pitch})`, "num");
    cell(row, note.velocity, "num");
    cell(row, note.instrument);
    rows.append(row);
  }
  body.replaceChildren(rows);
}

// ---- the piano roll -------------------------------------------------------------------------

function drawPianoRoll(playhead) {
  const canvas = $("pianoroll");
  const notes = state.notes ? state.notes.notes : [];
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const left = 44, bottom = 22, top = 8, right = 8;
  const duration = Math.max(state.notes ? state.notes.duration : 0, 1e-3);
  // A loop, not Math.min(...pitches): long files have more notes than a call takes arguments.
  let low = notes.length ? Infinity : 50, high = notes.length ? -Infinity : 70;
  for (const note of notes) {
    low = Math.min(low, note.pitch - 2);
    high = Math.max(high, note.pitch + 2);
  }
  const x = (seconds) => left + (seconds / duration) * (width - left - right);
  const rowHeight = (height - top - bottom) / (high - low + 1);
  const y = (pitch) => top + (high - pitch) * rowHeight;

  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#5d6678";
  g.strokeStyle = "#e3e7ee";
  g.lineWidth = 1;
  for (let pitch = Math.ceil(low / 12) * 12; pitch <= high; pitch += 12) {
    g.beginPath();
    g.moveTo(left, y(pitch) + rowHeight);
    g.lineTo(width - right, y(pitch) + rowHeight);
    g.stroke();
    g.fillText(pitchName(pitch), 4, y(pitch) + rowHeight);
  }
  const step = duration > 60 ? 10 : duration > 20 ? 5 : duration > 5 ? 1 : 0.5;
  for (let t = 0; t <= duration; t += step) {
    g.beginPath();
    g.moveTo(x(t), top);
    g.lineTo(x(t), height - bottom);
    g.stroke();
    g.fillText(`${+t.toFixed(1)} s`, x(t) + 2, height - 6);
  }
  for (const note of state.drawOrder) {
    g.fillStyle = state.colors.get(instrumentKey(note));
    const noteWidth = Math.max(x(note.offset) - x(note.onset), 2);
    g.fillRect(x(note.onset), y(note.pitch), noteWidth, Math.max(rowHeight - 1, 1.5));
  }
  if (playhead !== undefined) {
    g.strokeStyle = "#111";
    g.beginPath();
    g.moveTo(x(playhead), top);
    g.lineTo(x(playhead), height - bottom);
    g.stroke();
  }
}

// ---- playback: a small WebAudio synthesizer of the notes -------------------------------------

const player = { context: null, started: 0, next: 0, timer: null, frame: null, scheduled: 0 };
const LOOKAHEAD_SECONDS = 1.0;

function startPlayback() {
  if (!state.notes || !state.notes.notes.length) return;
  player.context = new AudioContext();
  player.master = player.context.createGain();
  player.master.gain.value = 0.25;
  player.master.connect(player.context.destination);
  player.noise = noiseBuffer(player.context);
  player.started = player.context.currentTime + 0.1;
  player.next = 0;
  player.scheduled = 0;
  schedule();
  player.timer = setInterval(schedule, 250);
  $("play").textContent = "\u25A0 Stop";
  $("play").dataset.playing = "true";
  animate();
}

function stopPlayback() {
  if (!player.context) return;
  clearInterval(player.timer);
  cancelAnimationFrame(player.frame);
  player.context.close();
  player.context = null;
  $("play").textContent = "\u25B6 Play";
  delete $("play").dataset.playing;
  drawPianoRoll();
}

function schedule() {
  // Notes are sorted by onset: schedule those starting within the lookahead window.
  const notes = state.notes.notes;
  const now = player.context.currentTime - player.started;
  while (player.next < notes.length && notes[player.next].onset < now + LOOKAHEAD_SECONDS) {
    playNote(notes[player.next], player.started + notes[player.next].onset);
    player.next += 1;
    player.scheduled += 1;
  }
  $("play").dataset.scheduled = player.scheduled;
  if (player.next >= notes.length && now > state.notes.duration + 0.5) stopPlayback();
}

function playNote(note, when) {
  const context = player.context;
  const gain = context.createGain();
  const level = 0.15 + 0.5 * (note.velocity / 127);
  gain.connect(player.master);
  if (note.is_drum) {
    const source = context.createBufferSource();
    source.buffer = player.noise;
    const filter = context.createBiquadFilter();
    filter.type = note.pitch <= 36 ? "lowpass" : "highpass";
    filter.frequency.value = note.pitch <= 36 ? 150 : 3000;
    source.connect(filter).connect(gain);
    gain.gain.setValueAtTime(level, when);
    gain.gain.exponentialRampToValueAtTime(0.001, when + 0.15);
    source.start(when);
    source.stop(when + 0.2);
    return;
  }
  const end = Math.max(note.offset, note.onset + 0.05);
  const oscillator = context.createOscillator();
  oscillator.type = note.program >= 32 && note.program < 40 ? "sawtooth" : "triangle";
  oscillator.frequency.value = 440 * Math.pow(2, (note.pitch - 69) / 12);
  oscillator.connect(gain);
  gain.gain.setValueAtTime(0, when);
  gain.gain.linearRampToValueAtTime(level, when + 0.01);
  gain.gain.setTargetAtTime(level * 0.6, when + 0.01, 0.2);
  gain.gain.setTargetAtTime(0, end, 0.03);
  oscillator.start(when);
  oscillator.stop(end + 0.2);
}

function noiseBuffer(context) {
  const buffer = context.createBuffer(1, context.sampleRate * 0.2, context.sampleRate);
  const data = buffer.getChannelData(0);
  for (let i = 0; i < data.length; i += 1) data[i] = Math.random() * 2 - 1;
  return buffer;
}

function animate() {
  if (!player.context) return;
  drawPianoRoll(Math.max(0, player.context.currentTime - player.started));
  player.frame = requestAnimationFrame(animate);
}

// ---- wiring -------------------------------------------------------------------------------

function chooseFile(files) {
  if (files && files.length) transcribe(files[0]);
}

const dropZone = $("drop-zone");
dropZone.addEventListener("click", (event) => {
  if (event.target.tagName !== "LABEL") $("file-input").click();
});
dropZone.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") $("file-input").click();
});
dropZone.addEventListener("dragover", (event) => {
  event.preventDefault();
  dropZone.classList.add("dragging");
});
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("dragging");
  chooseFile(event.dataTransfer.files);
});
$("file-input").addEventListener("change", (event) => chooseFile(event.target.files));
$("play").addEventListener("click", () => (player.context ? stopPlayback() : startPlayback()));
$("token-save").addEventListener("click", () => {
  state.token = $("token-input").value.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  hide("token-box");
  if (state.file) transcribe(state.file);
});
window.addEventListener("resize", () => state.notes && drawPianoRoll());
