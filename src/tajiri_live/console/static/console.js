// The tajiri-live console: a small single-page app over the REST API and the plain WebSocket.
// The only secret it holds is the signed-in user's token, in this tab's sessionStorage.
"use strict";

const view = document.getElementById("view");
const charts = (window.tajiriCharts = {}); // by name, for people and tests to inspect
const LANGUAGES = { en: "English", sw: "Kiswahili" };
let socket = null;
let timers = [];
let player = null;
let current = null; // who the token is: GET /api/me

// --- language -----------------------------------------------------------------------------------

function language() {
  const chosen = localStorage.getItem("tajiri.lang");
  return chosen in LANGUAGES ? chosen : "en";
}

function t(key, values = {}) {
  const strings = window.TAJIRI_STRINGS[language()];
  const single = String(values.n ?? values.count) === "1" && `${key}_one` in strings; // "1 vote"
  const text = strings[single ? `${key}_one` : key] ?? window.TAJIRI_STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

function number(value, digits = 0) {
  return Number(value ?? 0).toLocaleString(language() === "sw" ? "sw-TZ" : "en-GB", { maximumFractionDigits: digits });
}

function clock(iso) { return iso ? new Date(iso).toLocaleString(language() === "sw" ? "sw-TZ" : "en-GB") : ""; }

function translateShell() {
  document.documentElement.lang = language();
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  for (const node of document.querySelectorAll("[data-t-label]")) node.setAttribute("aria-label", t(node.dataset.tLabel));
  document.getElementById("language").value = language();
}

// --- building blocks ----------------------------------------------------------------------------

function token() { return sessionStorage.getItem("tajiri.token"); }

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return node;
}

function toast(message) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.classList.add("show");
  setTimeout(() => box.classList.remove("show"), 2500);
}

async function api(path, options = {}) {
  const form = options.body instanceof FormData;
  const response = await fetch(`/api${path}`, {
    ...options,
    headers: { Accept: "application/json", Authorization: `Bearer ${token()}`,
               ...(options.body && !form ? { "Content-Type": "application/json" } : {}) },
    body: options.body ? (form ? options.body : JSON.stringify(options.body)) : undefined,
  });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) { signOut(); throw new Error(t("sessionEnded")); }
  if (!response.ok) throw new Error(body.message || t("requestFailed", { status: response.status }));
  return body;
}

function act(label, run, cls = "secondary", attrs = {}) {
  return el("button", { type: "button", class: cls, ...attrs, onclick: async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try { await run(button); } catch (error) { toast(error.message); } finally { button.disabled = false; }
  } }, label);
}

function post(path, body) { return api(path, { method: "POST", body }); }

function every(ms, run) { timers.push(setInterval(run, ms)); }

function stopLive() {
  if (socket) { socket.onclose = null; socket.close(); socket = null; }
  for (const id of timers) clearInterval(id);
  timers = [];
  if (player) { player.destroy(); player = null; }
}

// Before a page is built: the last page's socket, timers, player and charts go.
function reset() {
  stopLive();
  for (const chart of Object.values(charts)) chart.destroy();
  for (const name of Object.keys(charts)) delete charts[name];
}

function show(title, ...content) {
  view.replaceChildren(el("h1", {}, title), ...content);
  view.focus({ preventScroll: true });
  document.title = `${title} · ${t("app")}`;
}

function section(heading, ...content) {
  const id = `h-${heading.replace(/\W+/g, "-").toLowerCase()}`;
  return el("section", { "aria-labelledby": id }, el("h2", { id }, heading), ...content);
}

function field(id, label, input, help, wide) {
  return el("div", { class: wide ? "field wide" : "field" }, el("label", { for: id }, label), input,
    help ? el("p", { class: "muted help", id: `${id}-help` }, help) : "");
}

function statusPill(status, id) {
  return el("span", { class: `status ${status}`, id, "data-status": status }, t(`status_${status}`));
}

function setStatus(pill, status) {
  pill.textContent = t(`status_${status}`);
  pill.className = `status ${status}`;
  pill.dataset.status = status;
}

function lineChart(name, canvas, labels, datasets, yLabel) {
  const colours = ["#0b6e4f", "#8a4baf", "#b3261e"];
  charts[name] = new Chart(canvas, {
    type: "line",
    data: { labels, datasets: datasets.map((d, i) => ({ borderColor: colours[i], backgroundColor: i ? "transparent" : "rgba(11,110,79,.15)", fill: i === 0, tension: .25, ...d })) },
    options: { animation: false, responsive: true, scales: { y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: !!yLabel, text: yLabel } } } },
  });
  return charts[name];
}

function push(chart, label, ...values) {
  chart.data.labels.push(label);
  values.forEach((value, i) => chart.data.datasets[i].data.push(value));
  if (chart.data.labels.length > 120) { chart.data.labels.shift(); chart.data.datasets.forEach((d) => d.data.shift()); }
  chart.update();
}

function name(user, id) { return user?.display_name ?? `user${id}`; }

async function copy(text) { await navigator.clipboard.writeText(text); toast(t("copied")); }

// --- sign in ------------------------------------------------------------------------------------

