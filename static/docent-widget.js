/*
 * Docent support widget loader. Paste on your site:
 *   <script src="https://DOCENT/static/docent-widget.js" data-key="KEY" async></script>
 * Add data-lang="fr" (or "en", "zh-Hans") to fix the widget's language; without it, the visitor's browser decides.
 * It adds one container at the end of <body> holding a <button data-docent-bubble> and, once opened,
 * an <iframe data-docent-frame> served by Docent. It reads nothing of the page, defines no globals and
 * touches nothing outside its container, except one localStorage entry, "docent-widget:KEY": browsers
 * that deny storage to third-party iframes would otherwise forget the visitor's conversation. On a site the key does not allow, Docent's configuration is
 * unreadable here (CORS) and nothing is added at all.
 */
(function () {
  "use strict";
  var script =
    document.currentScript || document.querySelector('script[data-key][src*="docent-widget.js"]');
  var key = script && script.getAttribute("data-key");
  if (!key) return;
  var base = new URL(script.src, window.location.href).origin;
  var root = base + "/widget/" + encodeURIComponent(key) + "/";
  var lang = script.getAttribute("data-lang") || "";
  var tag = key.replace(/[^\w-]/g, ""); // keys are url-safe; this keeps the selector below well-formed
  if (document.querySelector('[data-docent-widget="' + tag + '"]')) return; // the snippet pasted twice

  var STORE = "docent-widget:" + tag;

  function loadState() {
    try {
      return window.localStorage.getItem(STORE) || "";
    } catch (error) {
      return "";
    }
  }

  // Only the two strings the chat keeps: a signed visitor credential and a conversation number.
  function saveState(state) {
    if (!state || typeof state !== "object") return;
    var kept = {};
    if (typeof state.visitor === "string" && state.visitor.length < 1000) kept.visitor = state.visitor;
    if (typeof state.conversation === "string" && /^\d{1,18}$/.test(state.conversation)) {
      kept.conversation = state.conversation;
    }
    try {
      window.localStorage.setItem(STORE, JSON.stringify(kept));
    } catch (error) {
      /* storage refused: the conversation is forgotten on the next page load */
    }
  }

  var ICON =
    "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z";

  function style(node, rules) {
    for (var name in rules) node.style.setProperty(name, rules[name], "important");
  }

  function mount(config) {
    var side = config.position === "left" ? "left" : "right";
    var colour = /^#[0-9a-fA-F]{6}$/.test(config.colour) ? config.colour : "#2563eb";
    var container = document.createElement("div");
    container.setAttribute("data-docent-widget", tag);
    style(container, { position: "fixed", bottom: "20px", "z-index": "2147483000", margin: "0", padding: "0" });
    container.style.setProperty(side, "20px", "important");

    var bubble = document.createElement("button");
    bubble.type = "button";
    bubble.setAttribute("data-docent-bubble", "");
    bubble.setAttribute("aria-label", config.title || "Chat");
    bubble.setAttribute("aria-expanded", "false");
    bubble.title = config.title || "Chat";
    style(bubble, {
      width: "56px",
      height: "56px",
      "border-radius": "50%",
      border: "0",
      margin: "0",
      padding: "0",
      cursor: "pointer",
      background: colour,
      "box-shadow": "0 4px 14px rgba(0,0,0,.25)",
      display: "flex",
      "align-items": "center",
      "justify-content": "center",
    });
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "26");
    svg.setAttribute("height", "26");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", ICON);
    path.setAttribute("fill", "#fff");
    svg.appendChild(path);
    bubble.appendChild(svg);
    container.appendChild(bubble);

    var frame = null;
    function open() {
      if (!frame) {
        frame = document.createElement("iframe");
        frame.setAttribute("data-docent-frame", "");
        frame.title = config.title || "Chat";
        // The page's origin, never its path: Docent checks it against the key's origins.
        frame.referrerPolicy = "origin";
        // No top navigation and nothing beyond what the chat needs; passages open in new tabs.
        frame.setAttribute(
          "sandbox",
          "allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox",
        );
        var state = loadState();
        frame.src =
          base + (config.frame || "/widget/" + encodeURIComponent(key) + "/") + (state ? "#" + encodeURIComponent(state) : "");
        style(frame, {
          position: "absolute",
          bottom: "70px",
          width: "370px",
          height: "560px",
          "max-width": "calc(100vw - 40px)",
          "max-height": "calc(100vh - 110px)",
          border: "0",
          "border-radius": "12px",
          "box-shadow": "0 8px 30px rgba(0,0,0,.25)",
          background: "#fff",
        });
        frame.style.setProperty(side, "0", "important");
        container.appendChild(frame);
      }
      frame.style.setProperty("display", "block", "important");
      bubble.setAttribute("aria-expanded", "true");
    }
    function close() {
      if (!frame) return;
      frame.style.setProperty("display", "none", "important");
      bubble.setAttribute("aria-expanded", "false");
    }
    bubble.addEventListener("click", function () {
      if (bubble.getAttribute("aria-expanded") === "true") close();
      else open();
    });
    window.addEventListener("message", function (event) {
      if (!frame || event.origin !== base || event.source !== frame.contentWindow) return;
      if (!event.data) return;
      if (event.data.docent === "close") close();
      if (event.data.docent === "state") saveState(event.data.state);
    });
    document.body.appendChild(container);
  }

  function start() {
    // Docent answers with the title and the frame's address in the language it chose (data-lang, else the browser's).
    fetch(root + "config/" + (lang ? "?lang=" + encodeURIComponent(lang) : ""), { mode: "cors", credentials: "omit" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (config) {
        if (config) mount(config);
      })
      .catch(function () {
        /* not allowed here, or Docent unreachable: add nothing */
      });
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
