// static/docent/render.js on a minimal fake DOM. Run: node --test tests/js/render.test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const RENDER_PATH = new URL("../../static/docent/render.js", import.meta.url);
const { renderAnswer, renderSources, parseMarkdown } = require(RENDER_PATH.pathname);

// ---- fake DOM: just what renderAnswer may use; any HTML-parsing entry point throws ----------------

class FakeText {
  constructor(text) {
    this.nodeType = 3;
    this.data = String(text);
  }
  get textContent() {
    return this.data;
  }
}

class FakeElement {
  constructor(doc, tagName) {
    this.nodeType = 1;
    this.ownerDocument = doc;
    this.tagName = tagName.toUpperCase();
    this.attributes = {};
    this.children = [];
  }
  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }
  getAttribute(name) {
    return name in this.attributes ? this.attributes[name] : null;
  }
  appendChild(child) {
    assert.ok(child instanceof FakeElement || child instanceof FakeText, "appendChild got a non-node: " + child);
    this.children.push(child);
    return child;
  }
  get textContent() {
    return this.children.map((c) => c.textContent).join("");
  }
  set textContent(value) {
    this.children = value ? [new FakeText(value)] : [];
  }
}
for (const name of ["innerHTML", "outerHTML"]) {
  Object.defineProperty(FakeElement.prototype, name, {
    get() {
      throw new Error(name + " read");
    },
    set() {
      throw new Error(name + " written");
    },
  });
}
FakeElement.prototype.insertAdjacentHTML = () => {
  throw new Error("insertAdjacentHTML called");
};

function fakeDocument() {
  const doc = {
    createElement: (tag) => new FakeElement(doc, tag),
    createTextNode: (text) => new FakeText(text),
  };
  return doc;
}

function render(text, sources = SOURCES) {
  const target = new FakeElement(fakeDocument(), "div");
  target.textContent = "stale content";
  renderAnswer(target, text, sources);
  return target;
}

function all(node, tag) {
  const found = [];
  const walk = (n) => {
    if (!(n instanceof FakeElement)) return;
    if (n.tagName === tag.toUpperCase()) found.push(n);
    n.children.forEach(walk);
  };
  node.children.forEach(walk);
  return found;
}

// The tree as nested arrays, for comparing structure: ["P", "text", ["STRONG", "b"]].
function shape(node) {
  if (node instanceof FakeText) return node.data;
  return [node.tagName, ...node.children.map(shape)];
}

const SOURCES = [
  { n: 1, url: "/kb/1/passage/10/", title: "Kettle manual", page: 3 },
  { n: 2, url: "https://example.org/policy", title: "Travel policy", page: null },
];

// ---- safety ---------------------------------------------------------------------------------------

test("does not use HTML-parsing APIs", () => {
  const source = readFileSync(RENDER_PATH, "utf8");
  assert.doesNotMatch(source, /\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write/);
});

test("raw HTML is shown as literal text", () => {
  const text = 'Hi <script>alert(1)</script> and <img src=x onerror="alert(2)"> <b>bold</b>';
  const target = render(text);
  assert.equal(target.textContent, text);
  for (const tag of ["script", "img", "b"]) assert.equal(all(target, tag).length, 0, tag);
  assert.deepEqual(shape(target), ["DIV", ["P", text]]);
});

test("the target is cleared first", () => {
  const target = render("new");
  assert.deepEqual(shape(target), ["DIV", ["P", "new"]]);
});

test("javascript:, data: and relative links are rendered as their text only", () => {
  for (const href of ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,x", "/relative", "//evil.example"]) {
    const target = render(`click [here](${href}) now`);
    assert.equal(all(target, "a").length, 0, href);
    assert.equal(target.textContent, "click here now", href);
  }
  const autolink = render("<javascript:alert(1)>");
  assert.equal(all(autolink, "a").length, 0);
  assert.equal(autolink.textContent, "<javascript:alert(1)>");
});