function signInView() {
  document.getElementById("nav").hidden = true;
  const input = el("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, "aria-describedby": "token-help" });
  show(t("signIn"),
    el("form", { class: "card", onsubmit: async (event) => {
      event.preventDefault();
      sessionStorage.setItem("tajiri.token", input.value.trim());
      current = null;
      if (!(await whoAmI())) { sessionStorage.removeItem("tajiri.token"); toast(t("notAToken")); return; }
      location.hash = "#/streams";
      route();
    } },
      el("label", { for: "token" }, t("accessToken")), input,
      el("p", { id: "token-help", class: "muted" }, t("tokenHelp"), el("code", {}, "tajiri-live token YOUR_USER_ID")),
      el("button", { type: "submit" }, t("signIn"))));
}

async function whoAmI() {
  if (current) return current;
  const response = await fetch("/api/me", { headers: { Accept: "application/json", Authorization: `Bearer ${token()}` } });
  if (!response.ok) return null;
  current = (await response.json()).data;
  return current;
}

function signOut() { sessionStorage.removeItem("tajiri.token"); current = null; stopLive(); location.hash = "#/signin"; route(); }

// --- the encoder's settings, as OBS asks for them -----------------------------------------------

function serverUrl(stream) {
  const url = stream.stream_url ?? "";
  const key = stream.stream_key ?? "";
  return key && url.endsWith(`/${key}`) ? url.slice(0, -key.length - 1) : url;
}

function encoderLine(ingest) {
  if (!ingest?.publishing) return t("waitingEncoder");
  const h = ingest.health;
  const detail = h ? [h.width && h.height ? `${h.width}×${h.height}` : "", h.fps ? t("fpsUnit", { n: number(h.fps, 1) }) : "",
    h.bitrate_kbps != null ? t("kbps", { n: number(h.bitrate_kbps) }) : ""].filter(Boolean).join(", ") : "";
  return t("encoderConnected", { detail });
}

function ingestPanel(stream, { encoder = true } = {}) {
  const sid = stream.id;
  const server = el("input", { id: `server-${sid}`, class: "server", readonly: true, value: serverUrl(stream) });
  const key = el("input", { id: `key-${sid}`, class: "key", type: "password", readonly: true, value: stream.stream_key ?? "", autocomplete: "off" });
  const reveal = act(t("show"), async (button) => {
    const hidden = key.type === "password";
    key.type = hidden ? "text" : "password";
    button.textContent = hidden ? t("hide") : t("show");
    button.setAttribute("aria-pressed", String(hidden));
  }, "secondary", { "aria-pressed": "false", "aria-controls": key.id });
  const expires = el("p", { class: "muted" }, t("keyValid", { when: clock(stream.ingest?.key_expires_at) }));
  return el("div", { class: "ingest" },
    el("p", { class: "muted" }, t("obsHelp")),
    el("label", { for: server.id }, t("server")),
    el("div", { class: "copyrow" }, server, act(t("copy"), () => copy(server.value), "secondary", { "aria-label": t("copyServer") })),
    el("label", { for: key.id }, t("streamKey")),
    el("div", { class: "copyrow" }, key, reveal, act(t("copy"), () => copy(key.value), "secondary", { "aria-label": t("copyKey") })),
    encoder ? el("p", { class: "encoder", role: "status" }, encoderLine(stream.ingest)) : "",
    expires,
    act(t("newKey"), async () => {
      const rotated = await post(`/streams/${sid}/rotate-key`);
      key.value = rotated.stream_key;
      expires.textContent = t("keyValid", { when: clock(rotated.key_expires_at ?? rotated.data?.ingest?.key_expires_at) });
      toast(t("newKeyDone"));
    }));
}

// --- my streams ---------------------------------------------------------------------------------

function newStreamForm(onCreated) {
  const input = (id, attrs = {}) => el("input", { id, name: id, ...attrs });
  const title = input("title", { required: true, maxlength: 255 });
  const description = el("textarea", { id: "description", name: "description", rows: 3, maxlength: 5000 });
  const category = input("category", { maxlength: 100 });
  const tags = input("tags", { "aria-describedby": "tags-help" });
  const cover = input("thumbnail", { type: "file", accept: "image/jpeg,image/png,image/webp" });
  const when = input("scheduled_at", { type: "datetime-local" });
  const privacy = el("select", { id: "privacy", name: "privacy" },
    ["public", "friends", "private"].map((p) => el("option", { value: p }, t(p))));
  const recorded = input("is_recorded", { type: "checkbox" });
  return el("form", { class: "card", "aria-labelledby": "new-stream", onsubmit: async (event) => {
    event.preventDefault();
    const body = new FormData();
    body.append("title", title.value);
    if (description.value.trim()) body.append("description", description.value);
    if (category.value.trim()) body.append("category", category.value);
    tags.value.split(",").map((tag) => tag.trim()).filter(Boolean).forEach((tag, i) => body.append(`tags[${i}]`, tag));
    body.append("privacy", privacy.value);
    body.append("is_recorded", recorded.checked ? "1" : "0");
    if (when.value) body.append("scheduled_at", new Date(when.value).toISOString());
    if (cover.files[0]) body.append("thumbnail", cover.files[0]);
    try {
      await api("/streams", { method: "POST", body });
      event.target.reset(); toast(t("created")); await onCreated();
    } catch (error) { toast(error.message); }
  } },
    el("h2", { id: "new-stream" }, t("newStream")),
    el("div", { class: "form-grid" },
      field("title", t("title"), title, null, "wide"),
      field("description", t("description"), description, null, "wide"),
      field("category", t("category"), category), field("tags", t("tags"), tags, t("tagsHelp")),
      field("privacy", t("privacy"), privacy), field("scheduled_at", t("startsAt"), when),
      field("thumbnail", t("cover"), cover)),
    el("div", { class: "check" }, recorded, el("label", { for: "is_recorded" }, t("record"))),
    el("p", {}, el("button", { type: "submit" }, t("create"))));
}

async function streamsView() {
  const list = el("tbody");
  show(t("myStreams"), newStreamForm(() => fill()),
    el("section", {}, el("table", { "aria-label": t("myStreams") },
      el("thead", {}, el("tr", {}, [t("stream"), t("status"), t("ingest"), t("actions")].map((h) => el("th", { scope: "col" }, h)))), list)));

  async function fill() {
    const { data } = await api(`/streams/user/${current.id}?per_page=50`);
    if (!data.length) { list.replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "muted" }, t("noStreams")))); return; }
    list.replaceChildren(...data.map((stream) => {
      const panel = el("div", { class: "ingest-box", hidden: true });
      const toggle = act(t("showIngest"), async (button) => {
        if (!panel.firstChild) panel.append(ingestPanel(stream));
        panel.hidden = !panel.hidden;
        button.textContent = panel.hidden ? t("showIngest") : t("hideIngest");
        button.setAttribute("aria-expanded", String(!panel.hidden));
      }, "secondary", { "aria-expanded": "false" });
      const step = (label, path, cls) => act(label, async () => { await post(`/streams/${stream.id}/${path}`); await fill(); }, cls);
      const open = ["scheduled", "pre_live"].includes(stream.status);
      return el("tr", { "data-stream": stream.id },
        el("td", {}, el("a", { href: `#/live/${stream.id}` }, stream.title)),
        el("td", {}, statusPill(stream.status)),
        el("td", {}, stream.stream_key ? [toggle, panel] : ""),
        el("td", {}, el("div", { class: "row" },
          open ? step(t("start"), "start", "") : "",
          ["live", "pre_live"].includes(stream.status) ? step(t("end"), "end", "danger") : "",
          open ? step(t("cancel"), "cancel") : "",
          el("a", { href: `#/live/${stream.id}` }, t("openRoom")),
          el("a", { href: `#/analytics/${stream.id}` }, t("analytics")),
          el("a", { href: `#/moderation/${stream.id}` }, t("moderationLog")))));
    }));
  }
  await fill();
}

