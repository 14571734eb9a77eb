// The chat page: its conversation over /ws/chat/ (the protocol client is static/docent/chat_client.js, shared
// with the support widget), the knowledge-base choice, the address of the conversation, feedback and
// "regenerate". All model and document text is inserted with textContent, never as HTML. Its own words come
// from the page language's JavaScript catalogue (/jsi18n/LANG/: gettext, ngettext, interpolate).
import { addAnswer, createChatClient, el } from "./chat_client.js";

function main() {
  const root = document.getElementById("chat");
  if (!root) return;
  const numbers = new Intl.NumberFormat(document.documentElement.lang || undefined, { maximumFractionDigits: 1 });
  const messagesEl = document.getElementById("messages");
  const form = document.getElementById("ask");
  const input = document.getElementById("question");
  const kbSelect = document.getElementById("kb");
  const stopButton = document.getElementById("stop");
  const sendButton = document.getElementById("send");
  const statusEl = document.getElementById("status");

  const client = createChatClient({
    messages: messagesEl,
    conversation: root.dataset.conversation ? Number(root.dataset.conversation) : null,
    url: () => {
      const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      return scheme + window.location.host + root.dataset.wsPath;
    },
    retryMs: 1500,
    maxRetryMs: 1500,
    newAnswer: () => addAnswer(messagesEl, { meta: el("div", "meta muted small") }),
    sourceOptions: { markCited: true, snippets: true, headingClass: "muted small" },
    setStatus: (text) => {
      statusEl.textContent = text;
    },
    setBusy: (busy) => {
      sendButton.disabled = busy;
      stopButton.hidden = !busy;
    },
    queuedText: (position) =>
      interpolate(gettext("Waiting for the model: position %(position)s in the queue"), { position: position }, true),
    onLost: (answer) => {
      statusEl.textContent = gettext("Disconnected; reconnecting…");
      if (answer) answer.meta.textContent = gettext("Connection lost.");
    },
    onDone: (answer, event) => {
      const conversation = event.conversation;
      root.dataset.conversation = String(conversation);
      if (kbSelect) kbSelect.disabled = true;
      if (window.history && window.location.pathname === "/") {
        window.history.replaceState(null, "", "/c/" + conversation + "/");
      }
      if (answer) {
        finishAnswer(answer, event.citations, event.timings, event);
        addActions(answer, event.message_id, 0);
      }
    },
    onError: (answer, event) => {
      if (!answer) return;
      answer.meta.textContent = interpolate(gettext("Error: %(message)s"), { message: event.message }, true);
      answer.item.dataset.done = "true";
    },
  });

  function csrfToken() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // Thumbs up/down with an optional comment, and "regenerate" (the same question asked again).
  function addActions(answer, messageId, feedback) {
    const bar = el("div", "actions small");
    const status = el("span", "muted");
    const rate = (rating) => {
      const comment = rating < 0 ? window.prompt(gettext("What was wrong with this answer? (optional)")) || "" : "";
      const body = new URLSearchParams({ rating: String(rating), comment: comment });
      fetch("/messages/" + messageId + "/feedback/", {
        method: "POST", body: body, headers: { "X-CSRFToken": csrfToken() }, credentials: "same-origin",
      }).then((r) => {
        status.textContent = r.ok ? gettext("Thanks for the feedback.") : gettext("The feedback was not saved.");
      });
      up.classList.toggle("chosen", rating > 0);
      down.classList.toggle("chosen", rating < 0);
    };
    const up = el("button", "link" + (feedback > 0 ? " chosen" : ""), "👍");
    up.type = "button";
    up.title = gettext("Helpful");
    up.addEventListener("click", () => rate(1));
    const down = el("button", "link" + (feedback < 0 ? " chosen" : ""), "👎");
    down.type = "button";
    down.title = gettext("Not helpful");
    down.addEventListener("click", () => rate(-1));
    bar.append(up, down);
    if (answer.question) {
      const again = el("button", "link", gettext("Regenerate"));
      again.type = "button";
      again.addEventListener("click", () => ask(answer.question));
      bar.append(again);
    }
    bar.append(status);
    answer.item.appendChild(bar);
  }

  function finishAnswer(answer, citations, timings, flags) {
    // A cited source's link opens the viewer with the quoted span highlighted.
    const urls = flags.citation_urls || {};
    answer.items = answer.items.map((s) => (urls[s.n] ? Object.assign({}, s, { url: urls[s.n] }) : s));
    client.finish(answer, citations);
    answer.text.classList.add("rendered");
    const parts = [];
    if (flags.stopped) parts.push(gettext("stopped"));
    if (flags.answered === false) parts.push(gettext("not found in the knowledge base"));
    if (timings && timings.ttft_ms !== undefined) {
      const ms = numbers.format(Math.round(timings.ttft_ms));
      parts.push(interpolate(gettext("first token %(ms)s ms"), { ms: ms }, true));
      if (timings.tokens_per_s) {
        const rate = numbers.format(timings.tokens_per_s);
        parts.push(interpolate(gettext("%(rate)s tokens/s"), { rate: rate }, true));
      }
    }
    answer.meta.textContent = parts.join(" · ");
    answer.item.dataset.done = "true";
  }

  function ask(question) {
    if (!question || client.busy || !kbSelect || !kbSelect.value) return;
    client.ask(question, { kb: kbSelect.value });
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const question = input.value.trim();
    if (!question || client.busy) return;
    ask(question);
    input.value = "";
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  stopButton.addEventListener("click", () => client.stop());

  client.replay(JSON.parse(document.getElementById("history").textContent || "[]"), (answer, message) => {
    finishAnswer(answer, message.citations, message.timings, message);
    addActions(answer, message.id, message.feedback || 0);
  });
  client.scrollDown();
  client.connect();
}

main();
