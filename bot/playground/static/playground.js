// madoguchi playground: a small Slack-like client for the local Slack emulator (`madoguchi demo`).
// Plain ES module, no dependencies. Every piece of text goes into the DOM as text nodes: never as HTML.

const API = "/playground/api";
const STORE_AS = "madoguchi.playground.as";
const STORE_SEEN = "madoguchi.playground.seen.";

const app = {
  people: [],
  peopleById: new Map(),
  bot: { id: "", name: "madoguchi" },
  command: "/madoguchi",
  team: null,
  user: null,
  selected: null, // "home" or a conversation id
  state: null,
  version: null,
  pollGen: 0,
  pollController: null,
  modal: null, // {id, key, el, controls, serverErrors, clientErrors}
  savedValues: new Map(), // view id -> state values typed there (restored when the view comes back)
  msgCache: new Map(),
  homeKey: null,
  homeControls: [],
  forceScroll: false,
  confirmOpen: false,
};
window.__playground = app; // for debugging in the browser console

// ------------------------------------------------------------------------------------------------ DOM helpers

const PROPS = new Set(["value", "checked", "selected", "disabled", "multiple", "hidden", "readOnly"]);

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "data") for (const [dk, dv] of Object.entries(v)) { if (dv != null) el.dataset[dk] = dv; }
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (PROPS.has(k)) el[k] = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  appendAll(el, children);
  return el;
}

function appendAll(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c)); // strings become text nodes
  }
}

const $ = (sel, root = document) => root.querySelector(sel);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const textOf = (t) => (t == null ? "" : typeof t === "string" ? t : t.text ?? "");

let uid = 0;
const nextId = (p) => `${p}-${++uid}`;

function hashString(s) {
  let x = 2166136261;
  for (let i = 0; i < s.length; i++) x = Math.imul(x ^ s.charCodeAt(i), 16777619);
  return (x >>> 0).toString(36);
}

// ------------------------------------------------------------------------------------------------ people, locale

const me = () => app.peopleById.get(app.user);
const isEnglish = () => String(me()?.locale ?? "ja").toLowerCase().startsWith("en");
const tr = (ja, en) => (isEnglish() ? en : ja);

function personName(id) {
  if (id && id === app.bot.id) return app.bot.name;
  const p = app.peopleById.get(id);
  if (!p) return null;
  return (isEnglish() && p.name_en) || p.name;
}

function initials(name) {
  const n = String(name || "?").trim();
  if (/^[A-Za-z]/.test(n)) {
    const words = n.split(/\s+/);
    return (words[0][0] + (words[1]?.[0] ?? "")).toUpperCase();
  }
  return [...n][0] ?? "?";
}

const COLORS = ["#e8912d", "#2bac76", "#1d9bd1", "#9f5cc0", "#e01e5a", "#3c8c8c", "#d4713b", "#4a6fd1"];

function avatar(userId, name, cls = "avatar") {
  const isBot = userId && userId === app.bot.id;
  const color = isBot ? "#4a154b" : COLORS[parseInt(hashString(userId || name || "?"), 36) % COLORS.length];
  return h("span", { class: `${cls}${isBot ? " avatar-bot" : ""}`, style: `background:${color}`, "aria-hidden": "true" },
    isBot ? "窓" : initials(name));
}

// ------------------------------------------------------------------------------------------------ mrkdwn

const ENTITIES = { lt: "<", gt: ">", amp: "&" };
const unescapeEntities = (s) => s.replace(/&(lt|gt|amp);/g, (_, e) => ENTITIES[e]);
const STYLE_TAGS = { "*": "strong", _: "em", "~": "s" };
const ALNUM = /[A-Za-z0-9]/;
const SPACE = /\s/;

function mrkdwn(text, cls = "mrkdwn") {
  const root = h("div", { class: cls });
  const parts = String(text ?? "").split("```");
  if (parts.length % 2 === 0) parts[parts.length - 2] += "```" + parts.pop(); // an unclosed fence is text
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      root.append(h("pre", { class: "mrkdwn-pre" }, unescapeEntities(part.replace(/^\n/, "").replace(/\n$/, ""))));
      return;
    }
    let body = part;
    if (i > 0) body = body.replace(/^\n/, "");
    if (i < parts.length - 1) body = body.replace(/\n$/, "");
    if (body === "" && parts.length > 1) return;
    renderLines(body.split("\n"), root);
  });
  return root;
}

function renderLines(lines, root) {
  let quote = null;
  let lastWasText = false;
  for (const line of lines) {
    const m = /^>\s?(.*)$/.exec(line);
    if (m) {
      if (!quote) { quote = h("blockquote", { class: "mrkdwn-quote" }); root.append(quote); }
      else quote.append(h("br"));
      parseInline(m[1], quote);
      lastWasText = false;
    } else {
      quote = null;
      if (lastWasText) root.append(h("br"));
      parseInline(line, root);
      lastWasText = true;
    }
  }
}

function parseInline(s, out) {
  let buf = "";
  const flush = () => { if (buf) { out.append(unescapeEntities(buf)); buf = ""; } };
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === "`") {
      const j = s.indexOf("`", i + 1);
      if (j > i + 1) { flush(); out.append(h("code", { class: "mrkdwn-code" }, unescapeEntities(s.slice(i + 1, j)))); i = j + 1; continue; }
    } else if (c === "<") {
      const j = s.indexOf(">", i + 1);
      if (j > i + 1) { flush(); out.append(angle(s.slice(i + 1, j))); i = j + 1; continue; }
    } else if (STYLE_TAGS[c] && (i === 0 || (!ALNUM.test(s[i - 1]) && s[i - 1] !== c))
               && s[i + 1] && !SPACE.test(s[i + 1]) && s[i + 1] !== c) {
      const j = closingMarker(s, i + 1, c);
      if (j > 0) {
        flush();
        const el = document.createElement(STYLE_TAGS[c]);
        parseInline(s.slice(i + 1, j), el);
        out.append(el);
        i = j + 1;
        continue;
      }
    }
    buf += c;
    i++;
  }
  flush();
}

