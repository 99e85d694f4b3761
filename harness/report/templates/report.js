/* The comparison matrix of report.html: filters, search, sort and paging over the data island.
   Every piece of run data goes into the page as text (textContent), never parsed as HTML. */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("data").textContent);
  var rows = data.rows;
  /* Prompt variants: the matrix columns are (prompt, model) pairs, shown grouped by prompt
     or by model; "order" lists the column indices in the order shown. */
  var cols = data.cols || null;
  var groupBy = "prompt";
  var order = null;
  var perPage = data.perPage || 50;
  var state = { filter: "all", query: "", sort: "run", page: 0 };
  var view = [];
  var haystacks = null;
  var CLIP_LINES = 3;
  var CLIP_CHARS = 200;
  var MARK_TEXT = { regression: "REGRESSION", fix: "FIX", new: "NEW" };
  var BADGE_TEXT = { pass: "PASS", fail: "FAIL", error: "ERROR" };
  var REPLAY_TITLE = "answer replayed from the response store; latency is the recorded call's";

  var app = document.getElementById("app");
  var tbody = document.getElementById("rows");
  var search = document.getElementById("search");
  var sortSelect = document.getElementById("sort");
  var pageInfo = document.getElementById("pageinfo");
  var shown = document.getElementById("shown");
  var empty = document.getElementById("empty");
  var buttons = Array.prototype.slice.call(document.querySelectorAll(".filters button"));
  var groupButtons = Array.prototype.slice.call(document.querySelectorAll(".grouping button"));

  /* Per-row facts the filters and sorts use, computed once. */
  rows.forEach(function (row, index) {
    var passes = 0, bad = 0, errors = 0, changed = false, slowest = -1;
    row.cells.forEach(function (cell) {
      if (!cell) { return; }
      if (cell.s === "pass") { passes += 1; } else { bad += 1; }
      if (cell.s === "error") { errors += 1; }
      if (cell.b) { changed = true; }
      if (typeof cell.l === "number" && cell.l > slowest) { slowest = cell.l; }
    });
    row.i = index;
    row.bad = bad;
    row.errors = errors;
    row.disagree = passes > 0 && bad > 0;
    row.changed = changed;
    row.slowest = slowest;
  });

  var FILTERS = {
    all: function () { return true; },
    failures: function (row) { return row.bad > 0; },
    errors: function (row) { return row.errors > 0; },
    disagree: function (row) { return row.disagree; },
    changed: function (row) { return row.changed; }
  };

  var SORTS = {
    run: function (a, b) { return a.i - b.i; },
    "case": function (a, b) { return a.c < b.c ? -1 : a.c > b.c ? 1 : a.i - b.i; },
    failures: function (a, b) { return (b.bad - a.bad) || (b.errors - a.errors) || (a.i - b.i); },
    latency: function (a, b) { return (b.slowest - a.slowest) || (a.i - b.i); }
  };

  function haystack(row) {
    var parts = [row.c, row.p || ""];
    if (row.v) { parts.push(JSON.stringify(row.v)); }
    row.cells.forEach(function (cell) {
      if (cell) { parts.push(cell.o || "", cell.e || ""); }
      if (cell && cell.r) { cell.r.forEach(function (repeat) { parts.push(repeat[2] || ""); }); }
    });
    return parts.join("\n").toLowerCase();
  }

  function matches(row) {
    if (!state.query) { return true; }
    if (haystacks === null) { haystacks = rows.map(haystack); }
    return haystacks[row.i].indexOf(state.query) !== -1;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  /* Numbers as harness/report/formatting.py writes them: "1,234 ms", "$0.0123", "$0.001234". */
  function grouped(text) {
    var parts = text.split(".");
    parts[0] = parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return parts.join(".");
  }

  function ms(value) {
    if (typeof value !== "number") { return ""; }
    return grouped(String(Math.round(value))) + " ms";
  }

  function usd(value) {
    if (typeof value !== "number") { return ""; }
    var size = Math.abs(value);
    if (size === 0) { return "$0"; }
    var text = "$" + grouped(size.toFixed(size >= 1 ? 2 : size >= 0.01 ? 4 : 6));
    return value < 0 ? "-" + text : text;
  }

  /* A block of text shown as its first lines; a click shows all of it (and back). */
  function clipped(className, text, buttonClass) {
    var lines = text.split("\n");
    var short = lines.slice(0, CLIP_LINES).join("\n");
    if (short.length > CLIP_CHARS) { short = short.slice(0, CLIP_CHARS); }
    var wrap = el("div", className);
    if (short.length === text.length) {
      wrap.textContent = text;
      return wrap;
    }
    var body = el("span", "clip", short + "…");
    var toggle = el("button", buttonClass || "more", "show all (" + lines.length + " lines, " + text.length + " chars)");
    toggle.type = "button";
    var open = false;
    function flip() {
      open = !open;
      body.textContent = open ? text : short + "…";
      toggle.textContent = open ? "show less" : "show all (" + lines.length + " lines, " + text.length + " chars)";
      wrap.classList.toggle("open", open);
    }
    body.addEventListener("click", function () { if (!open) { flip(); } });
    toggle.addEventListener("click", flip);
    wrap.appendChild(body);
    wrap.appendChild(toggle);
    return wrap;
  }

  /* "replayed" (or "replayed 2/3" when only some repeats were): no call was made. */
  function replayBadge(cell) {
    var some = cell.n > 1 && cell.rp < cell.n;
    var badge = el("span", "replayed", some ? "replayed " + cell.rp + "/" + cell.n : "replayed");
    badge.title = REPLAY_TITLE;
    return badge;
  }

  /* The median latency; a replayed answer's is the recorded call's, and says so. */
  function latency(cell, replayed) {
    var text = ms(cell.l);
    if (replayed) {
      text += cell.rp >= cell.n ? " (recorded)" : " (" + cell.rp + " of " + cell.n + " recorded)";
    }
    var node = el("span", "lat", text);
    if (replayed) { node.title = REPLAY_TITLE; }
    return node;
  }

  function cellNode(cell) {
    var td = el("td", "cell");
    if (cell === false) {
      td.classList.add("empty", "na");
      td.title = "this case has no such prompt variant";
      return td;
    }
    if (!cell) {
      td.classList.add("empty");
      td.textContent = "not run";
      return td;
    }
    td.classList.add("st-" + cell.s);
    var top = el("div", "cell-top");
    top.appendChild(el("span", "badge " + cell.s, BADGE_TEXT[cell.s] || cell.s));
    if (cell.b) { top.appendChild(el("span", "mark " + cell.b, MARK_TEXT[cell.b] || cell.b)); }
    if (cell.n > 1) {
      var rate = cell.k + "/" + cell.n + " passed";
      if (typeof cell.t === "number") { rate += " (needs " + Math.round(cell.t * 100) + "%)"; }
      top.appendChild(el("span", "repeats", rate));
    }
    var replayed = typeof cell.rp === "number" && cell.rp > 0;
    if (replayed) { top.appendChild(replayBadge(cell)); }
    if (typeof cell.l === "number") { top.appendChild(latency(cell, replayed)); }
    if (typeof cell.$ === "number") { top.appendChild(el("span", "cost", usd(cell.$))); }
    if (typeof cell.sv === "number") {
      var saved = el("span", "saved", "saved " + usd(cell.sv));
      saved.title = "what the recorded call cost; not spent again, the answer was replayed";
      top.appendChild(saved);
    }
    if (cell.fr) { top.appendChild(el("span", "finish", "finish: " + cell.fr)); }
    td.appendChild(top);
    if (cell.o) { td.appendChild(clipped("out", cell.o)); }
    if (cell.e) { td.appendChild(el("div", "err", cell.e)); }
    if (cell.f && cell.f.length) {
      var list = el("ul", "checks");
      cell.f.forEach(function (check) {
        var item = el("li", "check");
        item.appendChild(el("b", null, check[0]));
        var detail = check[1] ? ": " + check[1] : "";
        if (typeof check[2] === "number") { detail += " (score " + check[2] + ")"; }
        item.appendChild(document.createTextNode(detail));
        list.appendChild(item);
      });
      td.appendChild(list);
    }
    if (cell.r && cell.r.length) { td.appendChild(repeatList(cell)); }
    return td;
  }

  /* Every repeat's verdict, reason and answer, for a cell whose repeats disagree. */
  function repeatList(cell) {
    var total = cell.r.length + (cell.rm || 0);
    var box = el("details", "repeat-list");
    box.appendChild(el("summary", null, "every repeat (" + total + ")"));
    var list = el("ol", "repeat-items");
    cell.r.forEach(function (repeat, index) {
      var verdict = String(repeat[0]);
      var item = el("li", "repeat-item");
      item.setAttribute("data-verdict", verdict);
      item.appendChild(el("span", "badge " + verdict.toLowerCase(), "repeat " + (index + 1) + " " + verdict));
      if (repeat[1]) { item.appendChild(el("span", "why", " (" + repeat[1] + ")")); }
      item.appendChild(clipped("out", repeat[2] || "", "more-repeat"));
      list.appendChild(item);
    });
    box.appendChild(list);
    if (cell.rm) { box.appendChild(el("div", "muted small", "… and " + cell.rm + " more repeats (see results.json)")); }
    return box;
  }

  function varsText(vars) {
    return Object.keys(vars).map(function (key) {
      var value = vars[key];
      return key + " = " + (typeof value === "string" ? value : JSON.stringify(value));
    }).join("\n");
  }

  function rowNode(row) {
    var tr = el("tr", "mrow");
    var th = el("th", "rh");
    th.scope = "row";
    th.appendChild(el("div", "case", row.c));
    if (row.v) { th.appendChild(clipped("vars", varsText(row.v))); }
    if (row.p) { th.appendChild(clipped("prompt", row.p)); }
    tr.appendChild(th);
    if (!order) {
      row.cells.forEach(function (cell) { tr.appendChild(cellNode(cell)); });
      return tr;
    }
    order.forEach(function (index) {
      var td = cellNode(row.cells[index]);
      td.setAttribute("data-prompt", promptLabel(cols[index].p));
      td.setAttribute("data-model", cols[index].m);
      tr.appendChild(td);
    });
    return tr;
  }

  function promptLabel(prompt) { return prompt === null ? "(no variants)" : prompt; }

  /* The column indices grouped by prompt (prompt-major) or by model (model-major). */
  function columnOrder() {
    var prompts = data.prompts || [];
    var models = data.models.map(function (m) { return m.name; });
    var indices = cols.map(function (_, i) { return i; });
    function rank(col) {
      var p = prompts.indexOf(col.p), m = models.indexOf(col.m);
      return groupBy === "model" ? [m, p] : [p, m];
    }
    indices.sort(function (a, b) {
      var ra = rank(cols[a]), rb = rank(cols[b]);
      return (ra[0] - rb[0]) || (ra[1] - rb[1]) || (a - b);
    });
    return indices;
  }

  /* Two header rows: the groups (prompts or models), then the columns inside each. */
  function renderHead() {
    var head = document.getElementById("matrix-head");
    var top = el("tr"), sub = el("tr");
    var corner = el("th", "rh", "Case");
    corner.rowSpan = 2;
    top.appendChild(corner);
    function outer(col) { return groupBy === "model" ? col.m : promptLabel(col.p); }
    function inner(col) { return groupBy === "model" ? promptLabel(col.p) : col.m; }
    var i = 0;
    while (i < order.length) {
      var key = outer(cols[order[i]]);
      var span = 0;
      while (i + span < order.length && outer(cols[order[i + span]]) === key) { span += 1; }
      var group = el("th", "group", key);
      group.colSpan = span;
      group.setAttribute("data-" + groupBy, key);
      top.appendChild(group);
      for (var j = i; j < i + span; j += 1) {
        var col = cols[order[j]];
        var th = el("th", "col", inner(col));
        th.setAttribute("data-prompt", promptLabel(col.p));
        th.setAttribute("data-model", col.m);
        sub.appendChild(th);
      }
      i += span;
    }
    head.replaceChildren(top, sub);
  }

  function regroup(by) {
    groupBy = by;
    order = columnOrder();
    renderHead();
    groupButtons.forEach(function (button) {
      button.setAttribute("aria-pressed", button.getAttribute("data-group") === by ? "true" : "false");
    });
  }

  function pages() { return Math.max(1, Math.ceil(view.length / perPage)); }

  function render() {
    var count = pages();
    if (state.page >= count) { state.page = count - 1; }
    if (state.page < 0) { state.page = 0; }
    var start = state.page * perPage;
    var end = Math.min(view.length, start + perPage);
    var fragment = document.createDocumentFragment();
    for (var i = start; i < end; i += 1) { fragment.appendChild(rowNode(rows[view[i]])); }
    tbody.replaceChildren(fragment);
    pageInfo.textContent = "page " + (state.page + 1) + " of " + count;
    shown.textContent = view.length
      ? "rows " + (start + 1) + "–" + end + " of " + view.length +
        (view.length !== rows.length ? " (" + rows.length + " in all)" : "")
      : "0 of " + rows.length + " rows";
    empty.hidden = view.length !== 0;
    document.getElementById("first").disabled = state.page === 0;
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= count - 1;
    document.getElementById("last").disabled = state.page >= count - 1;
  }

  function update() {
    var keep = FILTERS[state.filter] || FILTERS.all;
    var picked = rows.filter(function (row) { return keep(row) && matches(row); });
    picked.sort(SORTS[state.sort] || SORTS.run);
    view = picked.map(function (row) { return row.i; });
    state.page = 0;
    render();
  }

  function counts() {
    buttons.forEach(function (button) {
      var keep = FILTERS[button.getAttribute("data-filter")] || FILTERS.all;
      var n = 0;
      rows.forEach(function (row) { if (keep(row)) { n += 1; } });
      button.querySelector(".count").textContent = "(" + n + ")";
    });
  }

  buttons.forEach(function (button) {
    button.addEventListener("click", function () {
      state.filter = button.getAttribute("data-filter");
      buttons.forEach(function (other) {
        other.setAttribute("aria-pressed", other === button ? "true" : "false");
      });
      update();
    });
  });
  search.addEventListener("input", function () {
    state.query = search.value.trim().toLowerCase();
    update();
  });
  sortSelect.addEventListener("change", function () {
    state.sort = sortSelect.value;
    update();
  });
  function go(page) { state.page = page; render(); }
  document.getElementById("first").addEventListener("click", function () { go(0); });
  document.getElementById("prev").addEventListener("click", function () { go(state.page - 1); });
  document.getElementById("next").addEventListener("click", function () { go(state.page + 1); });
  document.getElementById("last").addEventListener("click", function () { go(pages() - 1); });

  groupButtons.forEach(function (button) {
    button.addEventListener("click", function () {
      regroup(button.getAttribute("data-group"));
      render();
    });
  });
  if (cols) { regroup(groupBy); }

  app.hidden = false;
  counts();
  update();
  document.body.setAttribute("data-ready", "1");
  window.__reportReadyMs = performance.now();
  window.__reportReady = true;
})();
