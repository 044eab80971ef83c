// The run explorer's own script: draws graphs (laid out by dagre) and curves (uPlot) from the JSON the server
// embeds in each page, and re-draws them when htmx swaps a refreshed fragment in. No inline scripts anywhere.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const NODE_HEIGHT = 44;
  // Wide enough for the node's name in the 12px bold label font (about 7.2 px a character), at least 150 px.
  function nodeWidth(node) { return Math.max(150, 24 + 7.2 * String(node.label || node.id).length); }

  function element(name, attributes, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    if (parent) parent.appendChild(node);
    return node;
  }

  function seconds(value) {
    if (value === null || value === undefined) return "";
    return value < 60 ? value.toFixed(1) + " s" : Math.floor(value / 60) + " min " + Math.round(value % 60) + " s";
  }

  // A graph: {nodes: [{id, state, seconds, component, href, label?}], edges: [[from, to], ...]}.
  function drawGraph(container) {
    const source = document.getElementById(container.dataset.graph);
    if (!source || typeof dagre === "undefined") return;
    const data = JSON.parse(source.textContent);
    if (!data.nodes.length) {  // a run that is still loading TensorFlow has no pipeline to draw yet
      const note = document.createElement("p");
      note.className = "muted pad";
      note.textContent = "Loading TensorFlow and building the pipeline…";
      container.replaceChildren(note);
      return;
    }
    const graph = new dagre.graphlib.Graph();
    graph.setGraph({ rankdir: container.dataset.direction || "TB", nodesep: 16, ranksep: 34, marginx: 8, marginy: 8 });
    graph.setDefaultEdgeLabel(function () { return {}; });
    for (const node of data.nodes) graph.setNode(node.id, { width: nodeWidth(node), height: NODE_HEIGHT, data: node });
    for (const [from, to] of data.edges) if (graph.hasNode(from) && graph.hasNode(to)) graph.setEdge(from, to);
    dagre.layout(graph);

    const size = graph.graph();
    const svg = element("svg", {
      viewBox: "0 0 " + Math.ceil(size.width) + " " + Math.ceil(size.height),
      width: Math.ceil(size.width), height: Math.ceil(size.height), role: "img", class: "graph-svg",
    });
    const defs = element("defs", {}, svg);
    const marker = element("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    element("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }, marker);
    for (const edge of graph.edges()) {
      const points = graph.edge(edge).points.map(function (p) { return p.x + "," + p.y; });
      element("polyline", { points: points.join(" "), class: "edge", "marker-end": "url(#arrow)" }, svg);
    }
    for (const id of graph.nodes()) {
      const box = graph.node(id);
      const node = box.data;
      const group = node.href ? element("a", { href: node.href }, svg) : element("g", {}, svg);
      group.setAttribute("class", "node state-" + String(node.state).replace(/ /g, "-"));
      group.setAttribute("data-node", node.id);
      const x = box.x - box.width / 2;
      const y = box.y - NODE_HEIGHT / 2;
      element("rect", { x: x, y: y, width: box.width, height: NODE_HEIGHT, rx: 6 }, group);
      const title = element("text", { x: x + 10, y: y + 18, class: "label" }, group);
      title.textContent = node.label || node.id;
      const detail = element("text", { x: x + 10, y: y + 35, class: "detail" }, group);
      detail.textContent = [node.state, seconds(node.seconds)].filter(Boolean).join(" · ");
      const tip = element("title", {}, group);
      tip.textContent = (node.component ? node.component + ": " : "") + node.id;
    }
    container.replaceChildren(svg);
  }

  // A chart: {title, x: "label", y: "label", series: [{label, points: [[x, y], ...]}], square?: true}.
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
  function drawChart(container) {
    const source = document.getElementById(container.dataset.chart);
    if (!source || typeof uPlot === "undefined") return;
    const spec = JSON.parse(source.textContent);
    const xs = Array.from(new Set(spec.series.flatMap(function (s) { return s.points.map(function (p) { return p[0]; }); })))
      .sort(function (a, b) { return a - b; });
    const columns = [xs];
    for (const series of spec.series) {
      const byX = new Map(series.points.map(function (p) { return [p[0], p[1]]; }));
      columns.push(xs.map(function (x) { return byX.has(x) ? byX.get(x) : null; }));
    }
    const width = Math.min(container.clientWidth || 420, 520);
    const options = {
      title: spec.title || "",
      width: width,
      height: spec.square ? width : Math.round(width * 0.62),
      scales: { x: { time: false } },
      axes: [{ label: spec.x || "" }, { label: spec.y || "" }],
      series: [{ label: spec.x || "x" }].concat(spec.series.map(function (s, i) {
        return { label: s.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true,
          points: { show: s.points.length < 40 } };
      })),
    };
    container.replaceChildren();
    new uPlot(options, columns, container);
    container.setAttribute("data-drawn", "yes");
  }

  function drawAll(root) {
    root.querySelectorAll("[data-graph]").forEach(drawGraph);
    root.querySelectorAll("[data-chart]").forEach(drawChart);
    root.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (event) { drawAll(event.detail.elt.parentNode || document); });
  window.taxiExplorer = { drawAll: drawAll };
})();
