// The support widget's chat, inside Docent's iframe: the visitor's session, the /ws/widget/KEY/ socket (the
// protocol client is static/docent/chat_client.js, shared with the chat page), answers with their sources, the
// conversation kept across page loads (this iframe's localStorage), and "Talk to a person". Model text goes
// through DocentRender (never HTML); everything else is textContent. Its own words come from the frame
// language's JavaScript catalogue (/jsi18n/LANG/: gettext, ngettext, interpolate).
import { addAnswer, createChatClient, el } from "../docent/chat_client.js";

const config = JSON.parse(document.getElementById("docent-widget-config").textContent);
const root = document.querySelector("[data-docent-widget]");
const part = (name) => root.querySelector("[data-docent-" + name + "]"); // the element marked data-docent-NAME
const messagesEl = part("messages");
const form = part("ask");
const input = part("input");
const sendButton = form.querySelector("button[type=submit]");
const statusEl = part("status");
const suggestionsEl = part("suggestions");
const handoff = part("handoff");
const handoffStatus = part("handoff-status");
const handoffText = root.querySelector(".handoff-text").textContent;
const store = storage("docent:" + config.key + ":");
const RENEW_EVERY_MS = 30 * 60 * 1000; // sessions open sockets for an hour

let session = config.session;
let unavailable = false;

document.documentElement.style.setProperty("--accent", config.colour);

const client = createChatClient({
  messages: messagesEl,
  conversation: Number(store.get("conversation")) || null,
  url: () => {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const query = "?s=" + encodeURIComponent(session) + "&lang=" + encodeURIComponent(config.language || "");
    return scheme + window.location.host + config.wsPath + query;
  },
  retryMs: 1000,
  maxRetryMs: 30000,
  // A refused handshake looks like any failed connection: renew the session first (false: Docent refuses).
  beforeReconnect: async () => {
    if (await renewSession()) return true;
    markUnavailable();
    return false;
  },
  newAnswer: () => {
    const answer = addAnswer(messagesEl);
    answer.item.setAttribute("data-docent-answer", "");
    return answer;
  },
  // The cited sources, or all of them when the answer cites none: a visitor wants where it came from.
  sourceOptions: { onlyCited: true },
  setStatus: setStatus,
  setBusy: setBusy,
  queuedText: (position) =>
    interpolate(
      ngettext(
        "Waiting for a free moment… (%(count)s question ahead)",
        "Waiting for a free moment… (%(count)s questions ahead)",
        position,
      ),
      { count: position },
      true,
    ),
  onLost: (answer) => {
    if (answer) failAnswer(answer, "connection_lost", gettext("The connection was lost; please ask again."));
  },
  onDone: (answer, event) => {
    store.set("conversation", String(event.conversation));
    if (answer) finishAnswer(answer, event.citations, event);
    client.scrollDown();
  },
  onError: (answer, event) => {
    if (answer) failAnswer(answer, event.code, event.message);
    client.scrollDown();
  },
});

// The visitor credential and conversation id, kept across page loads. This iframe's localStorage is
// used where the browser grants it; many deny storage to third-party frames, so the loader also keeps
// them in the host page's storage: it hands them over in the URL fragment (never sent to a server) and
// is told of each change, by postMessage to the embedding origin only.
function storage(prefix) {
  let area = null;
  try {
    area = window.localStorage;
    area.getItem(prefix);
  } catch (error) {
    area = null;
  }
  let state = {};
  try {
    const parsed = JSON.parse(decodeURIComponent(window.location.hash.slice(1)) || "{}");
    if (parsed && typeof parsed === "object") state = parsed;
  } catch (error) {
    state = {};
  }
  if (window.location.hash) window.history.replaceState(null, "", window.location.pathname);
  function publish() {
    if (config.embedOrigin && window.parent !== window) {
      window.parent.postMessage({ docent: "state", key: config.key, state: state }, config.embedOrigin);
    }
  }
  return {
    get: (name) => {
      const own = area ? area.getItem(prefix + name) : null;
      return own !== null ? own : typeof state[name] === "string" ? state[name] : null;
    },
    set: (name, value) => {
      state[name] = value;
      try {
        if (area) area.setItem(prefix + name, value);
      } catch (error) {
        area = null;
      }
      publish();
    },
    remove: (name) => {
      delete state[name];
      if (area) area.removeItem(prefix + name);
      publish();
    },
  };
}

function setStatus(text) {
  statusEl.textContent = text;
}

function setBusy(busy) {
  sendButton.disabled = busy || unavailable;
}

function hideSuggestions() {
  if (suggestionsEl) suggestionsEl.hidden = true;
}

// ---- session --------------------------------------------------------------------------------------

