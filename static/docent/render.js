// Renders an answer's Markdown safely: every node is built with createElement/createTextNode, so
// model text (which may quote documents containing HTML) can never become markup. No dependencies.
// Browser: window.DocentRender.renderAnswer(target, text, sources) and .renderSources(container, items, options),
// shared by the chat page and the support widget. Node (tests): require() it.
(function (root, factory) {
  "use strict";
  const api = factory();
  if (typeof module !== "undefined" && module.exports) {
    module.exports = api;
  } else {
    root.DocentRender = { renderAnswer: api.renderAnswer, renderSources: api.renderSources };
  }
})(typeof window !== "undefined" ? window : this, function () {
  "use strict";

  const FENCE = /^ {0,3}(`{3,})\s*([\w+#.-]*)/;
  const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
  // Items may be indented: a nested list's items join the list above (one level is enough for answers).
  const BULLET = /^\s*[-*+]\s+(.*)$/;
  const NUMBERED = /^\s*(\d{1,9})[.)]\s+(.*)$/;
  // Inline patterns are sticky (matched at lastIndex) so a long line is not copied at every character.
  // A URL may hold one level of balanced parentheses, as Wikipedia's do.
  const LINK = /\[([^\[\]]*)\]\(\s*((?:[^\s()]|\([^\s()]*\))*)(?:\s+"[^"]*")?\s*\)/y;
  const IMAGE = /!\[([^\[\]]*)\]\(\s*((?:[^\s()]|\([^\s()]*\))*)(?:\s+"[^"]*")?\s*\)/y;
  const AUTOLINK = /<((?:https?|mailto):[^\s<>]+)>/iy;
  const CITE = /\[(\d{1,3})\]/y;
  const TICKS = /`+/y;
  const SAFE_URL = /^(?:https?:\/\/|mailto:)/i;
  // Source URLs come from the server and are usually paths inside the app ("/kb/3/passage/7/").
  const SAFE_PATH = /^\/(?![\/\\])/;
  const PUNCTUATION = /[!-\/:-@\[-`{-~]/;
  // "Manual, p. 3": a source's title with its page, from the page's JavaScript catalogue when there is one
  // (the chat page, the widget); English under Node.
  const PAGE_LABEL = typeof gettext === "function" ? gettext("%(title)s, p. %(page)s") : "%(title)s, p. %(page)s";

  function sourceLabel(source) {
    if (!source.page) return source.title;
    const values = { title: source.title, page: source.page };
    return PAGE_LABEL.replace(/%\((title|page)\)s/g, (_, name) => String(values[name]));
  }

  // ---- Markdown subset -> tree of {type, ...} objects ----------------------------------------------

  function parseMarkdown(text) {
    const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
    const blocks = [];
    let paragraph = null;
    let list = null;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const fence = FENCE.exec(line);
      const heading = HEADING.exec(line);
      const bullet = BULLET.exec(line);
      const numbered = bullet ? null : NUMBERED.exec(line);
      if (fence) {
        // An unclosed fence runs to the end, which is what a half-streamed code block needs.
        // Closed by a run at least as long at a line start, the rule chat/marker_stream.py follows too.
        const closing = new RegExp("^ {0,3}`{" + fence[1].length + ",}");
        const code = [];
        for (i++; i < lines.length && !closing.test(lines[i]); i++) code.push(lines[i]);
        blocks.push({ type: "codeblock", lang: fence[2], text: code.join("\n") });
        paragraph = list = null;
      } else if (!line.trim()) {
        paragraph = list = null;
      } else if (heading) {
        // Deeper headings are shown as the smallest one the answer style has.
        blocks.push({ type: "heading", level: Math.min(heading[1].length, 3), children: parseInline(heading[2]) });
        paragraph = list = null;
      } else if (bullet || numbered) {
        const ordered = Boolean(numbered);
        if (!list || list.ordered !== ordered) {
          list = { type: "list", ordered: ordered, start: ordered ? Number(numbered[1]) : 1, children: [] };
          blocks.push(list);
        }
        list.children.push({ type: "item", children: parseInline(ordered ? numbered[2] : bullet[1]) });
        paragraph = null;
      } else if (list) {
        // A plain line under an item continues that item.
        const last = list.children[list.children.length - 1];
        last.children.push({ type: "br" }, ...parseInline(line.trim()));
      } else if (paragraph) {
        paragraph.children.push({ type: "br" }, ...parseInline(line));
      } else {
        paragraph = { type: "paragraph", children: parseInline(line) };
        blocks.push(paragraph);
      }
    }
    return { type: "root", children: blocks };
  }

  // Inline Markdown of one line. Inline code does not continue onto the next line (as in
  // chat/marker_stream.py), so a stray backtick only affects the rest of its line.
  function parseInline(text, inLink) {
    const nodes = [];
    let plain = "";
    const push = (node) => {
      if (plain) nodes.push({ type: "text", text: plain });
      plain = "";
      nodes.push(node);
    };
    // Where a search for a closing delimiter already failed: a later opener cannot succeed either,
    // so a line full of unmatched "*" or "`" stays linear instead of quadratic.
    const misses = {};
    const at = (re) => {
      re.lastIndex = i;
      return re.exec(text);
    };
    let i = 0;
    while (i < text.length) {
      const ch = text[i];
      let m;
      if (ch === "\\" && PUNCTUATION.test(text[i + 1] || "")) {
        plain += text[i + 1];
        i += 2;
      } else if (ch === "`") {
        const ticks = at(TICKS)[0];
        const end = findTicks(text, i + ticks.length, ticks.length, misses);
        if (end < 0) {
          plain += ticks;
          i += ticks.length;
        } else {
          push({ type: "code", text: text.slice(i + ticks.length, end) });
          i = end + ticks.length;
        }
      } else if (ch === "!" && (m = at(IMAGE))) {
        // Never an <img>: loading it would tell whoever controls the URL that the answer was read.
        plain += m[1];
        i += m[0].length;
      } else if (ch === "[" && !inLink && (m = at(LINK))) {
        push({ type: "link", href: m[2], children: parseInline(m[1], true) });
        i += m[0].length;
      } else if (ch === "<" && !inLink && (m = at(AUTOLINK))) {
        push({ type: "link", href: m[1], children: [{ type: "text", text: m[1] }] });
        i += m[0].length;
      } else if (ch === "[" && (m = at(CITE))) {
        push({ type: "cite", n: Number(m[1]) });
        i += m[0].length;
      } else if ((m = emphasis(text, i, misses))) {
        push({ type: m.type, children: parseInline(m.inner, inLink) });
        i = m.end;
      } else {
        plain += ch;
        i += 1;
      }
    }
    if (plain) nodes.push({ type: "text", text: plain });
    return nodes;
  }

  // The index of the next run of exactly `count` backticks at or after `from`, or -1.
  function findTicks(text, from, count, misses) {
    if (from >= misses["`" + count]) return -1;
    const re = /`+/g;
    re.lastIndex = from;
    let m;
    while ((m = re.exec(text))) if (m[0].length === count) return m.index;
    misses["`" + count] = from;
    return -1;
  }

  // **strong**, *em* or _em_ starting at i. An opener must be followed by a non-space and a closer
  // preceded by one; "_" must not touch a letter or digit outside, so snake_case stays as it is.
  function emphasis(text, i, misses) {
    const delim = text.startsWith("**", i) ? "**" : text[i] === "*" || text[i] === "_" ? text[i] : null;
    if (!delim) return null;
    const start = i + delim.length;
    if (!text[start] || /\s/.test(text[start])) return null;
    if (delim === "_" && /\w/.test(text[i - 1] || "")) return null;
    if (start + 1 >= misses[delim]) return null;
    for (let end = text.indexOf(delim, start + 1); end > 0; end = text.indexOf(delim, end + 1)) {
      if (/\s/.test(text[end - 1])) continue;
      if (delim === "_" && /\w/.test(text[end + 1] || "")) continue;
      if (delim === "*" && (text[end + 1] === "*" || text[end - 1] === "*")) continue; // part of a "**"
      return { type: delim === "**" ? "strong" : "em", inner: text.slice(start, end), end: end + delim.length };
    }
    misses[delim] = start + 1;
    return null;
  }

  // ---- tree -> DOM ------------------------------------------------------------------------------

  function renderAnswer(target, text, sources) {
    const doc = target.ownerDocument || document;
    const byNumber = new Map();
    for (const source of sources || []) byNumber.set(Number(source.n), source);
    target.textContent = "";
    for (const block of parseMarkdown(text || "").children) target.appendChild(renderNode(doc, block, byNumber));
  }

  function element(doc, tag, attributes, children) {
    const node = doc.createElement(tag);
    for (const name of Object.keys(attributes || {})) node.setAttribute(name, attributes[name]);
    for (const child of (children || []).flat()) if (child) node.appendChild(child);
    return node;
  }

  function renderNode(doc, node, byNumber) {
    const children = () => node.children.map((child) => renderNode(doc, child, byNumber));
    switch (node.type) {
      case "paragraph":
        return element(doc, "p", null, children());
      case "heading":
        return element(doc, "h" + node.level, null, children());
      case "list":
        return element(doc, node.ordered ? "ol" : "ul", node.start !== 1 ? { start: String(node.start) } : null, children());
      case "item":
        return element(doc, "li", null, children());
      case "codeblock": {
        const code = element(doc, "code", node.lang ? { class: "language-" + node.lang } : null, [
          doc.createTextNode(node.text),
        ]);
        return element(doc, "pre", null, [code]);
      }
      case "code":
        return element(doc, "code", null, [doc.createTextNode(node.text)]);
      case "strong":
      case "em":
        return element(doc, node.type, null, children());
      case "br":
        return doc.createElement("br");
      case "link":
        if (!SAFE_URL.test(node.href)) return children(); // its text, in place of the link
        return element(
          doc,
          "a",
          { href: node.href, target: "_blank", rel: "noopener noreferrer nofollow" },
          children(),
        );
      case "cite":
        return renderCite(doc, node.n, byNumber);
      default:
        return doc.createTextNode(node.text);
    }
  }

  // A marker for a source the answer was not given is dropped: a link to nowhere would mislead.
  function renderCite(doc, n, byNumber) {
    const source = byNumber.get(n);
    if (!source) return null;
    const attributes = { class: "cite", "data-docent-cite": String(n) };
    const url = String(source.url || "");
    if (SAFE_URL.test(url) || SAFE_PATH.test(url)) {
      Object.assign(attributes, { href: url, target: "_blank", rel: "noopener noreferrer" });
    }
    if (source.title) attributes.title = sourceLabel(source);
    return element(doc, "a", attributes, [doc.createTextNode("[" + n + "]")]);
  }

  // The numbered source links under an answer. options: cited (numbers the answer cites), onlyCited (show just
  // those, or all when it cites none), markCited (class "cited" on them), snippets, headingClass.
  function renderSources(container, items, options) {
    const doc = container.ownerDocument || document;
    const text = (tag, className, value) =>
      element(doc, tag, className ? { class: className } : {}, [doc.createTextNode(value)]);
    const cited = new Set(options.cited || []);
    const shown = options.onlyCited && cited.size ? items.filter((s) => cited.has(s.n)) : items;
    container.textContent = "";
    if (!shown.length) return;
    const list = element(doc, "ol", { class: "sources" });
    for (const source of shown) {
      const li = element(doc, "li", {
        class: options.markCited && cited.has(source.n) ? "source cited" : "source",
        value: source.n,
      });
      const attributes = { "data-docent-source": String(source.n) };
      const url = String(source.url || "");
      if (SAFE_URL.test(url) || SAFE_PATH.test(url)) {
        Object.assign(attributes, { href: url, target: "_blank", rel: "noopener noreferrer" });
      }
      const label = sourceLabel(source);
      li.appendChild(element(doc, "a", attributes, [doc.createTextNode(label)]));
      if (source.heading) li.appendChild(text("span", options.headingClass || "heading", " · " + source.heading));
      if (options.snippets) li.appendChild(text("div", "snippet", source.snippet || ""));
      list.appendChild(li);
    }
    container.appendChild(list);
  }

  return { renderAnswer: renderAnswer, renderSources: renderSources, parseMarkdown: parseMarkdown };
});