test("http, https and mailto links open in a new tab without referrer", () => {
  const target = render("[site](https://example.org/a?b=1) [plain](http://x.test) [mail](mailto:a@b.test) <https://auto.test/p>");
  const links = all(target, "a");
  assert.deepEqual(
    links.map((a) => [a.attributes.href, a.textContent]),
    [
      ["https://example.org/a?b=1", "site"],
      ["http://x.test", "plain"],
      ["mailto:a@b.test", "mail"],
      ["https://auto.test/p", "https://auto.test/p"],
    ],
  );
  for (const a of links) {
    assert.equal(a.attributes.target, "_blank");
    assert.equal(a.attributes.rel, "noopener noreferrer nofollow");
  }
});

test("images are never rendered: the alt text only, the URL is not used", () => {
  const target = render("Look: ![a chart](https://tracker.test/pixel.png) there **![bold alt](x.png)**");
  assert.equal(all(target, "img").length, 0);
  assert.equal(all(target, "a").length, 0);
  assert.equal(target.textContent, "Look: a chart there bold alt");
  assert.doesNotMatch(JSON.stringify(parseMarkdown("![a](https://tracker.test/p.png)")), /tracker/);
});

// ---- citations --------------------------------------------------------------------------------------

test("known citation numbers become links to their source", () => {
  const target = render("Boil it [1]. Claim it [2][1].");
  const cites = all(target, "a");
  assert.deepEqual(
    cites.map((a) => [a.textContent, a.attributes.href, a.attributes["data-docent-cite"]]),
    [
      ["[1]", "/kb/1/passage/10/", "1"],
      ["[2]", "https://example.org/policy", "2"],
      ["[1]", "/kb/1/passage/10/", "1"],
    ],
  );
  for (const a of cites) {
    assert.equal(a.attributes.class, "cite");
    assert.equal(a.attributes.target, "_blank");
    assert.equal(a.attributes.rel, "noopener noreferrer");
  }
  assert.equal(cites[0].attributes.title, "Kettle manual, p. 3");
});

test("unknown citation numbers are dropped", () => {
  const target = render("Fact [7]. Other [1][9].");
  assert.equal(target.textContent, "Fact . Other [1].");
  assert.deepEqual(
    all(target, "a").map((a) => a.attributes["data-docent-cite"]),
    ["1"],
  );
  assert.equal(render("No sources [1].", []).textContent, "No sources .");
});

test("a source with an unsafe URL is cited without a link target", () => {
  const target = render("x [1]", [{ n: 1, url: "javascript:alert(1)", title: "t" }]);
  const [a] = all(target, "a");
  assert.equal(a.attributes.href, undefined);
  assert.equal(a.textContent, "[1]");
});

test("markers inside code are left as they are", () => {
  const target = render("Use `data[1]` here [1].\n\n```python\nx = items[2]\n```");
  assert.equal(all(target, "a").length, 1);
  const codes = all(target, "code");
  assert.deepEqual(
    codes.map((c) => c.textContent),
    ["data[1]", "x = items[2]"],
  );
});

test("a link is not mistaken for a citation, and escaped brackets stay text", () => {
  const target = render("[1](https://example.org) and \\[2\\]");
  const links = all(target, "a");
  assert.equal(links.length, 1);
  assert.equal(links[0].attributes.class, undefined);
  assert.equal(target.textContent, "1 and [2]");
});

// ---- structure ----------------------------------------------------------------------------------------

test("headings, paragraphs, line breaks and emphasis", () => {
  const target = render("# Title\n### Small\n#### Deeper\nfirst line **bold** and *it* or _it_\nsecond snake_case_name\n\nnext");
  assert.deepEqual(shape(target), [
    "DIV",
    ["H1", "Title"],
    ["H3", "Small"],
    ["H3", "Deeper"],
    ["P", "first line ", ["STRONG", "bold"], " and ", ["EM", "it"], " or ", ["EM", "it"], ["BR"], "second snake_case_name"],
    ["P", "next"],
  ]);
});