// A returning visitor trades their stored credential for a session of their own; a new one keeps the
// session the page came with. Resolves false when Docent refuses (key disabled, origin removed).
async function renewSession() {
  const response = await fetch(config.sessionUrl, {
    method: "POST",
    credentials: "omit",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ visitor: store.get("visitor"), session: session }),
  });
  if (response.status === 403 || response.status === 404) return false;
  if (!response.ok) throw new Error("session renewal failed: " + response.status);
  const data = await response.json();
  session = data.session;
  store.set("visitor", data.visitor);
  return true;
}

function markUnavailable() {
  unavailable = true;
  setStatus(gettext("This chat is not available right now."));
  input.disabled = true;
  setBusy(false);
}

// ---- messages -------------------------------------------------------------------------------------

function finishAnswer(answer, citations, flags) {
  client.finish(answer, citations);
  if (flags.answered === false) {
    // The knowledge base had nothing: offer a person straight away.
    const offer = el("div", "handoff-offer");
    offer.appendChild(el("p", null, handoffText));
    const button = el("button", "link", gettext("Talk to a person"));
    button.type = "button";
    button.addEventListener("click", openHandoff);
    offer.appendChild(button);
    answer.item.appendChild(offer);
  }
  answer.item.setAttribute("data-done", "true");
}

function failAnswer(answer, code, message) {
  answer.text.textContent = message;
  answer.item.classList.add("error");
  answer.item.setAttribute("data-docent-error", code);
  answer.item.setAttribute("data-done", "true");
}

async function loadHistory() {
  const conversation = client.conversation;
  if (!conversation) return;
  const url = config.historyUrl + conversation + "/?s=" + encodeURIComponent(session);
  const response = await fetch(url, { credentials: "omit" });
  if (response.status === 404) {
    client.conversation = null;
    store.remove("conversation");
    return;
  }
  if (!response.ok) return;
  const data = await response.json();
  client.replay(data.messages, (answer, message) => finishAnswer(answer, message.citations, message));
  if (data.messages.length) hideSuggestions();
  client.scrollDown();
}

function ask(question) {
  question = question.trim();
  if (!question || client.busy || unavailable) return;
  hideSuggestions();
  client.ask(question);
  input.value = "";
}

// ---- "talk to a person" ---------------------------------------------------------------------------

function openHandoff() {
  handoff.hidden = false;
  handoffStatus.textContent = "";
  handoff.elements.email.focus();
}

async function postTicket(body) {
  return fetch(config.ticketUrl, {
    method: "POST",
    credentials: "omit",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(Object.assign({ session: session }, body)),
  });
}

handoff.addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = {
    email: handoff.elements.email.value.trim(),
    message: handoff.elements.message.value.trim(),
    conversation: client.conversation,
  };
  handoffStatus.textContent = gettext("Sending…");
  try {
    let response = await postTicket(body);
    if (response.status === 403 && (await renewSession())) response = await postTicket(body);
    if (response.status === 201) {
      handoffStatus.textContent = interpolate(
        gettext("Thank you! We will reply to %(email)s."), { email: body.email }, true,
      );
      handoff.elements.message.value = "";
    } else if (response.status === 429) {
      handoffStatus.textContent = gettext("You have sent several messages already; please try again later.");
    } else if (response.status === 400) {
      handoffStatus.textContent = gettext("Please check your email address and message.");
    } else {
      handoffStatus.textContent = gettext("Sorry, the message could not be sent.");
    }
  } catch (error) {
    handoffStatus.textContent = gettext("Sorry, the message could not be sent.");
  }
});

// ---- wiring ---------------------------------------------------------------------------------------

form.addEventListener("submit", (e) => {
  e.preventDefault();
  ask(input.value);
});
for (const button of root.querySelectorAll("[data-docent-suggestion]")) {
  button.addEventListener("click", () => ask(button.textContent));
}
part("handoff-open").addEventListener("click", openHandoff);
part("handoff-cancel").addEventListener("click", () => {
  handoff.hidden = true;
});
part("new").addEventListener("click", () => {
  if (client.busy) return;
  client.conversation = null;
  store.remove("conversation");
  for (const node of Array.from(messagesEl.children)) {
    if (!node.hasAttribute("data-docent-greeting")) node.remove();
  }
  if (suggestionsEl) suggestionsEl.hidden = false;
  input.focus();
});
part("close").addEventListener("click", () => {
  window.parent.postMessage({ docent: "close", key: config.key }, config.embedOrigin || "*");
});

async function start() {
  input.disabled = false;
  setBusy(false);
  const stored = store.get("visitor");
  if (stored && stored !== config.visitor) {
    try {
      if (!(await renewSession())) {
        markUnavailable();
        return;
      }
    } catch (error) {
      // Docent did not answer: this page's own (new) session still works.
    }
  } else {
    store.set("visitor", config.visitor);
  }
  try {
    await loadHistory();
  } catch (error) {
    console.error(error);
  }
  client.connect();
  setInterval(() => renewSession().catch(() => {}), RENEW_EVERY_MS);
}

start();
