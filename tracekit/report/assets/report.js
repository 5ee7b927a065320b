/* tracekit report: charts (Chart.js, inlined), sortable and collapsible tables, the model drawing. No requests. */
(function () {
  "use strict";
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function fmtCount(v) {
    if (v === null || v === undefined || !v) return "";
    var units = [["T", 1e12], ["G", 1e9], ["M", 1e6], ["K", 1e3]];
    for (var i = 0; i < units.length; i++) if (Math.abs(v) >= units[i][1]) return (v / units[i][1]).toFixed(2) + units[i][0];
    return String(Math.round(v));
  }
  function fmtMs(v) { return v === null || v === undefined ? "" : (v >= 100 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3)) + " ms"; }
  function fmtPct(v) { return v === null || v === undefined ? "" : (100 * v).toFixed(1) + "%"; }
  function shapeText(list) {
    if (!list || !list.length) return "";
    return list.map(function (s) { return Array.isArray(s) ? "[" + s.join(",") + "]" : String(s); }).join(" ");
  }

  /* ---- charts ---- */
  function drawCharts() {
    if (typeof Chart === "undefined") return;
    $$("script.chart-spec").forEach(function (node) {
      var spec = JSON.parse(node.textContent);
      var canvas = document.getElementById(node.getAttribute("data-chart"));
      var unit = spec.unit;
      new Chart(canvas, {
        type: "bar",
        data: {
          labels: spec.labels,
          datasets: spec.datasets.map(function (d) {
            return { label: d.label, data: d.data, backgroundColor: d.color, borderWidth: 0, maxBarThickness: 22 };
          })
        },
        options: {
          indexAxis: spec.horizontal ? "y" : "x", responsive: true, maintainAspectRatio: false, animation: false,
          plugins: {
            legend: { display: spec.datasets.length > 1, position: "top", align: "start" },
            title: { display: !!spec.title, text: spec.title, align: "start" },
            tooltip: { callbacks: { label: function (c) {
              var v = spec.horizontal ? c.parsed.x : c.parsed.y;
              return c.dataset.label + ": " + (v === null ? "n/a" : v.toLocaleString(undefined, { maximumFractionDigits: 3 })) + " " + unit;
            } } }
          },
          scales: (function () {
            var value = { stacked: spec.stacked, beginAtZero: true, title: { display: true, text: unit } };
            var cat = { stacked: spec.stacked, ticks: { autoSkip: false, font: { size: 11 } } };
            return spec.horizontal ? { x: value, y: cat } : { x: cat, y: value };
          })()
        }
      });
    });
  }

  /* ---- plain sortable tables ---- */
  function cellKey(td) {
    var v = td.getAttribute("data-v");
    if (v !== null) return parseFloat(v);
    var t = td.textContent.replace(/[,%x+]/g, "").replace(/ ms$| MB$/, "").trim();
    var m = /^(-?[0-9.]+)\s*([KMGT]?)$/.exec(t);
    if (m) return parseFloat(m[1]) * ({ "": 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12 })[m[2]];
    return t === "" ? null : t.toLowerCase();
  }
  function compare(a, b, desc) {
    if (a === null && b === null) return 0;
    if (a === null) return 1;
    if (b === null) return -1;
    var r = typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b));
    return desc ? -r : r;
  }
  function markSorted(th, desc) {
    $$("th", th.parentNode).forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
    th.classList.add(desc ? "sorted-desc" : "sorted-asc");
  }
  function sortableTables() {
    $$("table.sortable").forEach(function (table) {
      $$("thead th", table).forEach(function (th, col) {
        th.addEventListener("click", function () {
          var desc = !th.classList.contains("sorted-desc");
          var body = table.tBodies[0];
          var rows = Array.prototype.slice.call(body.rows);
          rows.sort(function (a, b) { return compare(cellKey(a.cells[col]), cellKey(b.cells[col]), desc); });
          rows.forEach(function (r) { body.appendChild(r); });
          markSorted(th, desc);
        });
      });
    });
  }

  /* ---- module tree table: fold/unfold, sort siblings ---- */
  function treeTables() {
    $$("table.tree").forEach(function (table) {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var byId = {}, kids = {};
      rows.forEach(function (r) {
        byId[r.dataset.id] = r;
        (kids[r.dataset.parent] = kids[r.dataset.parent] || []).push(r);
      });
      function setHidden(id, hide) {
        (kids[id] || []).forEach(function (c) {
          c.classList.toggle("hidden", hide);
          setHidden(c.dataset.id, hide || c.classList.contains("folded"));
        });
      }
      rows.forEach(function (r) {
        var b = $("button.tg", r);
        if (!b) return;
        b.addEventListener("click", function (ev) {
          ev.stopPropagation();
          var fold = !r.classList.contains("folded");
          r.classList.toggle("folded", fold);
          b.textContent = fold ? "\u25b8" : "\u25be";
          setHidden(r.dataset.id, fold);
        });
      });
      $$("thead th", table).forEach(function (th, col) {
        th.addEventListener("click", function () {
          var desc = !th.classList.contains("sorted-desc");
          var order = [];
          function visit(pid) {
            var list = (kids[pid] || []).slice();
            if (col === 0) list.sort(function (a, b) { return (+a.dataset.id) - (+b.dataset.id); });
            else list.sort(function (a, b) { return compare(cellKey(a.cells[col]), cellKey(b.cells[col]), desc); });
            list.forEach(function (r) { order.push(r); visit(r.dataset.id); });
          }
          visit("-1");
          order.forEach(function (r) { body.appendChild(r); });
          markSorted(th, col === 0 ? false : desc);
        });
      });
    });
  }

  /* ---- the model drawing ---- */
  function heat(share, maxShare, faint) {
    if (share === null || share === undefined || !maxShare) return "#ffffff";
    var t = Math.max(0, Math.min(1, share / maxShare)) * (faint ? 0.3 : 1);
    var stops = [[255, 255, 255], [253, 217, 181], [244, 162, 89], [225, 87, 89]];
    var x = t * (stops.length - 1), i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
    var c = stops[i].map(function (v, k) { return Math.round(v + (stops[i + 1][k] - v) * f); });
    return "rgb(" + c.join(",") + ")";
  }
  function sameShapes(a, b) { return JSON.stringify(a || []) === JSON.stringify(b || []); }
  function arrow(shapes, joined, tip) {
    var a = el("div", "arrow" + (joined ? "" : " gap"));
    a.appendChild(el("div", "ln"));
    var text = shapeText(shapes);
    if (text) { a.appendChild(el("div", "lb", text)); a.appendChild(el("div", "ln")); }
    a.appendChild(el("div", "hdn"));
    a.title = tip;
    return a;
  }
  function stats(n) {
    var parts = [];
    if (n.params) parts.push(fmtCount(n.params) + (n.params_from ? "~" : "") + " params");
    else if (n.params_from) parts.push("params ?");
    if (n.flops) parts.push(fmtCount(n.flops) + " FLOPs");
    else if (n.flops_from && n.flops_from.indexOf("unknown") === 0) parts.push("FLOPs ?");
    if (n.call_ms !== null && n.call_ms !== undefined) parts.push(fmtMs(n.call_ms) + (n.repeat ? " per pass" : " per call"));
    if (n.share !== null && n.share !== undefined) parts.push(fmtPct(n.share) + " of step");
    return parts.join(" · ");
  }
  function initModel(root) {
    var data = JSON.parse($("#model-data").textContent);
    var canvas = $(".model", root), panel = $(".details", root);
    var expanded = new Set(), unfolded = new Set(), selected = null;
    var idOf = new Map(), next = 0;
    function key(n) { if (!idOf.has(n)) idOf.set(n, "n" + (next++)); return idOf.get(n); }
    /* open levels while the drawing stays small */
    (function defaults() {
      var level = data.roots.slice(), shown = level.length;
      while (level.length) {
        var nextLevel = [];
        level.forEach(function (n) { nextLevel = nextLevel.concat(n.children || []); });
        if (!nextLevel.length || shown + nextLevel.length > 48) break;
        level.forEach(function (n) { if (n.children && n.children.length) expanded.add(key(n)); });
        shown += nextLevel.length;
        level = nextLevel;
      }
    })();
    function details(n) {
      panel.innerHTML = "";
      panel.appendChild(el("h3", null, n.repeat ? n.type + " \u00d7 " + n.repeat : n.name));
      var dl = el("dl", "facts");
      function row(k, v) { if (v === "" || v === null || v === undefined) return; dl.appendChild(el("dt", null, k)); dl.appendChild(el("dd", null, v)); }
      row("path", n.path); row("type", n.type);
      row("input", shapeText(n["in"])); row("last call input", shapeText(n.last_in)); row("output", shapeText(n.out));
      row(n.repeat ? "params (all)" : "params", n.params ? Math.round(n.params).toLocaleString() : "");
      row(n.repeat ? "FLOPs fwd (all)" : "FLOPs fwd", fmtCount(n.flops)); row("FLOPs bwd", fmtCount(n.flops_bwd));
      row("calls", n.calls); row("first call", fmtMs(n.first_ms)); row("steady call", fmtMs(n.steady_ms));
      row("forward total", fmtMs(n.total_ms)); row("backward total", fmtMs(n.backward_ms));
      row("device fwd", fmtMs(n.device_fwd_ms)); row("device bwd", fmtMs(n.device_bwd_ms));
      row("achieved", n.tflops ? n.tflops.toFixed(2) + " TFLOP/s" : ""); row("share of step", fmtPct(n.share));
      row("params from", n.params_from); row("FLOPs from", n.flops_from);
      panel.appendChild(dl);
      if (n.repeat) {
        panel.appendChild(el("div", "note", n.repeat + " identical blocks (same type, shapes, params and children):"));
        var ol = el("ol");
        n.members.forEach(function (m) { ol.appendChild(el("li", null, m.name + "  " + fmtMs(m.call_ms) + "  " + fmtPct(m.share))); });
        panel.appendChild(ol);
      }
    }
    function block(n) {
      var k = key(n), kids = n.children || [];
      var isOpen = expanded.has(k) && kids.length;
      var b = el("div", "blk" + (kids.length ? "" : " leaf") + (n.repeat ? " rep" : "") + (selected === k ? " sel" : ""));
      b.style.background = heat(n.share, data.max_share, isOpen);
      var full = heat(n.share, data.max_share);
      if (isOpen && full !== "#ffffff") b.style.borderLeftColor = full;
      b.dataset.path = n.path;
      b.dataset.type = n.type;
      if (n.repeat) b.dataset.repeat = n.repeat;
      var hd = el("div", "hd");
      if (kids.length) hd.appendChild(el("span", "tgl", isOpen ? "\u25be" : "\u25b8"));
      hd.appendChild(el("b", null, n.repeat ? n.type : n.name));
      if (n.repeat) hd.appendChild(el("span", "x", "\u00d7 " + n.repeat));
      else hd.appendChild(el("span", "ty", n.type));
      if (n.repeat) {
        var u = el("button", "unfold", "unfold " + n.repeat);
        u.title = "draw every one of the " + n.repeat + " blocks";
        u.addEventListener("click", function (ev) { ev.stopPropagation(); unfolded.add(k); draw(); });
        hd.appendChild(u);
      }
      hd.title = n.path + " (" + n.type + ")\ninput " + shapeText(n["in"]) + "\noutput " + shapeText(n.out) + "\nclick: " +
        (kids.length ? "open/close and " : "") + "details";
      hd.addEventListener("click", function () {
        if (kids.length) { if (expanded.has(k)) expanded.delete(k); else expanded.add(k); }
        selected = k; details(n); draw();
      });
      b.appendChild(hd);
      b.appendChild(el("div", "st", stats(n)));
      if (isOpen) {
        var box = el("div", "kids");
        if (n.repeat) box.appendChild(el("div", "note", "inside each of the " + n.repeat + " blocks:"));
        chain(box, kids, n["in"], n.out);
        b.appendChild(box);
      }
      return b;
    }
    function chain(box, list, input, output) {
      var items = [];
      list.forEach(function (n) { if (n.repeat && unfolded.has(key(n))) items = items.concat(n.members); else items.push(n); });
      var prev = input;
      items.forEach(function (n, i) {
        var joined = i > 0 ? sameShapes(prev, n["in"]) : true;
        box.appendChild(arrow(n["in"], joined, joined ? "input " + shapeText(n["in"]) :
          "input " + shapeText(n["in"]) + " differs from the previous block's output " + shapeText(prev) + ": it comes from elsewhere"));
        box.appendChild(block(n));
        prev = n.out;
      });
      if (items.length && output && output.length) box.appendChild(arrow(output, sameShapes(prev, output), "output " + shapeText(output)));
    }
    function draw() {
      canvas.innerHTML = "";
      chain(canvas, data.roots, data.roots.length ? data.roots[0]["in"] : [], null);
      var last = data.roots[data.roots.length - 1];
      if (last && last.out && last.out.length) canvas.appendChild(arrow(last.out, true, "output " + shapeText(last.out)));
    }
    function walk(list, fn) { list.forEach(function (n) { fn(n); walk(n.children || [], fn); if (n.members) walk(n.members, fn); }); }
    $(".expand-all", root).addEventListener("click", function () {
      walk(data.roots, function (n) { if (n.children && n.children.length) expanded.add(key(n)); }); draw();
    });
    $(".collapse-all", root).addEventListener("click", function () {
      expanded.clear(); unfolded.clear(); data.roots.forEach(function (n) { expanded.add(key(n)); }); draw();
    });
    draw();
    if (data.roots.length) details(data.roots[0]);
  }

  function start() {
    drawCharts();
    sortableTables();
    treeTables();
    $$(".model-wrap").forEach(initModel);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
