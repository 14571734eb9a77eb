// static/docent/chat_client.js (the chat page's and the widget's protocol client) against a fake socket and a
// minimal fake DOM. Run: node --test tests/js/chat_client.test.mjs
import { test, mock } from "node:test";
import assert from "node:assert/strict";

// ---- fakes: just what the client uses -------------------------------------------------------------

class FakeElement {
  constructor(tag) {
    this.tagName = tag.toUpperCase();
    this.className = "";
    this.children = [];
    this.attributes = {};
    this.ownText = "";
    this.scrollTop = 0;
    this.scrollHeight = 0;
  }
  appendChild(child) {
    this.children.push(child);
    this.scrollHeight += 10;
    return child;
  }
  append(...children) {
    for (const child of children) this.appendChild(child);
  }
  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }
  get textContent() {
    return this.ownText + this.children.map((c) => c.textContent).join("");
  }
  set textContent(value) {
    this.ownText = String(value);
    this.children = [];
  }
}

class FakeSocket {
  static OPEN = 1;
  static made = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.made.push(this);
  }
  send(data) {
    assert.equal(this.readyState, FakeSocket.OPEN, "sent on a socket that is not open");
    this.sent.push(JSON.parse(data));
  }
  open() {
    this.readyState = FakeSocket.OPEN;
    this.onopen();
  }
  receive(event) {
    this.onmessage({ data: typeof event === "string" ? event : JSON.stringify(event) });
  }
  close() {
    this.readyState = 3;
    this.onclose();
  }
}

const rendered = [];
globalThis.document = { createElement: (tag) => new FakeElement(tag) };
globalThis.window = {
  DocentRender: {
    renderAnswer: (target, text, sources) => {
      target.textContent = "<rendered>" + text;
      rendered.push({ kind: "answer", text, sources });
    },
    renderSources: (container, items, options) => {
      container.textContent = items.map((s) => s.title).join(",");
      rendered.push({ kind: "sources", items, options });
    },
  },
};
globalThis.WebSocket = FakeSocket;

const { createChatClient, addAnswer, openSocket } = await import("../../static/docent/chat_client.js");

// A client as a page makes one, recording what it is told; `overrides` replace options.
function page(overrides = {}) {
  FakeSocket.made = [];
  rendered.length = 0;
  const seen = { status: [], busy: [], lost: [], done: [], errors: [], opened: 0 };
  const messages = new FakeElement("div");
  const client = createChatClient(
    Object.assign(
      {
        messages,
        conversation: null,
        url: () => "ws://docent.test/ws/chat/",
        retryMs: 1000,
        maxRetryMs: 4000,
        newAnswer: () => addAnswer(messages, { meta: new FakeElement("div") }),
        sourceOptions: { onlyCited: true },
        setStatus: (text) => seen.status.push(text),
        setBusy: (busy) => seen.busy.push(busy),
        queuedText: (position) => "position " + position,
        onOpen: () => seen.opened++,
        onLost: (answer) => seen.lost.push(answer),
        onDone: (answer, event) => seen.done.push({ answer, event }),
        onError: (answer, event) => seen.errors.push({ answer, event }),
      },
      overrides,
    ),
  );
  return { client, messages, seen, socket: () => FakeSocket.made[FakeSocket.made.length - 1] };
}

const SOURCE = { n: 1, title: "Manual", url: "/kb/1/passage/2/" };

test("a question asked before the socket opens is sent when it opens, with the page's fields", () => {
  const { client, messages, seen, socket } = page({ conversation: 7 });
  client.connect();
  assert.equal(socket().url, "ws://docent.test/ws/chat/");
  assert.equal(client.ask("How do I reset it?", { kb: "manual" }), true);
  assert.equal(client.busy, true);
  assert.deepEqual(seen.busy, [true]);
  assert.deepEqual(socket().sent, []);
  socket().open();
  assert.deepEqual(socket().sent, [{ type: "ask", question: "How do I reset it?", kb: "manual", conversation: 7 }]);
  assert.equal(seen.opened, 1);
  assert.equal(seen.status.at(-1), "");
  // the question and an empty answer are on the page
  assert.equal(messages.children.length, 2);
  assert.equal(messages.children[0].className, "message user");
  assert.equal(messages.children[0].textContent, "How do I reset it?");
  assert.equal(messages.children[1].className, "message assistant");
  // a second question waits for the first answer
  assert.equal(client.ask("And then?", { kb: "manual" }), false);
  assert.equal(socket().sent.length, 1);
});

