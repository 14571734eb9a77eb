// The browser's side of the chat protocol (../shared/INTERFACES.md, "Websocket"), one implementation for the
// chat page (static/docent/chat.js) and the support widget's frame (static/widget/frame.js): the socket with
// its queue of frames sent once it opens and its reconnection, `ask`/`stop` frames, and the streamed events
// (queued, sources, token, done, error) drawn into the message list. What differs between the two pages (their
// DOM, words, settings, what follows a finished or failed answer) comes in as options.
// Model and document text is inserted with textContent or through DocentRender (static/docent/render.js, a
// classic script loaded before this module), never as HTML. This module has no words of its own.

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// An answer's place at the end of `messages`: {item, text, sources, raw, items}; each of `parts` (name: element)
// is appended under the sources and kept on the answer under its name (the chat page's `meta` line).
export function addAnswer(messages, parts) {
  const item = el("div", "message assistant");
  const answer = { item, text: el("div", "text"), sources: el("div", "source-list"), raw: "", items: [] };
  item.append(answer.text, answer.sources);
  for (const [name, node] of Object.entries(parts || {})) {
    answer[name] = node;
    item.appendChild(node);
  }
  messages.appendChild(item);
  return answer;
}

export function addUserMessage(messages, text) {
  const item = el("div", "message user");
  item.appendChild(el("div", "text", text));
  messages.appendChild(item);
}

// A websocket that reopens itself: frames sent while it is closed wait for it to open. After a close it waits
// `retryMs`, doubled after each failed try up to `maxRetryMs` (equal: a constant wait), and back to `retryMs`
// once open. `beforeReconnect()` (optional, async) runs before each reconnection: false stops reconnecting for
// good, an exception is one more failed try. `url()` is asked at each connection (the widget's session changes).
// Returns {connect, send(frame), dropPending()}.
export function openSocket({ url, onEvent, onOpen, onClose, retryMs, maxRetryMs, beforeReconnect }) {
  let socket = null;
  let pending = [];
  let delay = retryMs;

  function connect() {
    const ws = new WebSocket(url());
    socket = ws;
    ws.onopen = () => {
      delay = retryMs;
      if (onOpen) onOpen();
      for (const frame of pending.splice(0)) ws.send(frame);
    };
    ws.onmessage = (message) => {
      try {
        onEvent(JSON.parse(message.data));
      } catch (error) {
        console.error(error);
      }
    };
    ws.onclose = () => {
      socket = null;
      if (onClose) onClose();
      // A refused handshake looks like any failed connection from here: retry it the same way.
      retryLater();
    };
  }

  function retryLater() {
    setTimeout(reconnect, delay);
    delay = Math.min(delay * 2, maxRetryMs);
  }

  async function reconnect() {
    if (beforeReconnect) {
      try {
        if (!(await beforeReconnect())) return;
      } catch (error) {
        retryLater();
        return;
      }
    }
    connect();
  }

  function send(frame) {
    const data = JSON.stringify(frame);
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(data);
    else pending.push(data);
  }

  return { connect, send, dropPending: () => (pending = []) };
}

// The conversation shown in `messages`, over a socket opened by openSocket (options `url`, `retryMs`,
// `maxRetryMs`, `beforeReconnect` go to it). At most one answer streams at a time.
// options:
//   messages        the element messages are appended to (and scrolled to its end as tokens arrive)
//   conversation    the conversation's id, or null for a new one (then the server's, after the first `done`)
//   newAnswer()     appends an answer's elements (addAnswer) and returns them
//   sourceOptions   DocentRender.renderSources's options besides `cited` (each page lists sources its way)
//   setStatus(text), setBusy(busy), queuedText(position): the page's status line, controls and queue words
//   onOpen(), onLost(answer or null): the socket opened; it closed (with the answer it cut off, now dropped)
//   onDone(answer or null, event), onError(answer or null, event): after `done`; after `error`, which ends the
//     answer being streamed, or else is shown as a message of its own
// Returns {ask(question, fields), stop(), finish(answer, citations), replay(history, onAnswer), scrollDown(),
// connect(), conversation (read/write), busy}.
export function createChatClient(options) {
  const messages = options.messages;
  let conversation = options.conversation || null;
  let current = null; // the answer being streamed
  const socket = openSocket({
    url: options.url,
    retryMs: options.retryMs,
    maxRetryMs: options.maxRetryMs,
    beforeReconnect: options.beforeReconnect,
    onEvent: handle,
    onOpen: () => {
      options.setStatus("");
      if (options.onOpen) options.onOpen();
    },
    onClose: () => {
      const lost = current;
      if (lost) {
        current = null;
        socket.dropPending(); // the question it answered is not sent again on its own
      }
      options.onLost(lost);
      if (lost) options.setBusy(false);
    },
  });

  function scrollDown() {
    messages.scrollTop = messages.scrollHeight;
  }

  function renderSources(container, items, cited) {
    window.DocentRender.renderSources(container, items, Object.assign({ cited: cited }, options.sourceOptions));
  }

  // A finished answer: its Markdown with citation links, and its sources.
  function finish(answer, citations) {
    window.DocentRender.renderAnswer(answer.text, answer.raw, answer.items);
    renderSources(answer.sources, answer.items, citations);
  }

  function handle(event) {
    switch (event.type) {
      case "queued":
        options.setStatus(options.queuedText(event.position));
        break;
      case "sources":
        options.setStatus("");
        if (current) {
          current.items = event.items || [];
          renderSources(current.sources, current.items, []);
        }
        break;
      case "token":
        if (current) {
          current.raw += event.text;
          current.text.textContent = current.raw;
          scrollDown();
        }
        break;
      case "done": {
        conversation = event.conversation;
        const answer = current;
        current = null;
        options.onDone(answer, event);
        options.setBusy(false);
        break;
      }
      case "error": {
        options.setStatus("");
        const answer = current;
        current = null;
        if (!answer) messages.appendChild(el("div", "message error", event.message));
        options.onError(answer, event);
        options.setBusy(false);
        break;
      }
    }
  }

  // Sends a question (with the page's extra `fields`, e.g. the chat page's `kb`) unless one is being answered;
  // returns whether it did.
  function ask(question, fields) {
    if (current) return false;
    addUserMessage(messages, question);
    current = options.newAnswer();
    current.question = question;
    options.setBusy(true);
    socket.send(Object.assign({ type: "ask", question: question }, fields, { conversation: conversation }));
    scrollDown();
    return true;
  }

  // Stored messages ({role, text, sources, ...} as the page's history gives them), drawn as they were streamed;
  // `onAnswer(answer, message)` finishes each answer (answer.question is the question before it).
  function replay(history, onAnswer) {
    let question = null;
    for (const message of history) {
      if (message.role === "user") {
        addUserMessage(messages, message.text);
        question = message.text;
      } else {
        const answer = options.newAnswer();
        answer.raw = message.text;
        answer.items = message.sources || [];
        answer.question = question;
        onAnswer(answer, message);
      }
    }
  }

  return {
    ask,
    stop: () => socket.send({ type: "stop" }),
    finish,
    replay,
    scrollDown,
    connect: socket.connect,
    get busy() {
      return current !== null;
    },
    get conversation() {
      return conversation;
    },
    set conversation(value) {
      conversation = value;
    },
  };
}
