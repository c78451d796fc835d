// The tajiri-live console: a small single-page app over the REST API and the plain WebSocket.
// The only secret it holds is the signed-in user's token, in this tab's sessionStorage.
"use strict";

const view = document.getElementById("view");
const charts = (window.tajiriCharts = {}); // by name, for people and tests to inspect
let socket = null;

function token() { return sessionStorage.getItem("tajiri.token"); }

function me() {
  try {
    const part = token().split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part));
    return { id: Number(claims.sub), admin: claims.admin === true || (claims.roles || []).includes("admin") };
  } catch (error) { return null; }
}

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
  const response = await fetch(`/api${path}`, {
    ...options,
    headers: { Accept: "application/json", Authorization: `Bearer ${token()}`,
               ...(options.body ? { "Content-Type": "application/json" } : {}) },
    body: options.body ? JSON.stringify(options.body) : undefined,
  });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) { signOut(); throw new Error("Your session ended: sign in again."); }
  if (!response.ok) throw new Error(body.message || `Request failed (${response.status})`);
  return body;
}

function act(label, run, cls = "secondary") {
  return el("button", { type: "button", class: cls, onclick: async (event) => {
    event.target.disabled = true;
    try { await run(); } catch (error) { toast(error.message); } finally { event.target.disabled = false; }
  } }, label);
}

function closeSocket() { if (socket) { socket.onclose = null; socket.close(); socket = null; } }

function show(title, ...content) {
  closeSocket();
  for (const chart of Object.values(charts)) chart.destroy();
  for (const name of Object.keys(charts)) delete charts[name];
  view.replaceChildren(el("h1", {}, title), ...content);
  view.focus();
  document.title = `${title} · tajiri-live console`;
}

function lineChart(name, canvas, labels, data, label) {
  charts[name] = new Chart(canvas, {
    type: "line",
    data: { labels, datasets: [{ label, data, borderColor: "#0b6e4f", backgroundColor: "rgba(11,110,79,.15)", fill: true, tension: .25 }] },
    options: { animation: false, responsive: true, scales: { y: { beginAtZero: true } } },
  });
  return charts[name];
}

// --- sign in --------------------------------------------------------------------------------------

function signInView() {
  document.getElementById("nav").hidden = true;
  const input = el("input", { id: "token", name: "token", autocomplete: "off", required: true, "aria-describedby": "token-help" });
  show("Sign in",
    el("form", { class: "card", onsubmit: (event) => {
      event.preventDefault();
      sessionStorage.setItem("tajiri.token", input.value.trim());
      if (!me()) { sessionStorage.removeItem("tajiri.token"); toast("That is not a token."); return; }
      location.hash = "#/streams";
      route();
    } },
      el("label", { for: "token" }, "Access token"), input,
      el("p", { id: "token-help", class: "muted" }, "Paste the token the TAJIRI app gives you. On a local install: ",
        el("code", {}, "tajiri-live token YOUR_USER_ID")),
      el("button", { type: "submit" }, "Sign in")));
}

function signOut() { sessionStorage.removeItem("tajiri.token"); closeSocket(); location.hash = "#/signin"; route(); }

// --- my streams ---------------------------------------------------------------------------------