// --- live room: preview -------------------------------------------------------------------------

function previewPanel(initial) {
  const video = el("video", { id: "preview", muted: true, playsinline: true, controls: true, "aria-label": t("livePreview") });
  video.muted = true;
  const note = el("p", { id: "preview-state", class: "preview-note", role: "status", "data-state": "waiting" }, t("waitingEncoder"));
  const help = el("p", { class: "muted" }, t("waitingHelp"));
  const state = (name, text) => { note.dataset.state = name; note.textContent = text; help.hidden = name !== "waiting"; };
  let source = null;
  function play(url) {
    if (!url || source === url) return;
    source = url;
    state("starting", t("previewStarting"));
    if (player) player.destroy();
    if (window.Hls && Hls.isSupported()) {
      player = window.tajiriPlayer = new Hls({ liveSyncDurationCount: 1, liveMaxLatencyDurationCount: 4 }); // the live edge
      player.on(Hls.Events.ERROR, (_, data) => {
        if (!data.fatal) return;
        state("error", t("previewError", { detail: data.details }));
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) player.recoverMediaError();
        else setTimeout(() => player && player.startLoad(), 2000);
      });
      player.on(Hls.Events.LEVEL_LOADED, (_, data) => keyframes(data.details));
      player.loadSource(url);
      player.attachMedia(video);
      player.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
    } else { video.src = url; video.play().catch(() => {}); }
  }
  video.addEventListener("playing", () => state("playing", t("previewPlaying")));
  function ended() { if (player) { player.destroy(); player = null; } source = null; state("ended", t("previewEnded")); }
  // The keyframe interval, as nginx cuts segments only at keyframes: the shortest full segment.
  let keyframeSeconds = null;
  function keyframes(details) {
    const lengths = details.fragments.slice(0, -1).map((f) => f.duration).filter((d) => d > 0);
    if (lengths.length) keyframeSeconds = Math.min(...lengths);
    if (keyframeSeconds) panel.onKeyframe(keyframeSeconds);
  }
  const panel = { node: el("div", { class: "preview" }, video, note, help), play, ended, keyframe: () => keyframeSeconds, video, onKeyframe: () => {} };
  if (initial) play(initial);
  return panel;
}

// --- live room: stream health ---------------------------------------------------------------------

// What each resolution needs at least, in kb/s (the usual encoder guidance for 30 fps).
const NEEDED_KBPS = [[1080, 3000], [720, 1500], [480, 800], [360, 400], [0, 150]];

function healthWarnings(h, ingest, keyframe) {
  const warnings = [];
  const height = ingest?.height;
  const kbps = ingest?.bitrate_kbps ?? h.latest?.bitrate;
  if (height && kbps != null) {
    const [, need] = NEEDED_KBPS.find(([min]) => height >= min);
    if (kbps < need) warnings.push(t("warnSlowFor", { res: `${height}p`, kbps: number(kbps), need: number(need) }));
  }
  const fps = ingest?.fps ?? h.latest?.fps;
  if (fps && fps < 20) warnings.push(t("warnFps", { fps: number(fps, 1) }));
  if (h.recentDropped > 0) warnings.push(t("warnDropped", { n: number(h.recentDropped) }));
  if (keyframe && keyframe > 4.5) warnings.push(t("warnKeyframe", { n: number(keyframe, 1) }));
  if (!warnings.length && h.network_quality === "poor" && h.reasons) warnings.push(t("warnPoor", { why: h.reasons }));
  return warnings;
}

