// The chat page's socket: sends `ask`/`stop` frames and renders the streamed events.
// All model and document text is inserted with textContent, never as HTML. Its own words come from the
// page language's JavaScript catalogue (/jsi18n/LANG/: gettext, ngettext, interpolate).
(function () {
  "use strict";
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
  let conversation = root.dataset.conversation ? Number(root.dataset.conversation) : null;
  let socket = null;
  let current = null; // the answer being streamed
  let pending = []; // frames to send once the socket opens

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderSources(container, sources, cited) {
    window.DocentRender.renderSources(container, sources, {
      cited: cited,
      markCited: true,
      snippets: true,
      headingClass: "muted small",
    });
  }

  function addUserMessage(text) {
    const item = el("div", "message user");
    item.appendChild(el("div", "text", text));
    messagesEl.appendChild(item);
  }

  function addAnswer() {
    const item = el("div", "message assistant");
    const text = el("div", "text");
    const meta = el("div", "meta muted small");
    const sources = el("div", "source-list");
    item.append(text, sources, meta);
    messagesEl.appendChild(item);
    return { item, text, meta, sources, raw: "", items: [] };
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // Thumbs up/down with an optional comment, and "regenerate" (the same question asked again).
  function addActions(answer, messageId, feedback, question) {
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
    if (question) {
      const again = el("button", "link", gettext("Regenerate"));
      again.type = "button";
      again.addEventListener("click", () => ask(question));
      bar.append(again);
    }
    bar.append(status);
    answer.item.appendChild(bar);
  }

  function finishAnswer(answer, citations, timings, flags) {
    // A cited source's link opens the viewer with the quoted span highlighted.
    const urls = flags.citation_urls || {};
    answer.items = answer.items.map((s) => (urls[s.n] ? Object.assign({}, s, { url: urls[s.n] }) : s));
    window.DocentRender.renderAnswer(answer.text, answer.raw, answer.items);
    answer.text.classList.add("rendered");
    renderSources(answer.sources, answer.items, citations);
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

  function scrollDown() {
    messagesEl.scrollTop = messagesEl.scrollHeight;
  }

  function setBusy(busy) {
    sendButton.disabled = busy;
    stopButton.hidden = !busy;
  }

  function handle(event) {
    switch (event.type) {
      case "queued":
        statusEl.textContent = interpolate(
          gettext("Waiting for the model: position %(position)s in the queue"), { position: event.position }, true,
        );
        break;
      case "sources":
        statusEl.textContent = "";
        if (current) {
          current.items = event.items;
          renderSources(current.sources, event.items, []);
        }
        break;
      case "token":
        if (current) {
          current.raw += event.text;
          current.text.textContent = current.raw;
          scrollDown();
        }
        break;
      case "done":
        conversation = event.conversation;
        root.dataset.conversation = String(conversation);
        if (kbSelect) kbSelect.disabled = true;
        if (window.history && window.location.pathname === "/") {
          window.history.replaceState(null, "", "/c/" + conversation + "/");
        }
        if (current) {
          finishAnswer(current, event.citations, event.timings, event);
          addActions(current, event.message_id, 0, current.question);
        }
        current = null;
        setBusy(false);
        break;
      case "error":
        statusEl.textContent = "";
        if (current) {
          current.meta.textContent = interpolate(gettext("Error: %(message)s"), { message: event.message }, true);
          current.item.dataset.done = "true";
          current = null;
        } else {
          messagesEl.appendChild(el("div", "message error", event.message));
        }
        setBusy(false);
        break;
    }
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + root.dataset.wsPath);
    socket.onopen = () => {
      statusEl.textContent = "";
      for (const frame of pending.splice(0)) socket.send(frame);
    };
    socket.onmessage = (message) => {
      try {
        handle(JSON.parse(message.data));
      } catch (error) {
        console.error(error);
      }
    };
    socket.onclose = () => {
      statusEl.textContent = gettext("Disconnected; reconnecting…");
      if (current) {
        current.meta.textContent = gettext("Connection lost.");
        current = null;
        setBusy(false);
      }
      setTimeout(connect, 1500);
    };
  }

  function send(frame) {
    const data = JSON.stringify(frame);
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(data);
    else pending.push(data);
  }

  function ask(question) {
    if (!question || current || !kbSelect || !kbSelect.value) return;
    addUserMessage(question);
    current = addAnswer();
    current.question = question;
    setBusy(true);
    send({ type: "ask", question: question, kb: kbSelect.value, conversation: conversation });
    scrollDown();
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const question = input.value.trim();
    if (!question || current) return;
    ask(question);
    input.value = "";
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  stopButton.addEventListener("click", () => send({ type: "stop" }));

  const history = JSON.parse(document.getElementById("history").textContent || "[]");
  let lastQuestion = null;
  for (const m of history) {
    if (m.role === "user") {
      addUserMessage(m.text);
      lastQuestion = m.text;
    } else {
      const answer = addAnswer();
      answer.raw = m.text;
      answer.items = m.sources || [];
      finishAnswer(answer, m.citations, m.timings, m);
      addActions(answer, m.id, m.feedback || 0, lastQuestion);
    }
  }
  scrollDown();
  connect();
})();