async function streamsView() {
  const user = me();
  const title = el("input", { id: "title", name: "title", required: true, maxlength: 255 });
  const when = el("input", { id: "scheduled_at", name: "scheduled_at", type: "datetime-local" });
  const privacy = el("select", { id: "privacy", name: "privacy" },
    el("option", { value: "public" }, "Public"), el("option", { value: "friends" }, "Friends"), el("option", { value: "private" }, "Private"));
  const recorded = el("input", { id: "is_recorded", name: "is_recorded", type: "checkbox" });
  const list = el("tbody");
  show("My streams",
    el("form", { class: "card", onsubmit: async (event) => {
      event.preventDefault();
      try {
        const body = { title: title.value, privacy: privacy.value, is_recorded: recorded.checked };
        if (when.value) body.scheduled_at = new Date(when.value).toISOString();
        await api("/streams", { method: "POST", body });
        title.value = ""; toast("Stream created."); await fill();
      } catch (error) { toast(error.message); }
    } },
      el("h2", {}, "New stream"),
      el("label", { for: "title" }, "Title"), title,
      el("label", { for: "scheduled_at" }, "Starts at (empty: now)"), when,
      el("label", { for: "privacy" }, "Who can watch"), privacy,
      el("label", { for: "is_recorded" }, recorded, " Record it"),
      el("p", {}, el("button", { type: "submit" }, "Create"))),
    el("section", {}, el("table", { "aria-label": "My streams" },
      el("thead", {}, el("tr", {}, el("th", {}, "Stream"), el("th", {}, "Status"), el("th", {}, "Ingest"), el("th", {}, "Actions"))), list)));

  async function fill() {
    const { data } = await api(`/streams/user/${user.id}?per_page=50`);
    list.replaceChildren(...data.map((stream) => {
      const key = el("span", { class: "key" }, stream.stream_key ?? "");
      const ingest = stream.ingest ?? {};
      const health = ingest.health
        ? `${ingest.health.width ?? "?"}×${ingest.health.height ?? "?"}, ${ingest.health.fps ?? "?"} fps, ${ingest.health.bitrate_kbps ?? "?"} kb/s`
        : "";
      const secret = el("div", { class: "secret", hidden: true },
        el("div", {}, "Server: ", stream.stream_url ?? ""), el("div", {}, "Key: ", key),
        el("div", { class: "encoder" }, ingest.publishing ? `Encoder connected ${health}` : "Encoder not connected"),
        el("div", { class: "muted" }, "Key valid until ", ingest.key_expires_at ?? ""),
        act("Copy key", async () => { await navigator.clipboard.writeText(key.textContent); toast("Key copied."); }),
        act("New key", async () => {
          const rotated = await api(`/streams/${stream.id}/rotate-key`, { method: "POST" });
          key.textContent = rotated.stream_key;
          toast("New key: the old one no longer works.");
        }));
      const step = (label, path, cls) => act(label, async () => { await api(`/streams/${stream.id}/${path}`, { method: "POST" }); await fill(); }, cls);
      return el("tr", { "data-stream": stream.id },
        el("td", {}, el("a", { href: `#/live/${stream.id}` }, stream.title)),
        el("td", {}, el("span", { class: `status ${stream.status}` }, stream.status)),
        el("td", {}, act("Show ingest URL and key", async () => { secret.hidden = !secret.hidden; }), secret),
        el("td", {}, el("div", { class: "row" },
          ["scheduled", "pre_live"].includes(stream.status) ? step("Start", "start", "") : "",
          ["live", "pre_live"].includes(stream.status) ? step("End", "end", "danger") : "",
          ["scheduled", "pre_live"].includes(stream.status) ? step("Cancel", "cancel") : "",
          el("a", { href: `#/analytics/${stream.id}` }, "Analytics"),
          el("a", { href: `#/moderation/${stream.id}` }, "Moderation log"))));
    }));
  }
  await fill();
}

// --- live room ----------------------------------------------------------------------------------

