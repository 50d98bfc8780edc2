// kplane trace waterfall. The server embeds the trace (spans in
// depth-first order, with depth, subtree size, critical path and clock
// skew already worked out by ktrace.BuildView) as JSON; this renders only
// the rows in view, so a 10,000-span trace costs what 40 rows cost.
// Plain JavaScript, no dependencies. The page's Content-Security-Policy
// forbids inline styles in markup, so geometry is set through the CSSOM.
(function () {
  "use strict";

  var ROW = 28;        // row height in px; must match .wf-row in trace.css
  var OVERSCAN = 12;   // rows rendered above and below the viewport
  var INDENT = 14;     // px per tree level
  var MAX_INDENT = 30; // deeper levels stop indenting and show their depth

  // Dapper's four annotations, as Zipkin spans carry them.
  var ANNOTATIONS = {
    cs: "Client Send", sr: "Server Receive", ss: "Server Send", cr: "Client Receive",
    ws: "Wire Send", wr: "Wire Receive"
  };

  // formatDuration mirrors formatSpanDuration in web/traces.go; ns in.
  function formatDuration(ns) {
    if (ns === 0) return "0";
    var us = ns / 1000;
    function fix(x) { return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2); }
    if (us < 1000) return fix(us) + "µs";
    if (us < 1e6) return fix(us / 1000) + "ms";
    return fix(us / 1e6) + "s";
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function Waterfall(root, data) {
    this.data = data;
    this.spans = data.spans;
    this.total = Math.max(data.duration, 1);
    this.collapsed = new Uint8Array(this.spans.length);
    this.visible = [];
    this.pool = [];
    this.selected = -1;
    this.root = root;
    this.scroll = document.getElementById("wf-scroll");
    this.spacer = document.getElementById("wf-spacer");
    this.rows = document.getElementById("wf-rows");
    this.detail = document.getElementById("wf-detail");
    this.pending = false;
    this.axis();
    this.recompute();
    var self = this;
    this.scroll.addEventListener("scroll", function () { self.schedule(); }, { passive: true });
    window.addEventListener("resize", function () { self.schedule(); });
    this.rows.addEventListener("click", function (ev) { self.onClick(ev); });
    this.scroll.addEventListener("keydown", function (ev) { self.onKey(ev); });
    root.closest(".waterfall-card").querySelector("[data-action=expand-all]").addEventListener("click", function () { self.setAll(0); });
    root.closest(".waterfall-card").querySelector("[data-action=collapse-all]").addEventListener("click", function () { self.setAll(1); });
    var crit = document.getElementById("wf-critical");
    crit.addEventListener("change", function () { root.classList.toggle("no-crit", !crit.checked); });
  }

  Waterfall.prototype.axis = function () {
    var axis = document.getElementById("wf-axis");
    for (var i = 0; i <= 4; i++) {
      var t = el("span", "wf-tick", formatDuration(this.total * i / 4));
      t.style.left = (i * 25) + "%";
      if (i === 4) t.classList.add("wf-tick-end");
      axis.appendChild(t);
    }
  };

  // recompute lists the rows not hidden under a collapsed span: a
  // collapsed span's subtree is the n spans right after it.
  Waterfall.prototype.recompute = function () {
    var v = [], s = this.spans, c = this.collapsed;
    for (var i = 0; i < s.length;) {
      v.push(i);
      i += c[i] ? s[i].n + 1 : 1;
    }
    this.visible = v;
    this.spacer.style.height = (v.length * ROW) + "px";
    this.render();
  };

  Waterfall.prototype.schedule = function () {
    if (this.pending) return;
    this.pending = true;
    var self = this;
    requestAnimationFrame(function () { self.pending = false; self.render(); });
  };

  Waterfall.prototype.render = function () {
    var top = this.scroll.scrollTop, h = this.scroll.clientHeight || 600;
    var first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    var last = Math.min(this.visible.length, Math.ceil((top + h) / ROW) + OVERSCAN);
    var need = last - first;
    while (this.pool.length < need) {
      var r = this.makeRow();
      this.pool.push(r);
      this.rows.appendChild(r.el);
    }
    for (var k = 0; k < this.pool.length; k++) {
      var row = this.pool[k];
      if (k < need) {
        this.fill(row, this.visible[first + k], first + k);
        row.el.hidden = false;
      } else {
        row.el.hidden = true;
      }
    }
  };

  Waterfall.prototype.makeRow = function () {
    var r = { el: el("div", "wf-row") };
    r.el.setAttribute("role", "treeitem");
    r.name = el("div", "wf-name");
    r.toggle = el("button", "wf-toggle");
    r.toggle.type = "button";
    r.toggle.tabIndex = -1;
    r.swatch = el("span", "swatch");
    r.svc = el("span", "wf-svc");
    r.op = el("span", "wf-op");
    r.marks = el("span", "wf-marks");
    r.name.append(r.toggle, r.swatch, r.svc, r.op, r.marks);
    r.time = el("div", "wf-time");
    r.bar = el("div", "wf-bar");
    r.dur = el("span", "wf-dur");
    r.time.append(r.bar, r.dur);
    r.el.append(r.name, r.time);
    return r;
  };

  Waterfall.prototype.fill = function (r, i, pos) {
    var s = this.spans[i], colour = "sc" + (s.s % 10);
    r.el.style.transform = "translateY(" + (pos * ROW) + "px)";
    r.el.dataset.index = i;
    r.el.dataset.span = s.id;
    r.el.setAttribute("aria-level", s.d + 1);
    r.el.classList.toggle("selected", i === this.selected);
    r.el.classList.toggle("is-err", !!s.e);
    r.el.classList.toggle("is-crit", !!s.c);
    r.name.style.paddingLeft = (8 + Math.min(s.d, MAX_INDENT) * INDENT) + "px";
    if (s.k > 0) {
      r.toggle.style.visibility = "";
      r.toggle.textContent = this.collapsed[i] ? "▸" : "▾";
      r.toggle.setAttribute("aria-label", (this.collapsed[i] ? "Expand " : "Collapse ") + s.name);
      r.el.setAttribute("aria-expanded", this.collapsed[i] ? "false" : "true");
      r.toggle.title = this.collapsed[i] ? "Show " + s.n + " hidden spans" : "Hide the " + s.n + " spans below";
    } else {
      r.toggle.style.visibility = "hidden";
      r.el.removeAttribute("aria-expanded");
    }
    r.swatch.className = "swatch " + colour;
    r.svc.textContent = this.data.services[s.s];
    r.op.textContent = s.name;
    r.op.title = s.name;
    var marks = "";
    if (s.d > MAX_INDENT) marks += " ↳" + s.d;
    if (s.e) marks += " !";
    if (s.skew) marks += " ⇄";
    if (s.orphan) marks += " ⤴";
    if (this.collapsed[i]) marks += " +" + s.n;
    r.marks.textContent = marks;
    var left = 100 * s.o / this.total, width = Math.max(100 * s.t / this.total, 0.15);
    r.bar.className = "wf-bar " + colour + (s.e ? " err" : "") + (s.c ? " crit" : "");
    r.bar.style.left = left + "%";
    r.bar.style.width = width + "%";
    r.dur.textContent = formatDuration(s.t);
    // The label sits right of the bar, or left of it near the end, or
    // inside it when the bar fills the row.
    r.dur.classList.toggle("inside", left + width > 82 && left < 14);
    if (left + width <= 82) {
      r.dur.style.right = "";
      r.dur.style.left = (left + width) + "%";
    } else if (left >= 14) {
      r.dur.style.left = "";
      r.dur.style.right = (100 - left) + "%";
    } else {
      r.dur.style.left = "";
      r.dur.style.right = (100 - left - width) + "%";
    }
  };

  Waterfall.prototype.toggle = function (i) {
    if (this.spans[i].k === 0) return;
    this.collapsed[i] ^= 1;
    this.recompute();
  };

  Waterfall.prototype.setAll = function (v) {
    for (var i = 0; i < this.spans.length; i++) this.collapsed[i] = this.spans[i].k > 0 ? v : 0;
    this.recompute();
  };

  Waterfall.prototype.onClick = function (ev) {
    var row = ev.target.closest(".wf-row");
    if (!row) return;
    var i = +row.dataset.index;
    if (ev.target.closest(".wf-toggle")) {
      this.toggle(i);
      return;
    }
    this.select(i);
  };

  Waterfall.prototype.onKey = function (ev) {
    if (this.selected < 0) return;
    var pos = this.visible.indexOf(this.selected);
    var s = this.spans[this.selected];
    switch (ev.key) {
      case "ArrowDown": pos = Math.min(pos + 1, this.visible.length - 1); break;
      case "ArrowUp": pos = Math.max(pos - 1, 0); break;
      case "ArrowLeft": if (s.k > 0 && !this.collapsed[this.selected]) this.toggle(this.selected); ev.preventDefault(); return;
      case "ArrowRight": if (this.collapsed[this.selected]) this.toggle(this.selected); ev.preventDefault(); return;
      case "Escape": this.select(-1); return;
      default: return;
    }
    ev.preventDefault();
    this.select(this.visible[pos]);
    var y = pos * ROW;
    if (y < this.scroll.scrollTop) this.scroll.scrollTop = y;
    else if (y + ROW > this.scroll.scrollTop + this.scroll.clientHeight) this.scroll.scrollTop = y + ROW - this.scroll.clientHeight;
  };

  Waterfall.prototype.select = function (i) {
    this.selected = i;
    this.render();
    if (i < 0) {
      this.detail.hidden = true;
      this.root.classList.remove("has-detail");
      return;
    }
    this.showDetail(this.spans[i]);
    this.detail.hidden = false;
    this.root.classList.add("has-detail");
  };

  function table(title, rows) {
    var sec = el("section", "dt-section");
    sec.appendChild(el("h3", null, title));
    if (!rows.length) {
      sec.appendChild(el("p", "muted", "None"));
      return sec;
    }
    var t = el("table", "kv");
    rows.forEach(function (r) {
      var tr = el("tr");
      var th = el("th", null, r[0]);
      var td = el("td", r[2] || null, r[1]);
      tr.append(th, td);
      t.appendChild(tr);
    });
    sec.appendChild(t);
    return sec;
  }

  function sortedEntries(m) {
    return Object.keys(m || {}).sort().map(function (k) { return [k, m[k]]; });
  }

  Waterfall.prototype.showDetail = function (s) {
    var d = this.detail, self = this;
    d.textContent = "";
    var head = el("header", "dt-head");
    var title = el("div", "dt-title");
    var sw = el("span", "swatch sc" + (s.s % 10));
    title.append(sw, el("strong", null, this.data.services[s.s]), el("span", null, " " + s.name));
    var close = el("button", "dt-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", "Close span details");
    close.addEventListener("click", function () { self.select(-1); });
    head.append(title, close);
    d.appendChild(head);

    var chips = el("div", "dt-chips");
    if (s.kind) chips.appendChild(el("span", "chip", s.kind));
    chips.appendChild(el("span", s.e ? "chip chip-err" : "chip chip-ok", s.e ? "error" : "ok"));
    if (s.c) chips.appendChild(el("span", "chip chip-crit", "critical path"));
    if (s.orphan) chips.appendChild(el("span", "chip chip-warn", "parent missing"));
    d.appendChild(chips);
    if (s.e && s.msg) d.appendChild(el("p", "dt-error", s.msg));
    if (s.skew) {
      d.appendChild(el("p", "dt-skew", "⇄ Shifted " + (s.skew > 0 ? "+" : "−") + formatDuration(Math.abs(s.skew)) +
        " to fit inside its client span: the two hosts' clocks disagree. Times shown are adjusted."));
    }
    var parent = s.p >= 0 ? this.spans[s.p] : null;
    d.appendChild(table("Span", [
      ["Duration", formatDuration(s.t)],
      ["Start", "+" + formatDuration(s.o) + " after the trace start"],
      ["Span ID", s.id, "mono"],
      ["Parent", parent ? this.data.services[parent.s] + " " + parent.name : (s.parentID ? s.parentID + " (not in this trace)" : "none (root)")],
      ["Children", s.k + " direct, " + s.n + " in all"]
    ]));
    var ann = (s.ann || []).map(function (a) {
      var label = ANNOTATIONS[a.v] ? a.v + " · " + ANNOTATIONS[a.v] : a.v;
      var extra = sortedEntries(a.tags).map(function (kv) { return kv[0] + "=" + kv[1]; }).join(" ");
      return ["+" + formatDuration(a.o), label + (extra ? "  " + extra : "")];
    });
    d.appendChild(table("Annotations and events", ann));
    d.appendChild(table("Tags", sortedEntries(s.tags)));
    d.appendChild(table("Process", sortedEntries(this.data.processes[s.proc])));
  };

  document.addEventListener("DOMContentLoaded", function () {
    var src = document.getElementById("trace-data");
    var root = document.getElementById("waterfall");
    if (!src || !root) return;
    var t0 = performance.now();
    var data = JSON.parse(src.textContent);
    var parsed = performance.now();
    var wf = new Waterfall(root, data);
    var built = performance.now();
    // Exposed for the browser tests and for measuring big traces.
    window.kplaneWaterfall = wf;
    requestAnimationFrame(function () {
      setTimeout(function () {
        wf.timing = { parseMs: parsed - t0, buildMs: built - parsed, firstFrameMs: performance.now() - t0 };
        root.dataset.ready = "true";
      }, 0);
    });
  });
})();