test("queued, sources, tokens and done stream into the answer", () => {
  const { client, messages, seen, socket } = page();
  client.connect();
  socket().open();
  client.ask("Why?");
  socket().receive({ type: "queued", position: 2 });
  assert.equal(seen.status.at(-1), "position 2");
  socket().receive({ type: "sources", items: [SOURCE] });
  assert.equal(seen.status.at(-1), "");
  assert.deepEqual(rendered.at(-1), { kind: "sources", items: [SOURCE], options: { cited: [], onlyCited: true } });
  const answer = messages.children[1];
  socket().receive({ type: "token", text: "Because " });
  socket().receive({ type: "token", text: "[1]." });
  assert.equal(answer.children[0].textContent, "Because [1].", "tokens are shown as plain text while streaming");
  assert.equal(messages.scrollTop, messages.scrollHeight, "scrolled to the end");
  socket().receive({ type: "done", message_id: 5, conversation: 9, citations: [1], timings: {} });
  assert.equal(client.conversation, 9);
  assert.equal(client.busy, false);
  assert.deepEqual(seen.busy, [true, false]);
  assert.equal(seen.done.length, 1);
  const done = seen.done[0];
  assert.equal(done.answer.raw, "Because [1].");
  assert.equal(done.answer.question, "Why?");
  assert.deepEqual(done.answer.items, [SOURCE]);
  assert.equal(done.event.message_id, 5);
  // finishing renders the Markdown with the sources the answer cites
  client.finish(done.answer, done.event.citations);
  assert.deepEqual(rendered.at(-2), { kind: "answer", text: "Because [1].", sources: [SOURCE] });
  assert.deepEqual(rendered.at(-1).options, { cited: [1], onlyCited: true });
  // the next question carries the conversation
  client.ask("More?");
  assert.equal(socket().sent.at(-1).conversation, 9);
});

test("an error ends the answer being streamed, or is shown as a message of its own", () => {
  const { client, messages, seen, socket } = page();
  client.connect();
  socket().open();
  socket().receive({ type: "error", code: "rate_limited", message: "Too many questions." });
  assert.equal(seen.errors.length, 1);
  assert.equal(seen.errors[0].answer, null);
  assert.equal(messages.children.at(-1).className, "message error");
  assert.equal(messages.children.at(-1).textContent, "Too many questions.");
  client.ask("Why?");
  socket().receive({ type: "token", text: "Part" });
  socket().receive({ type: "error", code: "llm_failed", message: "The model failed." });
  assert.equal(seen.errors[1].answer.raw, "Part");
  assert.equal(seen.errors[1].event.code, "llm_failed");
  assert.equal(client.busy, false);
  assert.equal(seen.busy.at(-1), false);
  // the socket stays usable
  assert.equal(client.ask("Again?"), true);
  assert.equal(socket().sent.at(-1).question, "Again?");
});

test("frames that are not JSON, or of unknown type, are ignored", () => {
  const { client, socket } = page();
  const errors = mock.method(console, "error", () => {});
  try {
    client.connect();
    socket().open();
    client.ask("Why?");
    socket().receive("not json");
    socket().receive({ type: "novel" });
    socket().receive({ type: "token", text: "ok" });
    assert.equal(errors.mock.callCount(), 1);
    assert.equal(client.busy, true);
  } finally {
    errors.mock.restore();
  }
});