function healthPanel(id, preview) {
  const value = (key) => el("dd", { id: `health-${key}` }, "–");
  const cells = { quality: value("quality"), bitrate: value("bitrate"), fps: value("fps"), resolution: value("resolution"), keyframe: value("keyframe"), dropped: value("dropped") };
  const list = el("dl", { class: "stats" }, Object.entries(cells).map(([key, dd]) => el("div", {}, el("dt", {}, t(key)), dd)));
  const warnings = el("ul", { id: "health-warnings", class: "warnings", "aria-live": "polite" });
  const canvas = el("canvas", { id: "health-chart", height: 160, role: "img", "aria-label": t("healthChart") });
  const chart = lineChart("health", canvas, [], [{ label: t("bitrate") + " (kb/s)", data: [], yAxisID: "y" },
    { label: t("fps"), data: [], yAxisID: "frames" }, { label: t("dropped"), data: [], yAxisID: "frames" }]);
  chart.options.scales.frames = { position: "right", beginAtZero: true, ticks: { precision: 0 }, grid: { drawOnChartArea: false } };
  chart.update();
  let lastWarning = null;
  preview.onKeyframe = (seconds) => { cells.keyframe.textContent = t("seconds", { n: number(seconds, 1) }); };
  async function refresh() {
    const [{ data: h }, { data: ingest }] = await Promise.all([api(`/streams/${id}/health`), api(`/streams/${id}/ingest`).catch(() => ({ data: null }))]);
    const series = h.recent_samples ?? []; // oldest first
    const newest = series.at(-1) ?? null;
    const stat = ingest?.health ?? null;
    chart.data.labels = series.map((s) => new Date(s.recorded_at).toLocaleTimeString());
    chart.data.datasets[0].data = series.map((s) => s.bitrate);
    chart.data.datasets[1].data = series.map((s) => s.fps);
    chart.data.datasets[2].data = series.map((s) => s.dropped_frames ?? 0);
    chart.update();
    const recentDropped = series.slice(-6).reduce((sum, s) => sum + (s.dropped_frames ?? 0), 0);
    cells.quality.textContent = t(`quality_${h.network_quality}`);
    cells.quality.className = `q-${h.network_quality}`;
    const kbps = stat?.bitrate_kbps ?? newest?.bitrate;
    cells.bitrate.textContent = kbps != null ? t("kbps", { n: number(kbps) }) : "–";
    const fps = stat?.fps ?? newest?.fps;
    cells.fps.textContent = fps ? t("fpsUnit", { n: number(fps, 1) }) : "–";
    cells.resolution.textContent = stat?.width ? `${stat.width}×${stat.height}` : "–";
    cells.keyframe.textContent = preview.keyframe() ? t("seconds", { n: number(preview.keyframe(), 1) }) : "–";
    cells.dropped.textContent = number(h.total_dropped_frames);
    const found = healthWarnings({ ...h, latest: newest, recentDropped, reasons: lastWarning }, stat, preview.keyframe());
    warnings.replaceChildren(...(found.length ? found.map((w) => el("li", { class: "warn" }, w)) : series.length ? [el("li", { class: "ok" }, t("allGood"))] : [el("li", { class: "muted" }, t("noHealth"))]));
  }
  return { node: section(t("health"), list, warnings, canvas), refresh, warned: (data) => { lastWarning = (data.reasons || []).join("; "); refresh(); } };
}

// --- live room: chat, gifts, viewers ------------------------------------------------------------

function chatPanel(id) {
  const list = el("ul", { class: "chat", id: "chat", "aria-live": "polite", "aria-label": t("liveChat") });
  const input = el("input", { id: "chat-message", maxlength: 500, autocomplete: "off", required: true });
  const rows = new Map();
  function render(c) {
    const author = name(c.user, c.user_id);
    const mine = c.user_id === current.id;
    const state = { ...c };
    const badges = el("span", { class: "badges" });
    const pin = el("button", { type: "button", class: "secondary" });
    const highlight = el("button", { type: "button", class: "secondary" });
    // Updated in place (from the API's answer or `comment_updated`), never re-rendered: a
    // button being clicked stays in the page.
    function sync(changes = {}) {
      Object.assign(state, changes);
      row.classList.toggle("pinned", !!state.is_pinned);
      row.classList.toggle("highlighted", !!state.is_highlighted);
      badges.textContent = [state.is_pinned ? t("pinned") : "", state.is_highlighted ? t("highlighted") : ""].filter(Boolean).join(" · ");
      pin.textContent = state.is_pinned ? t("unpin") : t("pin");
      highlight.textContent = state.is_highlighted ? t("unhighlight") : t("highlight");
    }
    const toggle = (button, path, flag) => button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const answer = await api(`/streams/${id}/comments/${c.id}/${path}`, { method: state[flag] ? "DELETE" : "POST" });
        sync({ [flag]: answer.data ? answer.data[flag] : !state[flag] });
      } catch (error) { toast(error.message); } finally { button.disabled = false; }
    });
    toggle(pin, "pin", "is_pinned");
    toggle(highlight, "highlight", "is_highlighted");
    const row = el("li", { "data-comment": c.id, "data-user": c.user_id },
      el("div", {}, el("strong", {}, author), " ", badges, " ", el("span", { class: "text" }, c.content)),
      el("div", { class: "row tools" }, pin, highlight,
        act(t("del"), async () => { await api(`/streams/${id}/comments/${c.id}`, { method: "DELETE" }); row.remove(); }),
        mine ? "" : act(t("mute", { name: author }), async () => { await post(`/streams/${id}/mutes`, { user_id: c.user_id, minutes: 10 }); toast(t("muted", { name: author })); }),
        mine ? "" : act(t("ban", { name: author }), async () => { await post(`/streams/${id}/bans`, { user_id: c.user_id, reason: "from the console" }); toast(t("banned", { name: author })); }, "danger")));
    sync();
    rows.set(c.id, { row, sync });
    return row;
  }
  function add(c) {
    if (rows.has(c.id)) return;
    list.append(render(c));
    list.scrollTop = list.scrollHeight;
  }
  function updated(c) { rows.get(c.id)?.sync({ is_pinned: c.is_pinned, is_highlighted: c.is_highlighted }); }
  function removed(c) { rows.get(c.id)?.row.remove(); rows.delete(c.id); }
  function bannedUser(userId) { list.querySelectorAll("li").forEach((li) => li.dataset.user === String(userId) && li.remove()); }
  const form = el("form", { class: "composer", onsubmit: async (event) => {
    event.preventDefault();
    try { const { data } = await post(`/streams/${id}/comments`, { content: input.value }); input.value = ""; add(data); } catch (error) { toast(error.message); }
  } }, el("label", { for: "chat-message" }, t("message")), el("div", { class: "copyrow" }, input, el("button", { type: "submit" }, t("send"))));
  return { node: section(t("chat"), list, form), add, updated, removed, bannedUser };
}

function giftsPanel() {
  const list = el("ul", { class: "chat", id: "gifts", "aria-label": t("gifts") });
  const total = el("p", { id: "gift-totals", class: "stat-line" });
  let count = 0, coins = 0;
  const seen = new Set();
  function add(g, atTop = true) {
    if (seen.has(g.id)) return;
    seen.add(g.id);
    count += g.quantity ?? 1; coins += g.total_value ?? 0;
    total.textContent = t("giftsTotal", { count: number(count), coins: number(coins) });
    const row = el("li", {}, el("strong", {}, name(g.sender, g.sender_id)), " ", t("giftLine", { q: g.quantity, gift: g.gift?.name ?? "", coins: number(g.total_value) }));
    if (atTop) list.prepend(row); else list.append(row);
  }
  total.textContent = t("giftsTotal", { count: 0, coins: 0 });
  return { node: section(t("gifts"), total, list), add };
}