function closingMarker(s, from, c) {
  for (let j = from; j < s.length; j++) {
    const d = s[j];
    if (d === "`" || d === "<") {
      const k = s.indexOf(d === "`" ? "`" : ">", j + 1);
      if (k > j) { j = k; continue; }
    }
    if (d === c && j > from && !SPACE.test(s[j - 1]) && (j + 1 >= s.length || (!ALNUM.test(s[j + 1]) && s[j + 1] !== c))) return j;
  }
  return -1;
}

function angle(inner) {
  const bar = inner.indexOf("|");
  const target = bar >= 0 ? inner.slice(0, bar) : inner;
  const label = bar >= 0 ? inner.slice(bar + 1) : null;
  if (target.startsWith("@")) {
    const id = target.slice(1);
    const name = personName(id) ?? (label ? unescapeEntities(label).replace(/^@/, "") : id);
    return h("span", { class: `mention${id === app.user ? " mention-me" : ""}`, data: { user: id } }, "@" + name);
  }
  if (target.startsWith("#")) {
    const id = target.slice(1);
    const conv = app.state?.conversations?.find((c) => c.id === id);
    const name = label ? unescapeEntities(label) : (conv?.name ?? id).replace(/^#/, "");
    return h("span", { class: "channel-link" }, "#" + name);
  }
  if (target.startsWith("!")) {
    const cmd = target.slice(1);
    if (/^(here|channel|everyone)/.test(cmd)) return h("span", { class: "mention mention-me" }, "@" + cmd.split("^")[0]);
    if (cmd.startsWith("subteam^")) return h("span", { class: "mention" }, label ? unescapeEntities(label) : "@group");
    return document.createTextNode(unescapeEntities(label ?? cmd));
  }
  const href = unescapeEntities(target);
  const shown = unescapeEntities(label ?? target);
  if (/^(https?:|mailto:)/i.test(href)) return h("a", { href, target: "_blank", rel: "noopener noreferrer" }, shown);
  return document.createTextNode(shown);
}

function renderText(t, cls = "") {
  if (!t) return null;
  if (typeof t === "string") return mrkdwn(t, `mrkdwn ${cls}`);
  if (t.type === "mrkdwn") return mrkdwn(t.text, `mrkdwn ${cls}`);
  return h("div", { class: `plain ${cls}` }, t.text ?? "");
}

// ------------------------------------------------------------------------------------------------ HTTP

async function post(path, body) {
  try {
    const r = await fetch(API + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    let data = null;
    try { data = await r.json(); } catch { /* not JSON */ }
    if (!data) { showNotice(`${path}: HTTP ${r.status}`); return false; }
    if (data.ok === false) { showNotice(data.error || `${path} failed`); return false; }
    return true;
  } catch (e) {
    showNotice(`${tr("通信エラー", "Network error")}: ${e.message}`);
    return false;
  }
}

function showNotice(message) {
  const box = $("#notices");
  const notice = h("div", { class: "notice", role: "alert" },
    h("span", { class: "notice-icon", "aria-hidden": "true" }, "⚠"),
    h("span", { class: "notice-text" }, String(message)),
    h("button", { type: "button", class: "notice-close", "aria-label": "Dismiss / 閉じる", onclick: () => notice.remove() }, "×"));
  box.append(notice);
  while (box.children.length > 4) box.firstElementChild.remove();
}

function setStatus(state) {
  const el = $("#status");
  if (el.dataset.state === state) return;
  el.dataset.state = state;
  const text = { live: "live", reconnecting: "reconnecting… / 再接続中…", connecting: "connecting…" }[state];
  el.textContent = text;
  el.title = text;
}

// ------------------------------------------------------------------------------------------------ boot, who am I

async function loadPeople() {
  for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
    try {
      const r = await fetch(`${API}/people`, { cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const data = await r.json();
      app.people = data.people ?? [];
      app.peopleById = new Map(app.people.map((p) => [p.id, p]));
      app.clock = Boolean(data.clock);
      if (data.bot) app.bot = { id: data.bot.id ?? "", name: data.bot.name || "madoguchi" };
      if (data.command) app.command = data.command;
      app.team = data.team ?? null;
      return;
    } catch {
      setStatus("reconnecting");
      await sleep(delay);
    }
  }
}

function renderWhoSelect() {
  const select = $("#who");
  select.replaceChildren(...app.people.map((p) =>
    h("option", { value: p.id }, p.department ? `${p.name}（${p.department}）` : p.name)));
  select.value = app.user ?? "";
  $("#team-name").textContent = app.team?.name || "Playground";
}

function renderWhoAvatar() {
  const p = me();
  const old = $("#who-avatar");
  const fresh = avatar(app.user, p?.name ?? "?", "avatar avatar-small");
  fresh.id = "who-avatar";
  old.replaceWith(fresh);
}

function initialUser() {
  const ids = new Set(app.people.map((p) => p.id));
  const fromUrl = new URLSearchParams(location.search).get("as");
  if (fromUrl && ids.has(fromUrl)) return fromUrl;
  const stored = localStorage.getItem(STORE_AS);
  if (stored && ids.has(stored)) return stored;
  return app.people[0]?.id ?? null;
}

function setUser(id, { initial = false } = {}) {
  app.user = id;
  localStorage.setItem(STORE_AS, id);
  const url = new URL(location.href);
  url.searchParams.set("as", id);
  history.replaceState(null, "", url);
  document.body.dataset.user = id;
  $("#who").value = id;
  renderWhoAvatar();
  if (!initial) {
    // A different person: a different workspace view. Start from scratch.
    app.state = null;
    app.version = null;
    app.msgCache.clear();
    app.savedValues.clear();
    app.homeKey = null;
    removeModal(false);
    $("#messages").replaceChildren();
    $("#home-view").replaceChildren();
    render(); // keeps the selection: a channel stays selected, a DM falls back to the new person's DM

  }
  if (app.selected === "home") requestHome();
  restartPoll();
}

// The demo's clock (only `madoguchi demo` serves it): "+1 business day" moves it and runs the scheduler's tick.
async function wireClock() {
  const button = $("#next-day");
  const show = (data) => { if (data?.now) $("#demo-time").textContent = `🕙 ${data.now.replace("T", " ").slice(0, 16)}`; };
  try {
    const r = await fetch(`${API}/clock`, { cache: "no-store" });
    if (!r.ok) return;
    show(await r.json());
    button.hidden = false;
  } catch { return; }
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const r = await fetch(`${API}/clock`, { method: "POST" });
      show(await r.json());
    } catch (e) {
      showNotice(`${tr("通信エラー", "Network error")}: ${e.message}`);
    } finally {
      button.disabled = false;
    }
  });
}