test("unordered and ordered lists", () => {
  const target = render("Steps:\n1. Fill [1]\n2. Boil\n\n- one\n* two\n  more of two\n\n3. three");
  assert.deepEqual(shape(target), [
    "DIV",
    ["P", "Steps:"],
    ["OL", ["LI", "Fill ", ["A", "[1]"]], ["LI", "Boil"]],
    ["UL", ["LI", "one"], ["LI", "two", ["BR"], "more of two"]],
    ["OL", ["LI", "three"]],
  ]);
  assert.equal(all(target, "ol")[1].attributes.start, "3");
  assert.equal(all(target, "ol")[0].attributes.start, undefined);
});

test("fenced code blocks keep their text, including HTML, verbatim", () => {
  const target = render("Before\n```html\n<b>x</b> **not bold** [1]\n\n  indented\n```\nAfter");
  assert.deepEqual(shape(target), [
    "DIV",
    ["P", "Before"],
    ["PRE", ["CODE", "<b>x</b> **not bold** [1]\n\n  indented"]],
    ["P", "After"],
  ]);
  assert.equal(all(target, "code")[0].attributes.class, "language-html");
});

test("an unclosed fence (mid-stream) runs to the end", () => {
  const target = render("Code:\n```\nline [1]");
  assert.deepEqual(shape(target), ["DIV", ["P", "Code:"], ["PRE", ["CODE", "line [1]"]]]);
});

test("unclosed inline code and emphasis are literal", () => {
  const target = render("a `b and *c and **d");
  assert.deepEqual(shape(target), ["DIV", ["P", "a `b and *c and **d"]]);
});

test("parseMarkdown returns plain objects", () => {
  assert.deepEqual(parseMarkdown("Hi **you** [2]"), {
    type: "root",
    children: [
      {
        type: "paragraph",
        children: [
          { type: "text", text: "Hi " },
          { type: "strong", children: [{ type: "text", text: "you" }] },
          { type: "text", text: " " },
          { type: "cite", n: 2 },
        ],
      },
    ],
  });
});

test("empty and missing text render nothing", () => {
  assert.deepEqual(shape(render("")), ["DIV"]);
  assert.deepEqual(shape(render(undefined)), ["DIV"]);
});

test("a long line of unmatched delimiters parses in linear time", () => {
  const line = "*".repeat(50000) + " _x".repeat(20000) + " `a".repeat(20000) + " [".repeat(20000);
  const started = Date.now();
  parseMarkdown(line);
  assert.ok(Date.now() - started < 2000, "took " + (Date.now() - started) + " ms");
});

test("source lists: cited ones marked or alone, links only to safe URLs, text never parsed", () => {
  const items = [
    { n: 1, title: "Manual <b>", page: 5, heading: "Reset", snippet: "Hold 10 s", url: "/kb/documents/1/passage/2/" },
    { n: 2, title: "Policy", page: null, heading: "", snippet: "Travel", url: "javascript:alert(1)" },
  ];
  const chat = new FakeElement(fakeDocument(), "div");
  renderSources(chat, items, { cited: [1], markCited: true, snippets: true, headingClass: "muted small" });
  const [first, second] = all(chat, "li");
  assert.equal(first.getAttribute("class"), "source cited");
  assert.equal(second.getAttribute("class"), "source");
  const links = all(chat, "a");
  assert.equal(links[0].getAttribute("href"), "/kb/documents/1/passage/2/");
  assert.equal(links[0].textContent, "Manual <b>, p. 5");
  assert.equal(links[1].getAttribute("href"), null); // javascript: is never a link
  assert.equal(links[1].getAttribute("data-docent-source"), "2");
  assert.equal(all(chat, "div")[0].textContent, "Hold 10 s");

  const widget = new FakeElement(fakeDocument(), "div");
  renderSources(widget, items, { cited: [2], onlyCited: true });
  assert.deepEqual(all(widget, "a").map((a) => a.getAttribute("data-docent-source")), ["2"]);
  renderSources(widget, items, { cited: [], onlyCited: true }); // cites none: all are shown
  assert.equal(all(widget, "li").length, 2);
  renderSources(widget, [], { cited: [] });
  assert.equal(widget.children.length, 0);
});