function viewersPanel(id, initial) {
  const count = el("span", { class: "stat", id: "viewer-count" }, number(initial));
  const canvas = el("canvas", { id: "viewers-chart", height: 140, role: "img", "aria-label": t("viewersChart") });
  const list = el("ul", { id: "viewers-list", class: "plain", "aria-label": t("viewersList") });
  const chart = lineChart("viewers", canvas, [new Date().toLocaleTimeString()], [{ label: t("viewersLabel"), data: [initial] }]);
  async function refresh() {
    const { data } = await api(`/streams/${id}/viewers`);
    list.replaceChildren(...(data.length ? data.map((v) => el("li", {}, name(v.user, v.user_id))) : [el("li", { class: "muted" }, t("nobodyWatching"))]));
  }
  function counted(n) { count.textContent = number(n); push(chart, new Date().toLocaleTimeString(), n); refresh().catch(() => {}); }
  return { node: section(t("viewersNow"), count, canvas, el("h3", {}, t("viewersList")), list), refresh, counted };
}

// --- live room: polls and questions -------------------------------------------------------------

function pollsPanel(id) {
  const list = el("div", { id: "polls" });
  const question = el("input", { id: "poll-question", maxlength: 255, required: true });
  const options = el("textarea", { id: "poll-options", rows: 3, required: true });
  const polls = new Map();
  function bars(poll) {
    const total = poll.options.reduce((sum, o) => sum + o.votes, 0);
    return poll.options.map((o) => {
      const share = total ? Math.round((o.votes / total) * 100) : 0;
      const fill = el("div", { class: "bar-fill" });
      fill.style.width = `${share}%`; // through the CSSOM: the policy refuses style attributes
      return el("div", { class: "poll-option", "data-option": o.id, "data-votes": o.votes },
        el("div", { class: "bar-label" }, el("span", {}, o.text), el("span", { class: "bar-votes" }, `${t("votes", { n: number(o.votes) })} · ${share}%`)),
        el("div", { class: "bar-track", "aria-hidden": "true" }, fill));
    });
  }
  function render(poll) {
    const box = el("article", { class: "poll", "data-poll": poll.id },
      el("h3", {}, poll.question, poll.is_closed ? el("span", { class: "status" }, t("pollClosed")) : ""),
      bars(poll),
      poll.is_closed ? "" : act(t("closePoll"), async () => { const { data } = await post(`/streams/${id}/polls/${poll.id}/close`); put(data); }));
    const old = polls.get(poll.id)?.box;
    polls.set(poll.id, { poll, box });
    if (old) old.replaceWith(box); else list.prepend(box);
    list.querySelector(".empty")?.remove();
  }
  function put(data) {
    const poll = { id: data.id ?? data.poll_id, question: data.question, options: data.options, is_closed: data.is_closed };
    render(poll);
  }
  function voted(data) {
    const entry = polls.get(data.poll_id);
    if (!entry) return;
    entry.poll.options = entry.poll.options.map((o) => (o.id === data.option_id ? { ...o, votes: data.votes } : o));
    render(entry.poll);
  }
  const form = el("form", { class: "stack", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const { data } = await post(`/streams/${id}/polls`, { question: question.value, options: options.value.split("\n").map((o) => o.trim()).filter(Boolean) });
      put(data); event.target.reset(); toast(t("pollOpened"));
    } catch (error) { toast(error.message); }
  } }, field("poll-question", t("pollQuestion"), question), field("poll-options", t("pollOptions"), options), el("p", {}, el("button", { type: "submit" }, t("openPoll"))));
  async function load() {
    const { data } = await api(`/streams/${id}/polls`);
    list.replaceChildren(el("p", { class: "muted empty" }, t("noPolls")));
    [...data].reverse().forEach(put);
  }
  return { node: section(t("polls"), form, list), load, put, voted };
}

function questionsPanel(id) {
  const list = el("ul", { id: "questions", class: "chat" });
  const items = new Map();
  function render(q) {
    const qid = q.id ?? q.question_id;
    const row = el("li", { "data-question": qid, class: q.is_answered ? "answered" : "" },
      el("div", {}, el("strong", {}, q.username ?? name(q.user, q.user_id)), " ", q.question),
      el("div", { class: "row tools" }, el("span", { class: "muted upvotes" }, t("upvotes", { n: number(q.upvotes) })),
        q.is_answered ? el("span", { class: "status" }, t("answered")) : act(t("answer"), async () => { const { data } = await post(`/streams/${id}/questions/${qid}/answer`); put(data); }),
        act(t("dismiss"), async () => { await post(`/streams/${id}/questions/${qid}/dismiss`); drop(qid); })));
    const old = items.get(qid);
    items.set(qid, { q: { ...q, id: qid }, row });
    if (old) old.row.replaceWith(row); else list.append(row);
    list.querySelector(".empty")?.remove();
  }
  function put(q) { render(q); }
  function drop(qid) { items.get(qid)?.row.remove(); items.delete(qid); }
  function upvoted(data) { const item = items.get(data.question_id); if (item) render({ ...item.q, upvotes: data.upvotes }); }
  async function load() {
    const { data } = await api(`/streams/${id}/questions`);
    list.replaceChildren(el("li", { class: "muted empty" }, t("noQuestions")));
    data.forEach(put);
  }
  return { node: section(t("questions"), list), load, put, drop, upvoted };
}

// --- live room: battles -------------------------------------------------------------------------