async function boot() {
  wireStaticUi();
  await loadPeople();
  if (app.clock) wireClock();
  renderWhoSelect();
  const user = initialUser();
  if (!user) { showNotice("No people in this workspace / ワークスペースに人がいません"); return; }
  setUser(user, { initial: true });
  render();
}

// ------------------------------------------------------------------------------------------------ long poll

function restartPoll() {
  app.pollGen += 1;
  app.pollController?.abort();
  pollLoop(app.pollGen);
}

async function pollLoop(gen) {
  let delay = 500;
  while (gen === app.pollGen) {
    const controller = new AbortController();
    app.pollController = controller;
    const query = new URLSearchParams({ user: app.user });
    if (app.version != null) query.set("after", String(app.version));
    const started = Date.now();
    try {
      const r = await fetch(`${API}/state?${query}`, { signal: controller.signal, cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const s = await r.json();
      if (gen !== app.pollGen) return;
      setStatus("live");
      delay = 500;
      if (s.user && s.user !== app.user) continue;
      const changed = app.state == null || s.version !== app.version;
      app.version = s.version;
      if (changed) { app.state = s; render(); }
      else if (Date.now() - started < 200) await sleep(500); // a server that does not wait: do not spin
    } catch {
      if (gen !== app.pollGen) return;
      setStatus("reconnecting");
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }
}

// ------------------------------------------------------------------------------------------------ render

function conversations() {
  return app.state?.conversations ?? [];
}

function ensureSelection() {
  if (app.selected === "home" || !app.state) return;
  const convs = conversations();
  if (app.selected && convs.some((c) => c.id === app.selected)) return;
  const dm = convs.find((c) => c.kind === "dm") ?? convs[0];
  app.selected = dm ? dm.id : null;
  app.forceScroll = true;
}

function render() {
  ensureSelection();
  renderSidebar();
  renderMain();
  renderModal();
  if (app.state) document.body.dataset.version = String(app.state.version);
}

function seenKey(convId) { return `${STORE_SEEN}${app.user}.${convId}`; }

function lastTs(conv, others = false) {
  let best = "0";
  for (const m of conv.messages ?? []) {
    if (others && m.user === app.user) continue;
    if (parseFloat(m.ts) > parseFloat(best)) best = m.ts;
  }
  return best;
}

function markSeen(conv) {
  localStorage.setItem(seenKey(conv.id), lastTs(conv));
}

function isUnread(conv) {
  const seen = localStorage.getItem(seenKey(conv.id)) ?? "0";
  return parseFloat(lastTs(conv, true)) > parseFloat(seen);
}

function renderSidebar() {
  const home = $('[data-conversation="home"]');
  home.classList.toggle("active", app.selected === "home");
  home.setAttribute("aria-current", app.selected === "home" ? "page" : "false");
  const convs = conversations();
  const item = (c) => {
    const unread = c.id !== app.selected && isUnread(c);
    const icon = c.kind === "dm"
      ? avatar(app.bot.id, c.name, "avatar avatar-tiny")
      : h("span", { class: "nav-icon", "aria-hidden": "true" }, "#");
    const label = c.kind === "dm" ? c.name || app.bot.name : String(c.name || c.id).replace(/^#/, "");
    return h("button", {
      type: "button",
      class: `nav-item${c.id === app.selected ? " active" : ""}${unread ? " unread" : ""}`,
      data: { conversation: c.id },
      "aria-current": c.id === app.selected ? "page" : "false",
      onclick: () => select(c.id),
    }, icon, h("span", { class: "nav-label" }, label),
    unread ? h("span", { class: "unread-dot", title: "unread / 未読" }) : null);
  };
  $("#dm-list").replaceChildren(...convs.filter((c) => c.kind === "dm").map(item));
  $("#channel-list").replaceChildren(...convs.filter((c) => c.kind !== "dm").map(item));
}

function select(id) {
  if (app.selected === id) return;
  app.selected = id;
  app.forceScroll = true;
  if (id === "home") requestHome();
  render();
  if (id !== "home") $("#composer").focus();
}

function requestHome() {
  if (app.user) post("/home", { user: app.user });
}

function renderMain() {
  const isHome = app.selected === "home";
  $("#messages").hidden = isHome;
  $("#home-view").hidden = !isHome;
  $("#composer").hidden = isHome;
  $("#send").hidden = isHome;
  $(".composer-box").hidden = isHome;
  $("#main").dataset.view = isHome ? "home" : "conversation";
  renderHeader();
  if (isHome) renderHome();
  else renderMessages();
}

function renderHeader() {
  const header = $("#conv-header");
  if (app.selected === "home") {
    header.replaceChildren(avatar(app.bot.id, app.bot.name, "avatar avatar-small"),
      h("span", { class: "conv-title" }, app.bot.name), h("span", { class: "app-badge" }, "APP"),
      h("span", { class: "conv-tab active" }, "Home / ホーム"));
    return;
  }
  const conv = conversations().find((c) => c.id === app.selected);
  if (!conv) { header.replaceChildren(h("span", { class: "conv-title muted" }, "…")); return; }
  if (conv.kind === "dm") {
    header.replaceChildren(avatar(app.bot.id, conv.name, "avatar avatar-small"),
      h("span", { class: "conv-title" }, conv.name || app.bot.name), h("span", { class: "app-badge" }, "APP"));
  } else {
    header.replaceChildren(h("span", { class: "conv-title" }, "# " + String(conv.name || conv.id).replace(/^#/, "")));
  }
}

// ---------------------------------------------------------------- messages

function tsDate(ts) {
  const d = new Date(parseFloat(ts) * 1000);
  return Number.isNaN(d.getTime()) ? null : d;
}

function fmtTime(ts) {
  const d = tsDate(ts);
  if (!d) return "";
  const hm = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  return hm;
}

const WEEKDAYS = ["日", "月", "火", "水", "木", "金", "土"];

function dayLabel(d) {
  const today = new Date();
  const same = (a, b) => a.toDateString() === b.toDateString();
  const yesterday = new Date(today.getTime() - 86400000);
  const date = `${d.getFullYear()}年${d.getMonth() + 1}月${d.getDate()}日（${WEEKDAYS[d.getDay()]}）`;
  if (same(d, today)) return `Today / 今日 · ${date}`;
  if (same(d, yesterday)) return `Yesterday / 昨日 · ${date}`;
  return date;
}

function renderMessages() {
  const pane = $("#messages");
  const conv = conversations().find((c) => c.id === app.selected);
  if (!conv) {
    pane.replaceChildren(h("div", { class: "empty-state" }, app.state ? "No conversations / 会話がありません" : "Loading… / 読み込み中…"));
    return;
  }
  const switched = pane.dataset.conversation !== conv.id;
  const nearBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 120;
  pane.dataset.conversation = conv.id;

  const nodes = [conversationIntro(conv)];
  const keep = new Set();
  let prev = null;
  let prevDay = null;
  const used = new Set();
  for (const m of conv.messages ?? []) {
    const d = tsDate(m.ts);
    const day = d ? d.toDateString() : null;
    if (day && day !== prevDay) {
      const key = `day|${conv.id}|${day}`;
      keep.add(key);
      let c = app.msgCache.get(key);
      if (!c) { c = { json: "", node: h("div", { class: "day-divider" }, h("span", null, dayLabel(d))) }; app.msgCache.set(key, c); }
      nodes.push(c.node);
      prev = null;
    }
    prevDay = day ?? prevDay;
    const compact = !!(prev && prev.user === m.user && !prev.ephemeral && !m.ephemeral
      && parseFloat(m.ts) - parseFloat(prev.ts) < 300);
    let key = `${conv.id}|${m.ts}|${m.ephemeral ? "e" : ""}`;
    while (used.has(key)) key += "+";
    used.add(key);
    keep.add(key);
    const json = JSON.stringify(m) + (compact ? "c" : "");
    let c = app.msgCache.get(key);
    if (!c || c.json !== json) { c = { json, node: renderMessage(conv, m, compact) }; app.msgCache.set(key, c); }
    nodes.push(c.node);
    prev = m;
  }
  for (const key of [...app.msgCache.keys()]) {
    if (key.startsWith(`${conv.id}|`) || key.startsWith(`day|${conv.id}|`)) { if (!keep.has(key)) app.msgCache.delete(key); }
  }
  reconcile(pane, nodes);
  if (switched || nearBottom || app.forceScroll) pane.scrollTop = pane.scrollHeight;
  app.forceScroll = false;
  markSeen(conv);
}

function reconcile(parent, nodes) {
  nodes.forEach((node, i) => {
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] ?? null);
  });
  while (parent.children.length > nodes.length) parent.lastElementChild.remove();
}

const introCache = new Map();
function conversationIntro(conv) {
  const key = `${conv.id}|${conv.kind}|${conv.name}|${app.command}`;
  if (introCache.has(key)) return introCache.get(key);
  let node;
  if (conv.kind === "dm") {
    node = h("div", { class: "conv-intro" },
      avatar(app.bot.id, conv.name, "avatar avatar-large"),
      h("div", { class: "conv-intro-title" }, conv.name || app.bot.name),
      h("p", null, "This is the start of your direct messages with ", h("strong", null, conv.name || app.bot.name),
        ". Type ", h("code", { class: "mrkdwn-code" }, app.command), " to file a request."),
      h("p", null, h("strong", null, conv.name || app.bot.name), " とのダイレクトメッセージです。",
        h("code", { class: "mrkdwn-code" }, app.command), " と入力すると申請を始められます。"));
  } else {
    const name = String(conv.name || conv.id).replace(/^#/, "");
    node = h("div", { class: "conv-intro" },
      h("div", { class: "conv-intro-title" }, "# " + name),
      h("p", null, `This is the very beginning of the #${name} channel. / #${name} チャンネルの始まりです。`));
  }
  introCache.set(key, node);
  return node;
}

function renderMessage(conv, m, compact) {
  const name = m.name || personName(m.user) || m.user || "?";
  const isBot = m.user && m.user === app.bot.id;
  const ctx = { source: { kind: "message", channel: conv.id, ts: m.ts }, controls: [], view: false };
  const content = Array.isArray(m.blocks) && m.blocks.length
    ? h("div", { class: "blocks" }, renderBlocks(m.blocks, ctx))
    : mrkdwn(m.text ?? "", "mrkdwn message-text");
  const d = tsDate(m.ts);
  const time = h("time", { class: "message-time", datetime: d ? d.toISOString() : null, title: d ? d.toLocaleString("ja-JP") : m.ts }, fmtTime(m.ts));
  return h("div", {
    class: `message${compact ? " compact" : ""}${m.ephemeral ? " ephemeral" : ""}`,
    data: { ts: m.ts, user: m.user ?? "" },
  },
  h("div", { class: "message-gutter" }, compact ? time : avatar(m.user, name)),
  h("div", { class: "message-body" },
    m.ephemeral ? h("div", { class: "ephemeral-label" }, h("span", { class: "eye", "aria-hidden": "true" }),
      "Only visible to you / あなただけに表示されています") : null,
    compact ? null : h("div", { class: "message-meta" },
      h("span", { class: "sender" }, name), isBot ? h("span", { class: "app-badge" }, "APP") : null, time),
    content,
    m.edited ? h("span", { class: "edited" }, "(edited)") : null));
}

// ---------------------------------------------------------------- App Home

function homeView() {
  const home = app.state?.home;
  if (!home) return null;
  if (home.view && typeof home.view === "object") return { id: home.id ?? home.view.id, view: home.view };
  return { id: home.id ?? home.view_id, view: home };
}

function renderHome() {
  const pane = $("#home-view");
  const home = homeView();
  if (!home) {
    app.homeKey = null;
    pane.replaceChildren(h("div", { class: "empty-state" }, "Loading Home… / ホームを読み込み中…"));
    return;
  }
  const key = `${app.user}|${JSON.stringify(home)}`;
  if (key === app.homeKey) return;
  app.homeKey = key;
  const ctx = { source: { kind: "view", view_id: home.id ?? "home" }, controls: [], view: true };
  app.homeControls = ctx.controls;
  pane.replaceChildren(h("div", { class: "home-inner blocks", data: { viewId: home.id ?? "home" } },
    renderBlocks(home.view.blocks ?? [], ctx)));
}

// ------------------------------------------------------------------------------------------------ Block Kit

function blockIdOf(block, index) {
  return block.block_id || `b${hashString(JSON.stringify(block) + index).slice(0, 5)}`;
}

function actionIdOf(element, index) {
  return element.action_id || `a${hashString(JSON.stringify(element) + index).slice(0, 5)}`;
}

function renderBlocks(blocks, ctx) {
  return blocks.map((b, i) => renderBlock(b, i, ctx));
}

function renderBlock(block, index, ctx) {
  const bid = blockIdOf(block, index);
  const wrap = (cls, ...children) => h("div", { class: `block ${cls}`, data: { block: bid } }, ...children);
  switch (block.type) {
    case "header":
      return wrap("block-header", h("h3", null, textOf(block.text)));
    case "section": {
      const main = h("div", { class: "section-main" },
        renderText(block.text, "section-text"),
        Array.isArray(block.fields) && block.fields.length
          ? h("div", { class: "section-fields" }, block.fields.map((f) => renderText(f, "field")))
          : null);
      const accessory = block.accessory ? h("div", { class: "section-accessory" }, renderElement(block.accessory, bid, 0, ctx, null)) : null;
      return wrap("block-section", main, accessory);
    }
    case "context":
      return wrap("block-context", (block.elements ?? []).map((e) =>
        e.type === "image"
          ? h("img", { class: "context-image", src: e.image_url, alt: e.alt_text ?? "" })
          : renderText(e, "context-item")));
    case "divider":
      return wrap("block-divider", h("hr"));
    case "actions":
      return wrap("block-actions", (block.elements ?? []).map((e, i) => renderElement(e, bid, i, ctx, null)));
    case "input":
      return renderInputBlock(block, bid, ctx);
    case "image":
      return wrap("block-image",
        block.title ? h("div", { class: "image-title" }, textOf(block.title)) : null,
        imageWithFallback(block.image_url, block.alt_text));
    case "rich_text":
      return wrap("block-rich-text", h("div", { class: "plain" }, richTextPlain(block)));
    default:
      return wrap("block-unknown", h("span", { class: "muted" }, `[${block.type} block]`));
  }
}

function richTextPlain(node) {
  if (!node || typeof node !== "object") return "";
  if (typeof node.text === "string") return node.text;
  if (node.type === "user") return "@" + (personName(node.user_id) ?? node.user_id);
  if (node.type === "link") return node.text ?? node.url ?? "";
  return (node.elements ?? []).map(richTextPlain).join(node.type === "rich_text" ? "\n" : "");
}

function imageWithFallback(src, alt) {
  const img = h("img", { class: "block-img", src, alt: alt ?? "", loading: "lazy" });
  img.addEventListener("error", () => img.replaceWith(h("div", { class: "img-fallback" }, "🖼 " + (alt || src || "image"))));
  return img;
}

function renderInputBlock(block, bid, ctx) {
  const element = block.element ?? {};
  const errorEl = h("div", { class: "input-error", data: { errorFor: bid }, role: "alert", hidden: true });
  const control = renderElement(element, bid, 0, ctx, { block, errorEl });
  const labelFor = control.dataset?.controlId;
  return h("div", { class: "block input-block", data: { block: bid } },
    h("label", { class: "input-label", for: labelFor || null },
      textOf(block.label),
      block.optional ? h("span", { class: "optional" }, tr("（任意）", " (optional)")) : null),
    control,
    errorEl,
    block.hint ? h("div", { class: "input-hint" }, textOf(block.hint)) : null);
}

// ---------------------------------------------------------------- elements

function placeholderOf(el, fallbackJa, fallbackEn) {
  return textOf(el.placeholder) || tr(fallbackJa, fallbackEn);
}

function optionLabel(o) {
  return textOf(o.text) + (o.description ? ` — ${textOf(o.description)}` : "");
}

/**
 * One interactive element. `input` is {block, errorEl} when the element is the element of an input block.
 * Each element registers a control {blockId, actionId, type, isInput, optional, read(), write(v), node} in ctx.
 */
function renderElement(el, bid, index, ctx, input) {
  const aid = actionIdOf(el, index);
  const data = { blockId: bid, actionId: aid };
  const controlId = nextId("ctl");
  const control = { blockId: bid, actionId: aid, type: el.type, element: el, isInput: !!input,
    optional: !!input?.block?.optional, node: null, read: () => ({ type: el.type }), write: () => {} };
  const dispatches = !input || !!input.block?.dispatch_action;
  const onChange = () => {
    if (input) clearClientError(bid);
    if (!dispatches) return;
    const { type: _type, ...picked } = control.read();
    sendAction(ctx, bid, el, aid, picked);
  };
  let node;
  switch (el.type) {
    case "button": {
      node = h("button", {
        type: "button",
        class: `btn${el.style === "primary" ? " btn-primary" : el.style === "danger" ? " btn-danger" : ""}`,
        data, title: el.url || null,
      }, textOf(el.text), el.url ? h("span", { class: "btn-ext", "aria-hidden": "true" }, " ↗") : null);
      node.addEventListener("click", async () => {
        if (el.url && !el.confirm) window.open(el.url, "_blank", "noopener");
        node.classList.add("busy");
        node.disabled = true;
        try {
          const confirmed = await sendAction(ctx, bid, el, aid, {}, () => {
            if (el.url && el.confirm) window.open(el.url, "_blank", "noopener");
          });
          if (!confirmed) return;
        } finally {
          node.classList.remove("busy");
          node.disabled = false;
        }
      });
      return node; // buttons have no state
    }
    case "plain_text_input":
    case "url_text_input":
    case "email_text_input": {
      const multiline = el.type === "plain_text_input" && el.multiline;
      node = multiline ? h("textarea", { rows: 4 }) : h("input", {
        type: el.type === "url_text_input" ? "url" : el.type === "email_text_input" ? "email" : "text",
      });
      node.value = el.initial_value ?? "";
      if (el.placeholder) node.placeholder = textOf(el.placeholder);
      if (el.max_length) node.maxLength = el.max_length;
      if (el.min_length) node.minLength = el.min_length;
      control.read = () => ({ type: el.type, value: node.value === "" ? null : node.value });
      control.write = (v) => { node.value = v?.value ?? ""; };
      break;
    }
    case "number_input": {
      node = h("input", { type: "number", inputmode: el.is_decimal_allowed ? "decimal" : "numeric",
        step: el.is_decimal_allowed ? "any" : "1", min: el.min_value ?? null, max: el.max_value ?? null });
      node.value = el.initial_value ?? "";
      if (el.placeholder) node.placeholder = textOf(el.placeholder);
      control.read = () => ({ type: "number_input", value: node.value === "" ? null : node.value });
      control.write = (v) => { node.value = v?.value ?? ""; };
      break;
    }
    case "datepicker": {
      node = h("input", { type: "date" });
      node.value = el.initial_date ?? "";
      control.read = () => ({ type: "datepicker", selected_date: node.value || null });
      control.write = (v) => { node.value = v?.selected_date ?? ""; };
      break;
    }
    case "timepicker": {
      node = h("input", { type: "time" });
      node.value = el.initial_time ?? "";
      control.read = () => ({ type: "timepicker", selected_time: node.value || null });
      control.write = (v) => { node.value = v?.selected_time ?? ""; };
      break;
    }
    case "static_select":
    case "overflow": {
      const options = [];
      const overflow = el.type === "overflow";
      node = h("select", { class: overflow ? "overflow" : "" },
        h("option", { value: "" }, overflow ? "⋯" : placeholderOf(el, "選択してください", "Select an option")));
      const add = (parent, o) => { options.push(o); parent.append(h("option", { value: String(options.length - 1) }, optionLabel(o))); };
      if (Array.isArray(el.option_groups)) {
        for (const g of el.option_groups) {
          const group = h("optgroup", { label: textOf(g.label) });
          (g.options ?? []).forEach((o) => add(group, o));
          node.append(group);
        }
      } else (el.options ?? []).forEach((o) => add(node, o));
      const indexOf = (opt) => (opt ? options.findIndex((o) => o.value === opt.value) : -1);
      const init = indexOf(el.initial_option);
      node.value = init >= 0 ? String(init) : "";
      control.read = () => ({ type: el.type, selected_option: node.value === "" ? null : options[Number(node.value)] });
      control.write = (v) => { const i = indexOf(v?.selected_option); node.value = i >= 0 ? String(i) : ""; };
      if (overflow) {
        const base = onChange;
        node.addEventListener("change", () => { base(); node.value = ""; });
        node.dataset.blockId = bid;
        node.dataset.actionId = aid;
        return node;
      }
      break;
    }
    case "multi_static_select": {
      const options = [];
      node = h("select", { multiple: true, class: "multi" });
      const add = (parent, o) => { options.push(o); parent.append(h("option", { value: String(options.length - 1) }, optionLabel(o))); };
      if (Array.isArray(el.option_groups)) {
        for (const g of el.option_groups) {
          const group = h("optgroup", { label: textOf(g.label) });
          (g.options ?? []).forEach((o) => add(group, o));
          node.append(group);
        }
      } else (el.options ?? []).forEach((o) => add(node, o));
      node.size = Math.min(Math.max(options.length, 2), 6);
      const setSelected = (chosen) => {
        const values = new Set((chosen ?? []).map((o) => o.value));
        [...node.options].forEach((opt) => { opt.selected = values.has(options[Number(opt.value)]?.value); });
      };
      setSelected(el.initial_options);
      control.read = () => ({ type: "multi_static_select",
        selected_options: [...node.selectedOptions].map((opt) => options[Number(opt.value)]) });
      control.write = (v) => setSelected(v?.selected_options);
      break;
    }
    case "users_select":
    case "conversations_select":
    case "channels_select": {
      const users = el.type === "users_select";
      const items = users
        ? app.people.map((p) => [p.id, p.department ? `${p.name}（${p.department}）` : p.name])
        : conversations().filter((c) => el.type === "conversations_select" || c.kind === "channel").map((c) => [c.id, c.name]);
      node = h("select", null, h("option", { value: "" },
        placeholderOf(el, users ? "ユーザーを選択" : "会話を選択", users ? "Select a person" : "Select a conversation")),
      items.map(([id, label]) => h("option", { value: id }, label)));
      const key = { users_select: "user", conversations_select: "conversation", channels_select: "channel" }[el.type];
      node.value = el[`initial_${key}`] ?? "";
      control.read = () => ({ type: el.type, [`selected_${key}`]: node.value || null });
      control.write = (v) => { node.value = v?.[`selected_${key}`] ?? ""; };
      break;
    }
    case "multi_users_select": {
      node = h("select", { multiple: true, class: "multi", size: Math.min(Math.max(app.people.length, 2), 6) },
        app.people.map((p) => h("option", { value: p.id }, p.department ? `${p.name}（${p.department}）` : p.name)));
      const setSelected = (ids) => { const s = new Set(ids ?? []); [...node.options].forEach((o) => { o.selected = s.has(o.value); }); };
      setSelected(el.initial_users);
      control.read = () => ({ type: "multi_users_select", selected_users: [...node.selectedOptions].map((o) => o.value) });
      control.write = (v) => setSelected(v?.selected_users);
      break;
    }
    case "checkboxes":
    case "radio_buttons": {
      const radio = el.type === "radio_buttons";
      const name = nextId("group");
      const options = el.options ?? [];
      const inputs = options.map((o) => h("input", { type: radio ? "radio" : "checkbox", name, value: o.value }));
      node = h("div", { class: `choice-group ${radio ? "radio-group" : "checkbox-group"}`, role: radio ? "radiogroup" : "group" },
        options.map((o, i) => h("label", { class: "choice" }, inputs[i],
          h("span", { class: "choice-text" }, renderText(o.text), o.description ? renderText(o.description, "choice-description") : null))));
      const setChosen = (chosen) => {
        const values = new Set((chosen ?? []).filter(Boolean).map((o) => o.value));
        inputs.forEach((inp) => { inp.checked = values.has(inp.value); });
      };
      setChosen(radio ? [el.initial_option] : el.initial_options);
      control.read = () => {
        const picked = options.filter((o, i) => inputs[i].checked);
        return radio ? { type: "radio_buttons", selected_option: picked[0] ?? null } : { type: "checkboxes", selected_options: picked };
      };
      control.write = (v) => setChosen(radio ? [v?.selected_option] : v?.selected_options);
      break;
    }
    case "image":
      return h("img", { class: "accessory-image", src: el.image_url, alt: el.alt_text ?? "" });
    default:
      node = h("span", { class: "muted" }, `[${el.type}]`);
      control.read = () => ({ type: el.type, value: null });
  }
  node.dataset.blockId = bid;
  node.dataset.actionId = aid;
  node.dataset.controlId = controlId;
  node.id = controlId;
  node.classList.add("element", `element-${el.type}`);
  node.addEventListener("change", onChange);
  if (input) node.addEventListener("input", () => clearClientError(bid));
  control.node = node;
  ctx.controls.push(control);
  return node;
}

function collectValues(controls) {
  const values = {};
  for (const c of controls) {
    if (!c.isInput) continue;
    (values[c.blockId] ??= {})[c.actionId] = c.read();
  }
  return values;
}

/** Sends a block_actions click; asks first when the element has a `confirm`. Resolves false when declined. */
async function sendAction(ctx, blockId, element, actionId, picked, onConfirmed) {
  if (element.confirm) {
    const ok = await confirmDialog(element.confirm);
    if (!ok) return false;
  }
  onConfirmed?.();
  // Slack's block_actions action: the element as it appears in the blocks, without its option lists and
  // initial values, plus block_id, action_ts and the picked value (selected_option, selected_date, ...).
  const shown = Object.fromEntries(Object.entries(element).filter(([k]) =>
    !["options", "option_groups"].includes(k) && !k.startsWith("initial_")));
  const action = { ...shown, action_id: actionId, block_id: blockId, action_ts: (Date.now() / 1000).toFixed(6), ...picked };
  const body = { user: app.user, source: ctx.source, block_id: blockId, action };
  if (ctx.source.kind === "view") body.state = collectValues(ctx.controls);
  await post("/action", body);
  return true;
}

function confirmDialog(confirm) {
  return new Promise((resolve) => {
    app.confirmOpen = true;
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      app.confirmOpen = false;
      document.removeEventListener("keydown", onKey, true);
      overlay.remove();
      resolve(value);
    };
    const onKey = (e) => {
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); finish(false); }
    };
    const okBtn = h("button", { type: "button", class: `btn confirm-ok ${confirm.style === "danger" ? "btn-danger" : "btn-primary"}`,
      onclick: () => finish(true) }, textOf(confirm.confirm) || tr("はい", "Yes"));
    const overlay = h("div", { class: "confirm-overlay" },
      h("div", { class: "confirm-dialog", role: "alertdialog", "aria-modal": "true" },
        h("h3", { class: "confirm-title" }, textOf(confirm.title) || tr("よろしいですか？", "Are you sure?")),
        renderText(confirm.text, "confirm-text"),
        h("div", { class: "confirm-buttons" },
          h("button", { type: "button", class: "btn confirm-cancel", onclick: () => finish(false) },
            textOf(confirm.deny) || tr("キャンセル", "Cancel")),
          okBtn)));
    document.addEventListener("keydown", onKey, true);
    document.body.append(overlay);
    okBtn.focus();
  });
}

// ------------------------------------------------------------------------------------------------ modals

function topModal() {
  const modals = app.state?.modals ?? [];
  return modals.length ? modals[modals.length - 1] : null;
}

function removeModal(save = true) {
  if (!app.modal) return;
  if (save) app.savedValues.set(app.modal.id, collectValues(app.modal.controls));
  app.modal.el.remove();
  app.modal = null;
  document.body.classList.remove("modal-open");
}

function renderModal() {
  const top = topModal();
  const depth = app.state?.modals?.length ?? 0;
  if (!top) {
    if (app.modal) {
      app.savedValues.delete(app.modal.id);
      removeModal(false);
    }
    return;
  }
  const key = JSON.stringify(top.view);
  if (app.modal && app.modal.id === top.id && app.modal.key === key) {
    app.modal.serverErrors = top.errors ?? {};
    showModalErrors();
    return;
  }
  // A new view, or this view updated: carry typed values over to inputs with the same block and action ids
  // (as Slack does), and remember the values of a view that went under a pushed one.
  const carried = app.modal
    ? (app.modal.id === top.id ? collectValues(app.modal.controls) : null)
    : null;
  const openIds = new Set((app.state?.modals ?? []).map((m) => m.id));
  if (app.modal && app.modal.id !== top.id && !openIds.has(app.modal.id)) {
    app.savedValues.delete(app.modal.id);
    removeModal(false);
  } else {
    removeModal(app.modal?.id !== top.id);
  }
  const restore = carried ?? app.savedValues.get(top.id);
  app.savedValues.delete(top.id);
  buildModal(top, key, depth, restore);
}

function buildModal(top, key, depth, restore) {
  const view = top.view ?? {};
  const ctx = { source: { kind: "view", view_id: top.id }, controls: [], view: true };
  const titleId = nextId("modal-title");
  const close = () => post("/close", { user: app.user, view_id: top.id });
  const submitBtn = view.submit
    ? h("button", { type: "button", class: "btn btn-primary modal-submit" }, textOf(view.submit))
    : null;
  const general = h("div", { class: "modal-general-error", role: "alert", hidden: true });
  const el = h("div", { class: "modal-overlay", data: { viewId: top.id } },
    h("div", { class: "modal", role: "dialog", "aria-modal": "true", "aria-labelledby": titleId },
      h("div", { class: "modal-header" },
        depth > 1 ? h("button", { type: "button", class: "modal-back", "aria-label": "Back / 戻る", onclick: close }, "‹") : null,
        h("span", { class: "modal-app-icon avatar-bot", "aria-hidden": "true" }, "窓"),
        h("h2", { class: "modal-title", id: titleId }, textOf(view.title)),
        h("button", { type: "button", class: "modal-x", "aria-label": "Close / 閉じる", onclick: close }, "×")),
      h("div", { class: "modal-body blocks" }, general, renderBlocks(view.blocks ?? [], ctx)),
      h("div", { class: "modal-footer" },
        h("button", { type: "button", class: "btn modal-close", onclick: close }, textOf(view.close) || "Cancel"),
        submitBtn)));
  app.modal = { id: top.id, key, el, controls: ctx.controls, serverErrors: top.errors ?? {}, clientErrors: {}, general };
  if (restore) {
    for (const c of ctx.controls) {
      const v = restore[c.blockId]?.[c.actionId];
      if (v && v.type === c.type) c.write(v);
    }
  }
  if (submitBtn) {
    submitBtn.addEventListener("click", async () => {
      const modal = app.modal;
      if (!modal || modal.id !== top.id) return;
      modal.clientErrors = validate(modal.controls);
      showModalErrors();
      if (Object.keys(modal.clientErrors).length) return;
      submitBtn.disabled = true;
      submitBtn.classList.add("busy");
      try {
        await post("/submit", { user: app.user, view_id: top.id, values: collectValues(modal.controls) });
      } finally {
        submitBtn.disabled = false;
        submitBtn.classList.remove("busy");
      }
    });
  }
  $("#modal-root").append(el);
  document.body.classList.add("modal-open");
  showModalErrors();
  const first = ctx.controls.find((c) => c.isInput)?.node;
  const focusable = first?.matches("input, textarea, select") ? first : first?.querySelector("input");
  (focusable ?? submitBtn)?.focus({ preventScroll: true });
}

function clearClientError(bid) {
  if (app.modal?.clientErrors?.[bid]) {
    delete app.modal.clientErrors[bid];
    showModalErrors();
  }
}

function showModalErrors() {
  const modal = app.modal;
  if (!modal) return;
  const errors = { ...modal.serverErrors, ...modal.clientErrors };
  const known = new Set();
  for (const block of modal.el.querySelectorAll(".input-block")) {
    const bid = block.dataset.block;
    known.add(bid);
    const message = errors[bid];
    const slot = block.querySelector(":scope > .input-error");
    block.classList.toggle("has-error", !!message);
    if (slot) { slot.textContent = message ?? ""; slot.hidden = !message; }
  }
  const orphans = Object.entries(errors).filter(([bid]) => !known.has(bid)).map(([, m]) => m);
  modal.general.textContent = orphans.join("\n");
  modal.general.hidden = orphans.length === 0;
}

/** What Slack's client checks before it sends a view_submission: required fields, number ranges, lengths. */
function validate(controls) {
  const errors = {};
  for (const c of controls) {
    if (!c.isInput || errors[c.blockId]) continue;
    const v = c.read();
    const empty = Object.entries(v).every(([k, x]) => k === "type" || x == null || x === "" || (Array.isArray(x) && !x.length));
    const node = c.node;
    const validity = node?.validity;
    if (c.type === "number_input" && validity?.badInput) errors[c.blockId] = tr("数値を入力してください。", "Please enter a number.");
    else if (empty && !c.optional) errors[c.blockId] = tr("この項目は必須です。", "Please complete this required field.");
    else if (empty) continue;
    else if (c.type === "number_input") {
      const el = c.element;
      const n = Number(v.value);
      if (!el.is_decimal_allowed && !Number.isInteger(n)) errors[c.blockId] = tr("整数を入力してください。", "Please enter a whole number.");
      else if (el.min_value != null && n < Number(el.min_value)) errors[c.blockId] = tr(`${el.min_value} 以上の数値を入力してください。`, `Please enter a number of at least ${el.min_value}.`);
      else if (el.max_value != null && n > Number(el.max_value)) errors[c.blockId] = tr(`${el.max_value} 以下の数値を入力してください。`, `Please enter a number of at most ${el.max_value}.`);
    } else if (c.type === "plain_text_input" && c.element.min_length && v.value.length < c.element.min_length) {
      errors[c.blockId] = tr(`${c.element.min_length} 文字以上入力してください。`, `Please enter at least ${c.element.min_length} characters.`);
    } else if ((c.type === "email_text_input" || c.type === "url_text_input") && validity?.typeMismatch) {
      errors[c.blockId] = c.type === "email_text_input"
        ? tr("メールアドレスの形式が正しくありません。", "Please enter a valid email address.")
        : tr("URL の形式が正しくありません。", "Please enter a valid URL.");
    }
  }
  return errors;
}

// ------------------------------------------------------------------------------------------------ composer

async function sendMessage() {
  const composer = $("#composer");
  const text = composer.value;
  if (!text.trim() || !app.user || !app.selected || app.selected === "home") return;
  composer.value = "";
  autosize();
  app.forceScroll = true;
  const ok = await post("/message", { user: app.user, channel: app.selected, text });
  if (!ok && !composer.value) { composer.value = text; autosize(); }
}

function autosize() {
  const c = $("#composer");
  c.style.height = "auto";
  c.style.height = `${Math.min(c.scrollHeight, 200)}px`;
}

function wireStaticUi() {
  const composer = $("#composer");
  composer.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sendMessage();
    }
  });
  composer.addEventListener("input", autosize);
  $("#send").addEventListener("click", () => { sendMessage(); composer.focus(); });
  $("#shortcut").addEventListener("click", () => {
    if (app.user) post("/shortcut", { user: app.user, callback_id: "new_request" });
  });
  $('[data-conversation="home"]').addEventListener("click", () => select("home"));
  $("#who").addEventListener("change", (e) => { if (e.target.value && e.target.value !== app.user) setUser(e.target.value); });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && app.modal && !app.confirmOpen) {
      e.preventDefault();
      post("/close", { user: app.user, view_id: app.modal.id });
    }
  });
}

boot();
