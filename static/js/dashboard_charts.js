/* A small hand-written SVG chart renderer for the dashboards: line and bar charts, no dependencies.
 * renderLineChart(el, {labels, series: [{name, values, color}], yMin, yMax, yFormat})
 * renderBarChart(el, {labels, values, colors, yFormat})
 * Each renders one <svg class="chart-svg" data-rendered="true"> into `el`, replacing what was there. */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#2451d6", "#d97706", "#1b7f3b", "#b3261e", "#7c3aed", "#0e7490"];
  var W = 560, H = 240, PAD = { left: 48, right: 12, top: 14, bottom: 42 };

  function node(name, attrs, parent) {
    var el = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(el);
    return el;
  }
  function text(parent, x, y, content, attrs) {
    var t = node("text", Object.assign({ x: x, y: y, "font-size": 11, fill: "#5b6475" }, attrs || {}), parent);
    t.textContent = content;
    return t;
  }
  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function frame(el, title) {
    el.innerHTML = "";
    var svg = node("svg", { viewBox: "0 0 " + W + " " + H, class: "chart-svg", role: "img", "aria-label": title || "chart" });
    el.appendChild(svg);
    return svg;
  }
  function axes(svg, yMin, yMax, fmt, labels) {
    var plotH = H - PAD.top - PAD.bottom;
    for (var i = 0; i <= 4; i++) {
      var v = yMin + (yMax - yMin) * i / 4, y = PAD.top + plotH - plotH * i / 4;
      node("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, stroke: "#dde1e8" }, svg);
      text(svg, PAD.left - 6, y + 4, fmt(v), { "text-anchor": "end" });
    }
    var step = Math.max(1, Math.ceil(labels.length / 8));
    labels.forEach(function (label, idx) {
      if (idx % step) return;
      var anchor = labels.length > 1 && idx === labels.length - 1 ? "end" : idx === 0 && labels.length > 1 ? "start" : "middle";
      text(svg, xAt(idx, labels.length), H - PAD.bottom + 16, label, { "text-anchor": anchor });
    });
  }
  function xAt(idx, n) {
    var plotW = W - PAD.left - PAD.right;
    return PAD.left + (n <= 1 ? plotW / 2 : plotW * idx / (n - 1));
  }
  function empty(svg, message) {
    text(svg, W / 2, H / 2, message || "no data yet", { "text-anchor": "middle", "font-size": 13 });
  }
  function legend(svg, series) {
    var x = PAD.left;
    series.forEach(function (s, i) {
      var color = s.color || PALETTE[i % PALETTE.length];
      node("rect", { x: x, y: H - 14, width: 10, height: 10, fill: color }, svg);
      text(svg, x + 14, H - 5, s.name);
      x += 24 + s.name.length * 6.5;
    });
  }

  window.renderLineChart = function (el, opts) {
    var svg = frame(el, opts.title);
    var labels = opts.labels || [], series = opts.series || [];
    var all = [];
    series.forEach(function (s) { s.values.forEach(function (v) { if (v !== null && v !== undefined) all.push(v); }); });
    var fmt = opts.yFormat || function (v) { return Math.round(v * 100) / 100; };
    var yMin = opts.yMin !== undefined ? opts.yMin : Math.min(0, Math.min.apply(null, all.length ? all : [0]));
    var yMax = opts.yMax !== undefined ? opts.yMax : niceMax(Math.max.apply(null, all.length ? all : [1]));
    if (yMax <= yMin) yMax = yMin + 1;
    axes(svg, yMin, yMax, fmt, labels);
    var plotH = H - PAD.top - PAD.bottom;
    var yAt = function (v) { return PAD.top + plotH - plotH * (v - yMin) / (yMax - yMin); };
    series.forEach(function (s, i) {
      var color = s.color || PALETTE[i % PALETTE.length], d = "", pen = false;
      s.values.forEach(function (v, idx) {
        if (v === null || v === undefined) { pen = false; return; }
        d += (pen ? " L" : " M") + xAt(idx, s.values.length).toFixed(1) + " " + yAt(v).toFixed(1);
        pen = true;
        node("circle", { cx: xAt(idx, s.values.length), cy: yAt(v), r: 2.5, fill: color, class: "chart-point" }, svg);
      });
      if (d) node("path", { d: d, fill: "none", stroke: color, "stroke-width": 2, class: "chart-line" }, svg);
    });
    if (!all.length) empty(svg, opts.emptyMessage);
    legend(svg, series);
    svg.setAttribute("data-rendered", "true");
    return svg;
  };

  window.renderBarChart = function (el, opts) {
    var svg = frame(el, opts.title);
    var labels = opts.labels || [], values = opts.values || [];
    var fmt = opts.yFormat || function (v) { return Math.round(v * 100) / 100; };
    var present = values.filter(function (v) { return v !== null && v !== undefined; });
    var yMax = opts.yMax !== undefined ? opts.yMax : niceMax(Math.max.apply(null, present.length ? present : [1]));
    var plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
    for (var i = 0; i <= 4; i++) {
      var y = PAD.top + plotH - plotH * i / 4;
      node("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, stroke: "#dde1e8" }, svg);
      text(svg, PAD.left - 6, y + 4, fmt(yMax * i / 4), { "text-anchor": "end" });
    }
    var slot = plotW / Math.max(1, values.length);
    values.forEach(function (v, idx) {
      var h = v ? plotH * v / yMax : 0, x = PAD.left + slot * idx + slot * 0.15;
      var color = (opts.colors && opts.colors[idx]) || PALETTE[idx % PALETTE.length];
      node("rect", { x: x, y: PAD.top + plotH - h, width: slot * 0.7, height: h, fill: color, class: "chart-bar" }, svg);
      text(svg, x + slot * 0.35, PAD.top + plotH - h - 4, v === null || v === undefined ? "–" : fmt(v), { "text-anchor": "middle", fill: "#1d2330" });
      text(svg, x + slot * 0.35, H - PAD.bottom + 16, labels[idx], { "text-anchor": "middle" });
    });
    if (!present.length) empty(svg, opts.emptyMessage);
    svg.setAttribute("data-rendered", "true");
    return svg;
  };
})();
