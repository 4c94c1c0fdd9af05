/*! Banxway web chat widget v2 — no dependencies.
 * <script src="https://banxway.example.com/widget.js?v=2" data-widget-key="wk_..." async></script>
 * The server is the script's own origin; the widget is its data-widget-key. It opens a visitor session
 * (POST /widget/<key>/session, renewed with the previous token kept in localStorage), then speaks
 * graphql-transport-ws on /graphql: visitorMessages (history), subscription visitorEvents (live replies),
 * visitorMessageSend, visitorMessageAck (DELIVERED on arrival, READ once shown in the open panel). Files an agent
 * sends come with their reply: images shown in the page, anything else as a download link (signed for this visitor).
 */
(function () {
  "use strict";
  var script = document.currentScript || document.querySelector("script[data-widget-key]");
  if (!script || window.__banxwayChat) return;
  window.__banxwayChat = true;
  var key = script.getAttribute("data-widget-key") || "";
  var server = new URL(script.src, location.href).origin;
  var storeKey = "banxway-chat:" + key;
  var FIELDS = "id body author status createdAt attachments { id filename contentType size inline url }";
  var EVENTS = "subscription { visitorEvents { type status message { " + FIELDS + " } } }";
  var HISTORY = "query { visitorMessages(first: 100) { nodes { " + FIELDS + " } } }";
  var SEND = "mutation($body: String!) { visitorMessageSend(input: {body: $body}) { message { " + FIELDS +
    " } userErrors { code message } } }";
  var ACK = "mutation($ids: [ID!]!, $read: Boolean!) { visitorMessageAck(input: {messageIds: $ids, read: $read}) " +
    "{ userErrors { message } } }";

  var state = { token: null, config: null, ws: null, ready: false, seq: 0, shown: {}, unread: [], open: false,
    pending: {}, renewTimer: null, retry: 1000, refused: false, links: {}, linkTimer: null, linkAt: 0 };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs) node.setAttribute(name, attrs[name]);
    if (text) node.textContent = text;
    return node;
  }

  // -- the interface ------------------------------------------------------------------------------------------
  var root = el("div", { id: "banxway-chat", "data-state": "starting" });
  root.style.cssText = "position:fixed;right:20px;bottom:20px;z-index:2147483000;font:14px/1.4 sans-serif";
  var button = el("button", { id: "banxway-chat-button", type: "button", "aria-label": "Chat" }, "Chat");
  button.style.cssText = "border:0;border-radius:24px;padding:12px 18px;color:#fff;background:#1f6feb;cursor:pointer";
  var panel = el("div", { id: "banxway-chat-panel", role: "dialog" });
  panel.style.cssText = "display:none;width:320px;height:420px;margin-bottom:10px;background:#fff;border:1px solid #ccc;" +
    "border-radius:8px;flex-direction:column;overflow:hidden;box-shadow:0 4px 16px rgba(0,0,0,.2)";
  var status = el("div", { id: "banxway-chat-status" });
  status.style.cssText = "padding:6px 10px;font-size:12px;color:#666";
  var list = el("div", { id: "banxway-chat-messages" });
  list.style.cssText = "flex:1;overflow-y:auto;padding:10px";
  var prechat = el("div", { id: "banxway-chat-prechat" });
  prechat.style.cssText = "padding:0 10px";
  var form = el("form", { id: "banxway-chat-form" });
  form.style.cssText = "display:flex;border-top:1px solid #eee";
  var input = el("input", { id: "banxway-chat-input", type: "text", placeholder: "Type a message", maxlength: "10000" });
  input.style.cssText = "flex:1;border:0;padding:10px;font:inherit";
  var send = el("button", { id: "banxway-chat-send", type: "submit" }, "Send");
  send.style.cssText = "border:0;padding:0 14px;background:#eee;cursor:pointer";
  form.appendChild(input);
  form.appendChild(send);
  panel.appendChild(status);
  panel.appendChild(list);
  panel.appendChild(prechat);
  panel.appendChild(form);
  root.appendChild(panel);
  root.appendChild(button);

  function setStatus(text, kind) {
    status.textContent = text || "";
    if (kind) root.setAttribute("data-state", kind);
  }

  function bubble(text, mine, id, extraClass, files) {
    var row = el("div", { "class": "banxway-chat-message " + (mine ? "from-visitor" : "from-agent") + (extraClass || "") });
    if (id) row.setAttribute("data-id", id);
    row.style.cssText = "margin:4px 0;display:flex;justify-content:" + (mine ? "flex-end" : "flex-start");
    var inner = el("span", {}, text);
    inner.style.cssText = "max-width:80%;padding:6px 10px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;" +
      (mine ? "color:#fff;background:" + colour() : "background:#f1f1f1");
    (files || []).forEach(function (file) { inner.appendChild(attachment(file)); });
    row.appendChild(inner);
    list.appendChild(row);
    list.scrollTop = list.scrollHeight;
  }

  function size(bytes) {
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  function attachment(file) {
    var url = new URL(file.url, server);
    if (url.origin !== server) return el("span", {}, file.filename); // only files of this chat's server
    var box = el("div", { "class": "banxway-chat-attachment", "data-attachment-id": file.id });
    box.style.cssText = "margin-top:6px;white-space:normal";
    var link = el("a", { href: url.href, target: "_blank", rel: "noopener noreferrer", download: file.filename });
    var shown = { link: link, image: null };
    state.links[file.id] = shown;
    planRefresh(url);
    if (file.inline) {
      var image = el("img", { src: url.href, alt: file.filename, "class": "banxway-chat-image" });
      shown.image = image;
      image.style.cssText = "display:block;max-width:100%;max-height:200px;border-radius:8px";
      image.addEventListener("load", function () { list.scrollTop = list.scrollHeight; });
      link.appendChild(image);
    } else {
      link.setAttribute("class", "banxway-chat-file");
      link.textContent = file.filename + " (" + size(file.size) + ")";
    }
    box.appendChild(link);
    return box;
  }

  function colour() {
    var c = state.config && state.config.colors && state.config.colors.primary;
    return /^#[0-9a-fA-F]{6}$/.test(c || "") ? c : "#1f6feb";
  }

  // A file's link is signed for a while only: new links are asked for (visitorMessages) before the first expires.
  function planRefresh(url) {
    var at = Number(url.searchParams.get("expires") || 0) * 1000 - 30000;
    if (!at || (state.linkTimer && at >= state.linkAt)) return;
    clearTimeout(state.linkTimer);
    state.linkAt = at;
    state.linkTimer = setTimeout(function () {
      state.linkTimer = null;
      request(HISTORY, {}, function (data) { (data.visitorMessages.nodes || []).forEach(show); });
    }, Math.max(at - Date.now(), 5000));
  }

  function relink(message) {
    (message.attachments || []).forEach(function (file) {
      var shown = state.links[file.id];
      var url = new URL(file.url, server);
      if (!shown || url.origin !== server) return;
      shown.link.href = url.href;
      // the image too: once its old link expires, a reload (cache eviction, re-layout) would be refused
      if (shown.image && shown.image.getAttribute("src") !== url.href) shown.image.setAttribute("src", url.href);
      planRefresh(url);
    });
  }

  function show(message) {
    if (message && state.shown[message.id]) relink(message);
    if (!message || state.shown[message.id]) return;
    state.shown[message.id] = true;
    var mine = message.author === "VISITOR";
    bubble(message.body, mine, message.id, "", message.attachments);
    if (!mine && message.status !== "READ") {
      state.unread.push(message.id);
      ack();
    }
  }

  function ack() {
    if (!state.unread.length || !state.ready) return;
    var read = state.open && document.visibilityState !== "hidden";
    var ids = state.unread.slice();
    if (read) state.unread = [];
    request(ACK, { ids: ids, read: read });
  }

  button.addEventListener("click", function () {
    state.open = !state.open;
    panel.style.display = state.open ? "flex" : "none";
    if (state.open) {
      input.focus();
      ack();
    }
  });
  document.addEventListener("visibilitychange", ack);

  // -- the session ----------------------------------------------------------------------------------------------
  function stored() {
    try { return JSON.parse(localStorage.getItem(storeKey) || "{}"); } catch (e) { return {}; }
  }

  function remember(values) {
    try { localStorage.setItem(storeKey, JSON.stringify(values)); } catch (e) { /* private mode */ }
  }

  function openSession(extra, done) {
    var body = { token: state.token || stored().token || undefined };
    for (var name in extra || {}) body[name] = extra[name];
    var xhr = new XMLHttpRequest();
    xhr.open("POST", server + "/widget/" + encodeURIComponent(key) + "/session");
    xhr.setRequestHeader("Content-Type", "text/plain"); // a simple request: no CORS preflight
    xhr.onload = function () {
      var answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status !== 200) {
        state.refused = xhr.status === 403 || xhr.status === 404;
        setStatus("Chat unavailable: " + (answer.error || "error " + xhr.status), "refused");
        return;
      }
      state.token = answer.token;
      state.config = answer.widget;
      remember({ token: answer.token, visitorId: answer.visitorId });
      clearTimeout(state.renewTimer);
      state.renewTimer = setTimeout(function () { openSession({}, reconnect); }, answer.expiresIn * 800);
      if (done) done();
    };
    xhr.onerror = function () {
      setStatus("Chat unavailable: cannot reach the server", "refused");
    };
    xhr.send(JSON.stringify(body));
  }

  function configure() {
    var config = state.config || {};
    button.style.background = colour();
    if (config.greeting && !list.querySelector(".greeting")) bubble(config.greeting, false, null, " greeting");
    if (config.businessHoursMessage) setStatus(config.businessHoursMessage);
    prechat.innerHTML = "";
    var fields = config.preChatFields || {};
    ["name", "email"].forEach(function (field) {
      if (!fields[field] || fields[field] === "OFF" || stored()[field]) return;
      var box = el("input", { id: "banxway-chat-" + field, type: field === "email" ? "email" : "text",
        placeholder: (field === "email" ? "Email" : "Name") + (fields[field] === "REQUIRED" ? " (required)" : " (optional)") });
      box.style.cssText = "width:100%;box-sizing:border-box;margin:2px 0;padding:6px";
      box.setAttribute("data-required", fields[field] === "REQUIRED" ? "1" : "0");
      prechat.appendChild(box);
    });
  }

  // -- the WebSocket (graphql-transport-ws) ------------------------------------------------------------------
  function connect() {
    var ws = new WebSocket(server.replace(/^http/, "ws") + "/graphql?widget=" + encodeURIComponent(key),
      "graphql-transport-ws");
    state.ws = ws;
    ws.onopen = function () {
      ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: "Bearer " + state.token } }));
    };
    ws.onmessage = function (frame) {
      var message = JSON.parse(frame.data);
      if (message.type === "ping") return ws.send(JSON.stringify({ type: "pong" }));
      if (message.type === "connection_ack") {
        state.ready = true;
        state.retry = 1000;
        root.setAttribute("data-state", "ready");
        subscribe("events", EVENTS, {});
        request(HISTORY, {}, function (data) {
          (data.visitorMessages.nodes || []).forEach(show);
        });
        return;
      }
      var handler = state.pending[message.id];
      if (message.type === "next" && message.id === "events") {
        var event = message.payload.data && message.payload.data.visitorEvents;
        if (event && event.type === "MESSAGE") show(event.message);
      } else if (message.type === "next" && handler) {
        if (message.payload.errors) setStatus(message.payload.errors[0].message);
        else handler(message.payload.data);
      } else if (message.type === "error") {
        setStatus((message.payload && message.payload[0] && message.payload[0].message) || "error");
      }
      if (message.type === "complete" || message.type === "error") delete state.pending[message.id];
    };
    ws.onclose = function () {
      state.ready = false;
      if (state.ws !== ws || state.refused) return;
      setTimeout(function () { openSession({}, reconnect); }, state.retry);
      state.retry = Math.min(state.retry * 2, 30000);
    };
  }

  function reconnect() {
    var old = state.ws;
    state.ws = null;
    if (old) try { old.close(); } catch (e) { /* already closed */ }
    connect();
  }

  function subscribe(id, query, variables) {
    state.ws.send(JSON.stringify({ id: id, type: "subscribe", payload: { query: query, variables: variables } }));
  }

  function request(query, variables, handler) {
    if (!state.ready) return;
    var id = "op" + ++state.seq;
    state.pending[id] = handler || function () {};
    subscribe(id, query, variables);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || !state.ready) return;
    var extra = {};
    var missing = false;
    Array.prototype.forEach.call(prechat.querySelectorAll("input"), function (box) {
      var field = box.id.replace("banxway-chat-", "");
      if (box.value.trim()) extra[field] = box.value.trim();
      else if (box.getAttribute("data-required") === "1") missing = true;
    });
    if (missing) return setStatus("Please fill in the required fields.");
    var go = function () {
      input.value = "";
      request(SEND, { body: text }, function (data) {
        var payload = data.visitorMessageSend;
        if (payload.userErrors.length) setStatus(payload.userErrors[0].message);
        else show(payload.message);
      });
    };
    if (Object.keys(extra).length) {
      openSession(extra, function () {
        remember(Object.assign(stored(), extra));
        prechat.innerHTML = "";
        go();
      });
    } else go();
  });

  function start() {
    document.body.appendChild(root);
    openSession({}, function () {
      configure();
      connect();
    });
  }
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