async function liveView(id) {
  const { data: stream, playback_url: playback } = await api(`/streams/${id}`);
  const chat = el("ul", { class: "chat", id: "chat", "aria-live": "polite", "aria-label": "Live chat" });
  const gifts = el("ul", { class: "chat", id: "gifts", "aria-label": "Gifts" });
  const count = el("span", { class: "stat", id: "viewer-count" }, stream.current_viewers ?? 0);
  const status = el("span", { class: `status ${stream.status}`, id: "live-status" }, stream.status);
  const updates = el("span", { class: "muted", id: "live-updates", "data-connected": "false" }, "connecting…");
  const video = el("video", { controls: true, muted: true, playsinline: true, "aria-label": "Live preview" });
  const canvas = el("canvas", { id: "viewers-chart", height: 160, role: "img", "aria-label": "Viewers over time" });
  show(stream.title,
    el("p", {}, status, " ", updates, " ", el("a", { href: `#/analytics/${id}` }, "Analytics")),
    el("div", { class: "grid" },
      el("section", {}, el("h2", {}, "Preview"), video),
      el("section", {}, el("h2", {}, "Viewers now"), count, canvas)),
    el("div", { class: "grid" },
      el("section", {}, el("h2", {}, "Chat"), chat),
      el("section", {}, el("h2", {}, "Gifts"), gifts)));
  function play(source) {
    video.dataset.playing = "true";
    if (window.Hls && Hls.isSupported()) {
      const hls = new Hls({ liveSyncDurationCount: 1 }); // start at the live edge
      hls.loadSource(source);
      hls.attachMedia(video);
    } else video.src = source;
  }
  const source = playback || stream.playback_url;
  if (source) play(source); // with ingest: once the playlist exists (status_changed below)
  const viewers = lineChart("viewers", canvas, [new Date().toLocaleTimeString()], [stream.current_viewers ?? 0], "Viewers");

  function comment(c) {
    const author = c.user?.display_name ?? `user${c.user_id}`;
    const row = el("li", { "data-comment": c.id, "data-user": c.user_id, class: c.is_pinned ? "pinned" : "" },
      el("strong", {}, author), " ", el("span", { class: "text" }, c.content), " ",
      el("div", { class: "row" },
        act("Pin", async () => { await api(`/streams/${id}/comments/${c.id}/pin`, { method: "POST" }); row.classList.add("pinned"); }),
        act("Delete", async () => { await api(`/streams/${id}/comments/${c.id}`, { method: "DELETE" }); row.remove(); }),
        act(`Ban ${author}`, async () => { await api(`/streams/${id}/bans`, { method: "POST", body: { user_id: c.user_id, reason: "from the console" } }); toast(`${author} is banned.`); }, "danger"),
        act("Mute 10 min", async () => { await api(`/streams/${id}/mutes`, { method: "POST", body: { user_id: c.user_id, minutes: 10 } }); toast(`${author} is muted.`); })));
    chat.append(row);
    chat.scrollTop = chat.scrollHeight;
  }
  function gift(g) {
    gifts.prepend(el("li", {}, el("strong", {}, g.sender?.display_name ?? `user${g.sender_id}`), ` sent ${g.quantity} × ${g.gift?.name ?? "gift"} (${g.total_value} coins)`));
  }
  (await api(`/streams/${id}/comments?limit=50`)).data.forEach(comment);
  try { (await api(`/streams/${id}/gifts?limit=20`)).data.reverse().forEach(gift); } catch (error) { /* not a moderator */ }

  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/streams/${id}?token=${encodeURIComponent(token())}`);
  socket.onmessage = (message) => {
    const { event, data } = JSON.parse(message.data);
    if (event === "new_comment") comment(data);
    else if (event === "gift_sent") gift(data);
    else if (event === "viewer_count_updated") {
      count.textContent = data.current_viewers;
      viewers.data.labels.push(new Date().toLocaleTimeString());
      viewers.data.datasets[0].data.push(data.current_viewers);
      viewers.update();
    } else if (event === "status_changed") {
      status.textContent = data.status; status.className = `status ${data.status}`;
      if (data.playback_url && !video.dataset.playing) play(data.playback_url);
    }
    else if (event === "user_banned") chat.querySelectorAll("li").forEach((li) => li.dataset.user === String(data.user_id) && li.remove());
  };
  socket.onopen = () => { updates.textContent = "live updates on"; updates.dataset.connected = "true"; };
  socket.onclose = () => { updates.textContent = "live updates off"; updates.dataset.connected = "false"; toast("Live updates disconnected."); };
  const ping = setInterval(() => socket && socket.readyState === 1 ? socket.send(JSON.stringify({ event: "ping", data: { timestamp: Date.now() } })) : clearInterval(ping), 30000);
}

// --- analytics ------------------------------------------------------------------------------------

async function analyticsView(id) {
  const { data: a } = await api(`/streams/${id}/analytics`);
  const card = (label, value) => el("section", {}, el("div", { class: "muted" }, label), el("div", { class: "stat" }, value));
  const canvas = (name, label) => el("canvas", { id: `${name}-chart`, height: 180, role: "img", "aria-label": label });
  const timeline = canvas("timeline", "Viewers over time"), retention = canvas("retention", "Retention curve"), regions = canvas("regions", "Viewers by region");
  const people = (rows, value) => el("table", {}, el("tbody", {}, rows.map((r) => el("tr", {}, el("td", {}, r.user?.display_name ?? "?"), el("td", {}, value(r))))));
  show("Analytics",
    el("div", { class: "grid" },
      card("Unique viewers", a.unique_viewers), card("Peak viewers", a.peak_viewers),
      card("Average watch time", `${Math.round(a.average_watch_time)} s`), card("Engagement rate", a.engagement_rate),
      card("Revenue (gross / creator)", `${a.revenue.gross} / ${a.revenue.creator_share}`), card("Likes · comments · shares", `${a.total_likes} · ${a.total_comments} · ${a.total_shares}`)),
    el("div", { class: "grid" },
      el("section", {}, el("h2", {}, "Viewers over time"), timeline),
      el("section", {}, el("h2", {}, "Retention"), retention),
      el("section", {}, el("h2", {}, "Regions"), regions)),
    el("div", { class: "grid" },
      el("section", {}, el("h2", {}, "Top viewers (watch time)"), people(a.top_viewers, (r) => `${r.watch_time} s`)),
      el("section", {}, el("h2", {}, "Top gifters"), people(a.top_gifters, (r) => `${r.total_value} coins`))));
  lineChart("timeline", timeline, a.timeline.map((p) => `${p.timestamp}s`), a.timeline.map((p) => p.viewers), "Viewers");
  lineChart("retention", retention, a.retention_data.map((p) => `${p.timestamp}s`), a.retention_data.map((p) => Math.round(p.share * 100)), "% of the audience watching");
  charts.regions = new Chart(regions, { type: "bar", data: { labels: Object.keys(a.viewers_by_region), datasets: [{ label: "Viewers", data: Object.values(a.viewers_by_region), backgroundColor: "#0b6e4f" }] }, options: { animation: false } });
}

// --- moderation log and admin -------------------------------------------------------------------

async function moderationView(id) {
  const { data } = await api(`/streams/${id}/moderation-log`);
  show("Moderation log", el("section", {}, el("table", { "aria-label": "Moderation log" },
    el("thead", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "Who"), el("th", {}, "What"), el("th", {}, "Why"))),
    el("tbody", {}, data.map((e) => el("tr", {}, el("td", {}, e.created_at), el("td", {}, `user ${e.actor_id}`),
      el("td", {}, `${e.action} ${e.target_user_id ? `user ${e.target_user_id}` : ""}${e.comment_id ? ` (comment ${e.comment_id})` : ""}`),
      el("td", {}, e.reason ?? "")))))));
}

async function adminView() {
  const { data } = await api("/streams?per_page=100");
  const detail = el("section", { id: "admin-gifts" }, el("p", { class: "muted" }, "Pick a stream to see its gifts."));
  async function giftsOf(stream) {
    const { data: sent } = await api(`/streams/${stream.id}/gifts`);
    detail.replaceChildren(el("h2", {}, `Gifts on ${stream.title}`), el("table", {}, el("tbody", {}, sent.map((g) => el("tr", {},
      el("td", {}, g.sender?.display_name ?? g.sender_id), el("td", {}, `${g.quantity} × ${g.gift?.name} = ${g.total_value}`),
      el("td", {}, g.refunded_at ? "refunded" : act("Refund", async () => { await api(`/streams/${stream.id}/gifts/${g.id}/refund`, { method: "POST" }); await giftsOf(stream); }, "danger")))))));
  }
  show("All streams", el("section", {}, el("table", {}, el("tbody", {}, data.map((s) => el("tr", {},
    el("td", {}, el("a", { href: `#/live/${s.id}` }, s.title)), el("td", {}, el("span", { class: `status ${s.status}` }, s.status)),
    el("td", {}, act("Gifts", () => giftsOf(s)))))))), detail);
}

// --- routing ------------------------------------------------------------------------------------

async function route() {
  const user = token() && me();
  if (!user) return signInView();
  document.getElementById("nav").hidden = false;
  document.getElementById("nav-admin").hidden = !user.admin;
  const [, page, id] = (location.hash || "#/streams").split("/");
  try {
    if (page === "live") await liveView(id);
    else if (page === "analytics") await analyticsView(id);
    else if (page === "moderation") await moderationView(id);
    else if (page === "admin") await adminView();
    else await streamsView();
  } catch (error) { show("Something went wrong", el("p", {}, error.message)); }
}

document.getElementById("sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
route();