test("a lost connection ends the answer, drops its question and reconnects with a growing wait", () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    const { client, seen, socket } = page();
    client.connect();
    client.ask("Why?"); // still waiting for the socket to open
    const first = socket();
    first.close();
    assert.equal(seen.lost.length, 1);
    assert.equal(seen.lost[0].question, "Why?");
    assert.equal(client.busy, false);
    assert.deepEqual(seen.busy, [true, false]);
    mock.timers.tick(999);
    assert.equal(FakeSocket.made.length, 1);
    mock.timers.tick(1);
    assert.equal(FakeSocket.made.length, 2, "reconnected after retryMs");
    socket().close(); // a refused handshake
    assert.equal(seen.lost.at(-1), null);
    mock.timers.tick(1999);
    assert.equal(FakeSocket.made.length, 2);
    mock.timers.tick(1);
    assert.equal(FakeSocket.made.length, 3, "the wait doubled");
    socket().close();
    mock.timers.tick(4000);
    socket().close();
    mock.timers.tick(4000);
    assert.equal(FakeSocket.made.length, 5, "the wait stops growing at maxRetryMs");
    socket().open();
    assert.deepEqual(socket().sent, [], "the lost answer's question is not sent again");
    socket().close();
    mock.timers.tick(1000);
    assert.equal(FakeSocket.made.length, 6, "an open socket resets the wait");
  } finally {
    mock.timers.reset();
  }
});

test("a frame sent while the socket is down without an answer streaming waits for it", () => {
  const { client, socket } = page();
  client.connect();
  socket().open();
  socket().readyState = 3;
  client.stop();
  assert.deepEqual(socket().sent, []);
  socket().open();
  assert.deepEqual(socket().sent, [{ type: "stop" }]);
});

test("beforeReconnect runs before each reconnection: false stops, an exception is one more failed try", async () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    const answers = [new Error("offline"), true, false];
    let calls = 0;
    const urls = ["first", "second"];
    const { client } = page({
      url: () => urls.shift(),
      beforeReconnect: async () => {
        const next = answers[calls++];
        if (next instanceof Error) throw next;
        return next;
      },
    });
    client.connect();
    FakeSocket.made[0].close();
    mock.timers.tick(1000);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(calls, 1);
    assert.equal(FakeSocket.made.length, 1, "the failed renewal did not connect");
    mock.timers.tick(2000);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(calls, 2);
    assert.equal(FakeSocket.made.length, 2);
    assert.equal(FakeSocket.made[1].url, "second", "the URL is asked again at each connection");
    FakeSocket.made[1].close();
    mock.timers.tick(4000);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(calls, 3);
    mock.timers.tick(60000);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(FakeSocket.made.length, 2, "refused: no more connections");
    assert.equal(calls, 3);
  } finally {
    mock.timers.reset();
  }
});

test("replay draws stored messages, each answer knowing the question before it", () => {
  const { client, messages } = page();
  const finished = [];
  client.replay(
    [
      { role: "user", text: "Q1" },
      { role: "assistant", text: "A1", sources: [SOURCE], citations: [1] },
      { role: "assistant", text: "A1 again" },
      { role: "user", text: "Q2" },
      { role: "assistant", text: "A2", sources: [] },
    ],
    (answer, message) => finished.push([answer.question, answer.raw, answer.items.length, message.citations]),
  );
  assert.deepEqual(finished, [
    ["Q1", "A1", 1, [1]],
    ["Q1", "A1 again", 0, undefined],
    ["Q2", "A2", 0, undefined],
  ]);
  assert.equal(messages.children.length, 5);
  assert.equal(FakeSocket.made.length, 0, "replaying sends nothing");
});

test("addAnswer keeps the page's extra parts under the sources", () => {
  const messages = new FakeElement("div");
  const meta = new FakeElement("div");
  const answer = addAnswer(messages, { meta });
  assert.equal(answer.meta, meta);
  assert.deepEqual(
    answer.item.children.map((c) => c.className),
    ["text", "source-list", ""],
  );
  assert.deepEqual([answer.raw, answer.items], ["", []]);
  assert.equal(typeof openSocket, "function");
});