function minutes(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// The creator's side of a PK battle: invite a live stream, answer an invitation, the score bar
// with a countdown, forfeit, and the result. Events refresh it; the scores move in place.
function battlePanel(id, live) {
  const box = el("div", { id: "battle" });
  let battle = null, outcome = null, notice = "", skew = 0; // skew: the server's clock minus ours
  const sides = (b) => (b.stream_id_1 === Number(id) ? [b.stream_1, b.stream_2] : [b.stream_2, b.stream_1]);
  const heard = (data) => { if (data?.timestamp) skew = Date.parse(data.timestamp) - Date.now(); };
  const serverNow = () => Date.now() + skew;

  function inviteForm() {
    if (!live()) return el("p", { class: "muted" }, t("battleNotLive"));
    const pick = el("select", { id: "battle-pick" }, el("option", { value: "" }, t("battlePick")));
    const typed = el("input", { id: "battle-stream-id", inputmode: "numeric", pattern: "[0-9]*", autocomplete: "off" });
    async function fill() {
      const { data } = await api("/streams?status=live&per_page=100");
      const others = data.filter((s) => s.id !== Number(id) && s.user_id !== current.id);
      pick.replaceChildren(el("option", { value: "" }, others.length ? t("battlePick") : t("battleNoLive")),
        ...others.map((s) => el("option", { value: s.id }, `${s.title} · ${name(s.user, s.user_id)}`)));
    }
    fill().catch(() => {});
    return el("form", { class: "stack", onsubmit: async (event) => {
      event.preventDefault();
      const opponent = Number(typed.value.trim() || pick.value);
      if (!opponent) { toast(t("battleChoose")); return; }
      try {
        const { data } = await post(`/streams/${id}/battles/invite`, { opponent_stream_id: opponent });
        hold(data);
      } catch (error) { toast(error.message); }
    } },
      el("p", { class: "muted" }, t("battleHelp")),
      el("label", { for: "battle-pick" }, t("battleOpponent")),
      el("div", { class: "copyrow battle-pick" }, pick, act(t("battleRefresh"), fill)),
      field("battle-stream-id", t("battleStreamId"), typed),
      el("p", {}, el("button", { type: "submit" }, t("battleInvite"))));
  }

  function scoreBar(mine, theirs, opponent) {
    const total = mine + theirs;
    const share = total ? Math.round((mine / total) * 100) : 50;
    const fill = el("div", { class: "battle-mine" });
    fill.style.width = `${share}%`; // through the CSSOM: the policy refuses style attributes
    return el("div", { id: "battle-score", "data-mine": mine, "data-theirs": theirs },
      el("div", { class: "bar-label" },
        el("span", { class: "battle-me" }, `${t("battleYou")}: ${t("coins", { n: number(mine) })}`),
        el("span", { class: "battle-them" }, `${opponent}: ${t("coins", { n: number(theirs) })}`)),
      el("div", { class: "battle-track", "aria-hidden": "true" }, fill));
  }

  function render() {
    if (!battle) { box.replaceChildren(...(notice ? [el("p", { class: "battle-note", role: "status" }, notice)] : []), outcomeNode(), inviteForm()); return; }
    const [me, them] = sides(battle);
    const opponent = them.user_name || them.name;
    const invitedMe = battle.stream_id_2 === Number(id);
    if (battle.status === "pending") {
      box.replaceChildren(el("div", { id: "battle-state", "data-state": invitedMe ? "invited" : "inviting", "data-battle": battle.id },
        invitedMe
          ? [el("p", { class: "battle-note" }, t("battleIncoming", { name: opponent, title: them.name })),
             el("div", { class: "row" },
               act(t("battleAccept"), async () => { hold((await post(`/battles/${battle.id}/accept`)).data); }, ""),
               act(t("battleDecline"), async () => { await post(`/battles/${battle.id}/decline`); battle = null; notice = ""; render(); }))]
          : el("p", { class: "battle-note" }, t("battleWaiting", { name: opponent, when: clock(battle.expires_at) })),
        el("p", { class: "muted", id: "battle-countdown" }, "")));
    } else {
      box.replaceChildren(el("div", { id: "battle-state", "data-state": "active", "data-battle": battle.id },
        el("h3", {}, t("battleVs", { name: opponent })),
        scoreBar(me.score, them.score, opponent),
        el("p", { class: "battle-clock", id: "battle-countdown", role: "timer" }, ""),
        act(t("battleForfeit"), async () => {
          if (confirm(t("battleForfeitSure", { name: opponent }))) await post(`/battles/${battle.id}/forfeit`);
        }, "danger")));
    }
    tick();
  }

  function outcomeNode() {
    if (!outcome) return "";
    const key = outcome.winner_stream_id == null ? "battleDraw" : outcome.winner_stream_id === Number(id) ? "battleWon" : "battleLost";
    return el("div", { id: "battle-result", class: `battle-result ${key}`, "data-result": key.slice(6).toLowerCase() },
      el("p", { class: "battle-outcome", role: "status" }, t(key)),
      el("p", {}, t("battleFinal", { mine: number(outcome.my_score), theirs: number(outcome.opponent_score), name: outcome.opponent })),
      ["forfeit", "stream_ended"].includes(outcome.reason)
        ? el("p", {}, t(`battleReason_${outcome.reason}_${key === "battleLost" ? "mine" : "theirs"}`, { name: outcome.opponent })) : "");
  }

  function tick() {
    const line = box.querySelector("#battle-countdown");
    if (!battle || !line) return;
    const until = Date.parse(battle.status === "pending" ? battle.expires_at : battle.ends_at) - serverNow();
    if (battle.status === "pending" && until <= 0) { battle = null; notice = t("battleExpired"); render(); return; }
    line.textContent = t(battle.status === "pending" ? "battleAnswerWithin" : "battleLeft", { time: minutes(until) });
  }

  function hold(data) {
    if (!["pending", "active"].includes(data?.status)) return; // a late answer about a battle already over
    battle = data; outcome = null; notice = ""; render();
  }
  async function reload(battleId) { hold((await api(`/battles/${battleId}`)).data); }
  async function load() {
    const { data } = await api(`/streams/${id}/battles/current`);
    battle = data && ["pending", "active"].includes(data.status) ? data : null;
    render();
  }
  function scored(data) {
    if (!battle || data.battle_id !== battle.id) return;
    heard(data);
    const [me, them] = sides(battle);
    me.score = data.my_score; them.score = data.opponent_score;
    box.querySelector("#battle-score")?.replaceWith(scoreBar(me.score, them.score, them.user_name || them.name));
  }
  function ended(data) {
    heard(data);
    const them = battle && battle.id === data.battle_id ? sides(battle)[1] : null;
    outcome = { ...data, opponent: them ? them.user_name || them.name : "" };
    battle = null; notice = ""; render();
  }
  function declined(data) {
    if (battle && data.battle_id !== battle.id) return;
    battle = null; notice = t("battleDeclined", { name: data.opponent_name ?? "" }); render();
  }
  every(1000, tick);
  const refreshed = (data) => { heard(data); reload(data.battle_id).catch((error) => toast(error.message)); };
  return {
    node: section(t("battle"), box), load, restatus: () => { if (!battle) render(); },
    handlers: { battle_invite: refreshed, battle_accepted: refreshed, battle_declined: declined,
                battle_score_update: scored, battle_ended: ended },
  };
}

// --- live room ----------------------------------------------------------------------------------

async function liveView(id) {
  const { data: stream, playback_url: playback } = await api(`/streams/${id}`);
  const status = statusPill(stream.status, "live-status");
  const updates = el("span", { class: "muted", id: "live-updates", "data-connected": "false" }, t("updatesConnecting"));
  const preview = previewPanel(playback || stream.playback_url);
  const health = healthPanel(id, preview);
  const chat = chatPanel(id), gifts = giftsPanel(), viewers = viewersPanel(id, stream.current_viewers ?? 0);
  const polls = pollsPanel(id), questions = questionsPanel(id);
  const owner = stream.user_id === current.id;
  const battle = owner ? battlePanel(id, () => status.dataset.status === "live") : null;
  show(stream.title,
    el("p", { class: "row statusline" }, el("span", {}, t("statusLine")), status, el("span", { "aria-hidden": "true" }, "·"), updates,
      el("a", { href: `#/analytics/${id}` }, t("analytics")), el("a", { href: `#/moderation/${id}` }, t("moderationLog"))),
    el("div", { class: "grid wide" },
      section(t("preview"), preview.node, owner && stream.stream_key ? ingestPanel(stream, { encoder: false }) : ""),
      health.node),
    el("div", { class: "grid" }, chat.node, el("div", {}, battle ? battle.node : "", gifts.node, viewers.node)),
    el("div", { class: "grid" }, polls.node, questions.node));
  if (["ended", "cancelled"].includes(stream.status)) preview.ended();

  (await api(`/streams/${id}/comments?limit=50`)).data.forEach(chat.add);
  await Promise.all([
    api(`/streams/${id}/gifts?limit=50`).then(({ data }) => data.forEach((g) => gifts.add(g, false))).catch(() => {}),
    viewers.refresh().catch(() => {}), polls.load().catch(() => {}), questions.load().catch(() => {}), health.refresh().catch(() => {}),
    battle?.load().catch(() => {}),
  ]);
  every(5000, () => { health.refresh().catch(() => {}); viewers.refresh().catch(() => {}); });
  // The socket says when the playlist exists; asking too covers a socket that was not yet open.
  every(3000, async () => {
    if (preview.video.dataset.started || ["ended", "cancelled"].includes(status.dataset.status)) return;
    const answer = await api(`/streams/${id}`).catch(() => null);
    if (answer?.playback_url || answer?.data?.playback_url) preview.play(answer.playback_url || answer.data.playback_url);
  });
  preview.video.addEventListener("playing", () => { preview.video.dataset.started = "true"; });

  const handlers = {
    new_comment: chat.add, comment_updated: chat.updated, comment_deleted: chat.removed,
    gift_sent: (g) => gifts.add(g), user_banned: (d) => chat.bannedUser(d.user_id),
    viewer_count_updated: (d) => viewers.counted(d.current_viewers),
    status_changed: (d) => {
      setStatus(status, d.status);
      if (d.playback_url) preview.play(d.playback_url);
      if (["ended", "cancelled"].includes(d.status)) preview.ended();
      battle?.restatus();
    },
    poll_created: polls.put, poll_closed: polls.put, poll_vote: polls.voted,
    question_submitted: questions.put, question_answered: questions.put, question_dismissed: (d) => questions.drop(d.question_id),
    question_upvoted: questions.upvoted, stream_health_warning: health.warned,
    ...battle?.handlers,
  };
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/streams/${id}?token=${encodeURIComponent(token())}`);
  socket.onmessage = (message) => {
    const { event, data } = JSON.parse(message.data);
    handlers[event]?.(data);
  };
  socket.onopen = () => { updates.textContent = t("updatesOn"); updates.dataset.connected = "true"; };
  socket.onclose = () => { updates.textContent = t("updatesOff"); updates.dataset.connected = "false"; toast(t("disconnected")); };
  every(30000, () => socket && socket.readyState === 1 && socket.send(JSON.stringify({ event: "ping", data: { timestamp: Date.now() } })));
}

// --- analytics ----------------------------------------------------------------------------------

async function analyticsView(id) {
  const { data: a } = await api(`/streams/${id}/analytics`);
  const card = (label, value, key) => el("section", { class: "card-stat" }, el("div", { class: "muted" }, label), el("div", { class: "stat", "data-stat": key }, value));
  const canvas = (key, label) => el("canvas", { id: `${key}-chart`, height: 180, role: "img", "aria-label": label });
  const timeline = canvas("timeline", t("viewersChart")), retention = canvas("retention", t("retention")), regions = canvas("regions", t("regions"));
  const people = (label, rows, value) => rows.length
    ? el("table", { "aria-label": label }, el("tbody", {}, rows.map((r) => el("tr", {}, el("td", {}, name(r.user, "?")), el("td", {}, value(r))))))
    : el("p", { class: "muted" }, t("nobody"));
  const polls = a.polls ?? {}, questions = a.questions ?? {}, h = a.health ?? {}, battles = a.battles ?? {};
  show(t("analytics"),
    el("div", { class: "grid cards" },
      card(t("uniqueViewers"), number(a.unique_viewers)), card(t("peakViewers"), number(a.peak_viewers)),
      card(t("avgWatch"), t("seconds", { n: number(a.average_watch_time) })),
      card(t("engagement"), t("perViewer", { n: number(a.engagement_rate, 2) }), "engagement"),
      card(t("revenue"), `${t("coins", { n: number(a.revenue.gross) })} / ${t("coins", { n: number(a.revenue.creator_share) })}`),
      card(t("interactions"), `${number(a.total_likes)} · ${number(a.total_comments)} · ${number(a.total_shares)}`),
      card(t("pollsSummary"), `${number(polls.count)} · ${number(polls.votes)}`),
      card(t("questionsSummary"), `${number(questions.asked)} · ${number(questions.answered)}`),
      card(t("superChatsSummary"), `${number(a.total_super_chats)} · ${t("coins", { n: number(a.revenue.super_chats?.gross) })}`, "super-chats"),
      card(t("battlesSummary"), `${number(battles.fought)} · ${number(battles.won)} · ${t("coins", { n: number(battles.points) })}`, "battles"),
      card(t("healthSummary"), `${t("kbps", { n: number(h.average_bitrate) })} · ${t("fpsUnit", { n: number(h.average_fps, 1) })}`)),
    el("div", { class: "grid" },
      section(t("viewersChart"), timeline), section(t("retention"), retention), section(t("regions"), regions)),
    el("div", { class: "grid" },
      section(t("topViewers"), people(t("topViewers"), a.top_viewers, (r) => t("seconds", { n: number(r.watch_time) }))),
      section(t("topGifters"), people(t("topGifters"), a.top_gifters, (r) => t("coins", { n: number(r.total_value) })))));
  lineChart("timeline", timeline, a.timeline.map((p) => `${p.timestamp}s`), [{ label: t("viewersLabel"), data: a.timeline.map((p) => p.viewers) }]);
  lineChart("retention", retention, a.retention_data.map((p) => `${p.timestamp}s`), [{ label: t("pctWatching"), data: a.retention_data.map((p) => Math.round(p.share * 100)) }]);
  charts.regions = new Chart(regions, { type: "bar", data: { labels: Object.keys(a.viewers_by_region), datasets: [{ label: t("viewersLabel"), data: Object.values(a.viewers_by_region), backgroundColor: "#0b6e4f" }] }, options: { animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
}

// --- moderation log and admin -------------------------------------------------------------------

async function moderationView(id) {
  const { data } = await api(`/streams/${id}/moderation-log`);
  const th = (text) => el("th", { scope: "col" }, text);
  show(t("moderationLog"), el("section", {}, el("table", { "aria-label": t("moderationLog") },
    el("thead", {}, el("tr", {}, th(t("when")), th(t("who")), th(t("what")), th(t("why")))),
    el("tbody", {}, data.map((e) => el("tr", {}, el("td", {}, clock(e.created_at)), el("td", {}, t("user", { id: e.actor_id })),
      el("td", {}, `${t(`act_${e.action}`).replace(/^act_/, "")} ${e.target_user_id ? t("user", { id: e.target_user_id }) : ""}${e.comment_id ? ` (#${e.comment_id})` : ""}`),
      el("td", {}, e.reason ?? "")))))));
}

async function adminView() {
  if (!current.is_admin) { show(t("notAllowed"), el("p", { id: "not-admin" }, t("notAdmin"))); return; }
  const { data } = await api("/streams?per_page=100");
  const detail = el("section", { id: "admin-gifts", "aria-live": "polite" }, el("p", { class: "muted" }, t("pickStream")));
  async function giftsOf(stream) {
    const { data: sent } = await api(`/streams/${stream.id}/gifts`);
    detail.replaceChildren(el("h2", {}, t("giftsOn", { title: stream.title })), el("table", { "aria-label": t("giftsOn", { title: stream.title }) }, el("tbody", {}, sent.map((g) => el("tr", {},
      el("td", {}, name(g.sender, g.sender_id)), el("td", {}, `${g.quantity} × ${g.gift?.name} = ${t("coins", { n: number(g.total_value) })}`),
      el("td", {}, g.refunded_at ? t("refunded") : act(t("refund"), async () => { await post(`/streams/${stream.id}/gifts/${g.id}/refund`); await giftsOf(stream); }, "danger")))))));
  }
  show(t("allStreams"), el("section", {}, el("table", { "aria-label": t("allStreams") }, el("tbody", {}, data.map((s) => el("tr", {},
    el("td", {}, el("a", { href: `#/live/${s.id}` }, s.title)), el("td", {}, statusPill(s.status)),
    el("td", {}, act(t("gifts"), () => giftsOf(s), "secondary", { "aria-label": `${t("gifts")}: ${s.title}` }))))))), detail);
}

// --- routing ------------------------------------------------------------------------------------

async function route() {
  translateShell();
  const user = token() && (await whoAmI().catch(() => null));
  if (!user) { if (token()) sessionStorage.removeItem("tajiri.token"); reset(); return signInView(); }
  document.getElementById("nav").hidden = false;
  document.getElementById("nav-admin").hidden = !user.is_admin;
  const [, page, id] = (location.hash || "#/streams").split("/");
  reset();
  try {
    if (page === "live") await liveView(id);
    else if (page === "analytics") await analyticsView(id);
    else if (page === "moderation") await moderationView(id);
    else if (page === "admin") await adminView();
    else await streamsView();
  } catch (error) { show(t("wrong"), el("p", {}, error.message)); }
}

document.getElementById("sign-out").addEventListener("click", signOut);
document.getElementById("language").addEventListener("change", (event) => {
  localStorage.setItem("tajiri.lang", event.target.value);
  route();
});
window.addEventListener("hashchange", route);
route();
