// The lineage page: fetch the graph JSON, lay it out left to right with dagre, draw it as SVG.
// Every user-supplied string goes in through textContent or an attribute, never as markup.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const AUTO_COLLAPSE = 1500; // above this many nodes the graph starts collapsed by artifact and job
  const READABLE = 0.8; // the first view zooms no further out than this (Fit shows everything)
  const box = document.getElementById("graph");
  const notice = document.getElementById("graph-notice");
  const details = document.getElementById("details");
  const collapseBox = document.getElementById("collapse");
  const root = box.dataset.root;
  const nodes = new Map(); // id -> node, as /ui/graph.json sends them
  const edges = new Map(); // "source\u0000target" -> edge
  let svg = null;
  let view = null; // the drawn graph's bounds and the current viewBox
  let selected = null;
  let rootAt = null; // where the version the page was opened at was drawn
  const stats = { nodes: 0, edges: 0, layoutMs: 0, renderMs: 0, fetchMs: 0 };
  window.headwaterGraph = stats;

  function merge(data) {
    for (const node of data.nodes) if (!nodes.has(node.id)) nodes.set(node.id, node);
    for (const edge of data.edges) {
      const key = edge.source + "\u0000" + edge.target;
      if (!edges.has(key)) edges.set(key, edge);
    }
  }

  function load(url) {
    const started = performance.now();
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (answer) {
      return answer.json().then(function (body) {
        if (!answer.ok) throw new Error(body.message || "the graph could not be loaded");
        stats.fetchMs = performance.now() - started;
        return body;
      });
    });
  }

  function say(text) {
    notice.textContent = text;
    notice.hidden = !text;
  }

  // -- what is drawn: every node, or versions collapsed by artifact and runs by job ---------------
  function visible() {
    if (!collapseBox.checked) {
      return { nodes: Array.from(nodes.values()), edges: Array.from(edges.values()) };
    }
    const groups = new Map();
    const groupOf = new Map();
    for (const node of nodes.values()) {
      const key = node.kind === "version" ? "a:" + node.name : "j:" + node.namespace + "/" + node.job;
      groupOf.set(node.id, key);
      let group = groups.get(key);
      if (!group) {
        group = node.kind === "version"
          ? { id: key, kind: "artifact", name: node.name, type: node.type, count: 0, aliases: new Set(), root: false, members: [] }
          : { id: key, kind: "job", job: node.job, namespace: node.namespace, orchestrator: node.orchestrator, status: node.status, count: 0, members: [] };
        groups.set(key, group);
      }
      group.count += 1;
      group.members.push(node);
      if (node.kind === "version") {
        for (const alias of node.aliases) group.aliases.add(alias);
        if (node.ref === root) group.root = true;
      } else if (node.status === "failed") {
        group.status = "failed";
      }
    }
    const joined = new Map();
    for (const edge of edges.values()) {
      const source = groupOf.get(edge.source), target = groupOf.get(edge.target);
      if (!source || !target || source === target) continue;
      const key = source + "\u0000" + target;
      const found = joined.get(key);
      if (found) found.exact = found.exact && edge.exact;
      else joined.set(key, { source: source, target: target, exact: edge.exact });
    }
    for (const group of groups.values()) if (group.aliases) group.aliases = Array.from(group.aliases).sort();
    return { nodes: Array.from(groups.values()), edges: Array.from(joined.values()) };
  }

  // A location's last two path segments say what it is (raw/customers_eu.csv); the tooltip and
  // the details panel have the whole URI.
  function short(name) {
    if (name.indexOf("://") < 0) return name;
    const parts = name.split("://")[1].split("/").filter(Boolean);
    return parts.length > 2 ? parts.slice(-2).join("/") : parts.join("/");
  }

  function title(node) {
    if (node.kind === "version" || node.kind === "artifact") return short(node.name);
    return node.job;
  }

  function subtitle(node) {
    if (node.kind === "version") return (node.label || "") + (node.type ? " · " + node.type : "");
    if (node.kind === "artifact") return node.count + " version" + (node.count === 1 ? "" : "s") + (node.type ? " · " + node.type : "");
    if (node.kind === "job") return node.orchestrator + " · " + node.count + " run" + (node.count === 1 ? "" : "s");
    return node.orchestrator + " · " + node.status;
  }

  function clip(text, room) {
    return text.length > room ? "…" + text.slice(text.length - room + 1) : text;
  }

  function el(name, attributes, parent) {
    const element = document.createElementNS(SVG, name);
    for (const key in attributes) element.setAttribute(key, attributes[key]);
    if (parent) parent.appendChild(element);
    return element;
  }

  function draw() {
    const shown = visible();
    const started = performance.now();
    const g = new dagre.graphlib.Graph();
    // network-simplex ranks best and costs most: past a few hundred nodes, longest-path
    const ranker = shown.nodes.length > 800 ? "longest-path" : "network-simplex";
    g.setGraph({ rankdir: "LR", nodesep: 12, ranksep: 44, marginx: 16, marginy: 16, ranker: ranker });
    g.setDefaultEdgeLabel(function () { return {}; });
    for (const node of shown.nodes) {
      const isRun = node.kind === "run" || node.kind === "job";
      // room for the name (clipped at 34 characters), or the label line with up to three alias badges
      const badges = (node.aliases || []).slice(0, 3).reduce(function (sum, a) { return sum + a.length * 6 + 11; }, 0);
      const width = Math.max(Math.min(title(node).length, 34) * 7.5, subtitle(node).length * 6.2 + 6 + badges) + 34;
      g.setNode(node.id, { width: Math.min(300, Math.max(120, width)), height: isRun ? 40 : 46, node: node });
    }
    for (const edge of shown.edges) g.setEdge(edge.source, edge.target, { edge: edge });
    dagre.layout(g);
    stats.layoutMs = performance.now() - started;
    render(g, shown);
    stats.renderMs = performance.now() - started - stats.layoutMs;
    stats.nodes = shown.nodes.length;
    stats.edges = shown.edges.length;
  }

  function render(g, shown) {
    box.textContent = "";
    rootAt = null;
    const graph = g.graph();
    svg = el("svg", { class: "lineage", role: "group", "aria-label": "lineage of " + root });
    const defs = el("defs", {}, svg);
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }, marker);
    const layer = el("g", { class: "layer" }, svg);
    const edgeLayer = el("g", { class: "edges" }, layer);
    for (const id of g.edges()) {
      const data = g.edge(id);
      const points = data.points.map(function (p) { return p.x.toFixed(1) + "," + p.y.toFixed(1); });
      const path = el("path", { d: "M" + points.join(" L"), class: "edge" + (data.edge.exact ? "" : " inexact"), "marker-end": "url(#arrow)" }, edgeLayer);
      path.dataset.source = id.v;
      path.dataset.target = id.w;
      if (data.edge.made_from) {
        // The run said this output was made from these of its inputs only.
        path.classList.add("partial");
        el("title", {}, path).textContent = "made from " + data.edge.made_from.join(", ");
      }
    }
    const nodeLayer = el("g", { class: "nodes" }, layer);
    for (const id of g.nodes()) {
      const box_ = g.node(id);
      const node = box_.node;
      const x = box_.x - box_.width / 2, y = box_.y - box_.height / 2;
      const group = el("g", { class: "node " + node.kind, transform: "translate(" + x.toFixed(1) + "," + y.toFixed(1) + ")", tabindex: "0" }, nodeLayer);
      if (node.kind === "version") group.setAttribute("data-ref", node.ref);
      if (node.kind === "run") group.setAttribute("data-run", node.run);
      if (node.kind === "artifact") group.setAttribute("data-artifact", node.name);
      if (node.kind === "job") group.setAttribute("data-job", node.namespace + "/" + node.job);
      group.dataset.id = node.id;
      if (node.orchestrator) group.classList.add("orch-" + String(node.orchestrator).toLowerCase().replace(/[^a-z0-9_-]/g, ""));
      if (node.status) group.classList.add("status-" + node.status);
      if (node.ref === root || node.root) {
        group.classList.add("root");
        rootAt = { x: box_.x, y: box_.y };
      }
      if (node.deleted) group.classList.add("deleted");
      const isRun = node.kind === "run" || node.kind === "job";
      el("rect", { width: box_.width, height: box_.height, rx: isRun ? 20 : 4, class: "shape" }, group);
      if (isRun) el("circle", { cx: 14, cy: box_.height / 2, r: 5, class: "dot" }, group);
      const left = isRun ? 26 : 8;
      const name = el("text", { x: left, y: 17, class: "title" }, group);
      name.textContent = clip(title(node), Math.floor((box_.width - left - 6) / 7));
      const tip = el("title", {}, group);
      tip.textContent = (node.ref || node.name || node.job) + (node.kind === "run" ? " (" + node.run + ")" : "");
      group.setAttribute("aria-label", tip.textContent);
      const sub = el("text", { x: left, y: isRun ? 32 : 33, class: "sub" }, group);
      sub.textContent = subtitle(node);
      if (node.aliases && node.aliases.length) {
        let bx = left + sub.textContent.length * 6.2 + 6;
        for (const alias of node.aliases.slice(0, 3)) {
          const width = alias.length * 6 + 8;
          if (bx + width > box_.width) break;
          const badge = el("g", { class: "badge" + (alias === "latest" ? " latest" : ""), transform: "translate(" + bx.toFixed(1) + ",24)" }, group);
          el("rect", { width: width, height: 13, rx: 6 }, badge);
          const label = el("text", { x: 4, y: 10 }, badge);
          label.textContent = alias;
          bx += width + 3;
        }
      }
    }
    box.appendChild(svg);
    const previous = view;
    view = { x: 0, y: 0, width: graph.width || 100, height: graph.height || 100, full: { width: graph.width || 100, height: graph.height || 100 } };
    const kept = selected ? g.node(selected) : null;
    if (selected && !kept) {
      selected = null;
      details.hidden = true;  // its node is gone (collapsed into its artifact or job)
    }
    if (previous && kept) {
      // A redraw (expand, collapse) keeps the zoom and the selected node in the middle.
      view.width = previous.width;
      view.height = previous.height;
      view.x = kept.x - view.width / 2;
      view.y = kept.y - view.height / 2;
      apply();
    } else {
      fit(true);
    }
    if (selected) highlight(selected);
  }

  // -- pan and zoom ------------------------------------------------------------------------------
  function apply() {
    svg.setAttribute("viewBox", [view.x, view.y, view.width, view.height].map(function (n) { return n.toFixed(1); }).join(" "));
  }

  // The whole graph when it is readable so; else at a readable zoom around the page's version.
  function fit(first) {
    if (!svg) return;
    const w = box.clientWidth || 800, h = box.clientHeight || 600;
    const whole = Math.min(w / view.full.width, h / view.full.height, 1);
    const zoom = first === true && whole < READABLE && rootAt ? READABLE : whole;
    const around = zoom === whole ? { x: view.full.width / 2, y: view.full.height / 2 } : rootAt;
    view.width = w / zoom;
    view.height = h / zoom;
    view.x = clamp(around.x - view.width / 2, view.full.width, view.width);
    view.y = clamp(around.y - view.height / 2, view.full.height, view.height);
    apply();
  }

  function clamp(start, full, shown) {
    if (shown >= full) return (full - shown) / 2;
    return Math.min(Math.max(start, 0), full - shown);
  }

  // Screen to graph coordinates through the SVG's own transform, whatever the box's shape.
  function toGraph(x, y) {
    const point = svg.createSVGPoint();
    point.x = x;
    point.y = y;
    return point.matrixTransform(svg.getScreenCTM().inverse());
  }

  box.addEventListener("wheel", function (event) {
    if (!svg || event.deltaY === 0) return;
    event.preventDefault();
    const factor = event.deltaY > 0 ? 1.15 : 1 / 1.15;
    const at = toGraph(event.clientX, event.clientY);
    view.width *= factor;
    view.height *= factor;
    view.x = at.x - (at.x - view.x) * factor;
    view.y = at.y - (at.y - view.y) * factor;
    apply();
  }, { passive: false });

  let drag = null;
  box.addEventListener("pointerdown", function (event) {
    if (!svg || event.target.closest(".node")) return;
    drag = { x: event.clientX, y: event.clientY, vx: view.x, vy: view.y, scale: 1 / svg.getScreenCTM().a };
    box.setPointerCapture(event.pointerId);
  });
  box.addEventListener("pointermove", function (event) {
    if (!drag) return;
    view.x = drag.vx - (event.clientX - drag.x) * drag.scale;
    view.y = drag.vy - (event.clientY - drag.y) * drag.scale;
    apply();
  });
  for (const name of ["pointerup", "pointercancel", "lostpointercapture"]) {
    box.addEventListener(name, function () { drag = null; });
  }

  // -- selection and the details panel -----------------------------------------------------------
  function highlight(id) {
    for (const element of svg.querySelectorAll(".selected, .near")) element.classList.remove("selected", "near");
    const element = svg.querySelector('[data-id="' + CSS.escape(id) + '"]');
    if (!element) return;
    element.classList.add("selected");
    for (const path of svg.querySelectorAll(".edge")) {
      if (path.dataset.source === id || path.dataset.target === id) path.classList.add("near");
    }
  }

  function link(parent, text, href) {
    const a = document.createElement("a");
    a.textContent = text;
    a.href = href;
    parent.appendChild(a);
    return a;
  }

  function button(parent, text, action) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.addEventListener("click", action);
    parent.appendChild(b);
    return b;
  }

  function row(list, term, value) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value == null || value === "" ? "-" : value;
    list.appendChild(dt);
    list.appendChild(dd);
  }

  const q = encodeURIComponent;

  function show(node) {
    selected = node.id;
    highlight(node.id);
    details.textContent = "";
    details.hidden = false;
    const heading = document.createElement("h2");
    heading.textContent = node.kind === "version" ? node.ref : node.kind === "run" ? node.job : title(node);
    details.appendChild(heading);
    const facts = document.createElement("dl");
    const actions = document.createElement("div");
    actions.className = "actions";
    if (node.kind === "version") {
      row(facts, "kind", "version");
      row(facts, "type", node.type);
      row(facts, "aliases", node.aliases.join(", "));
      row(facts, "tags", node.tags.join(", "));
      row(facts, "digest", node.digest);
      row(facts, "created", node.created_at);
      for (const edge of edges.values()) {
        if (edge.target === node.id && edge.made_from) row(facts, "made from", edge.made_from.join(", "));
      }
      link(actions, "Open version", "/ui/version?ref=" + q(node.ref));
      link(actions, "Lineage from here", "/ui/lineage?ref=" + q(node.ref) + "&direction=both&depth=3");
      button(actions, "Expand neighbours", function () { expand("/ui/graph.json?ref=" + q(node.ref) + "&direction=both&depth=1"); });
    } else if (node.kind === "run") {
      row(facts, "kind", "run (" + node.run_kind + ")");
      row(facts, "orchestrator", node.orchestrator);
      row(facts, "namespace", node.namespace);
      row(facts, "status", node.status);
      row(facts, "started", node.started_at);
      row(facts, "id", node.run);
      link(actions, "Open run", "/ui/run?id=" + q(node.run));
      button(actions, "Expand neighbours", function () { expand("/ui/graph.json?run=" + q(node.run)); });
    } else if (node.kind === "artifact") {
      row(facts, "kind", "artifact, " + node.count + " version(s) collapsed");
      row(facts, "type", node.type);
      row(facts, "aliases", node.aliases.join(", "));
      link(actions, "Open artifact", "/ui/artifact?name=" + q(node.name));
    } else {
      row(facts, "kind", "job, " + node.count + " run(s) collapsed");
      row(facts, "orchestrator", node.orchestrator);
      row(facts, "namespace", node.namespace);
      link(actions, "Runs of this job", "/ui/runs?job=" + q(node.job));
    }
    details.appendChild(facts);
    details.appendChild(actions);
  }

  function expand(url) {
    say("Loading neighbours…");
    load(url).then(function (data) {
      const before = nodes.size;
      merge(data);
      say(nodes.size > before ? "Added " + (nodes.size - before) + " node(s)." : "No new neighbours.");
      draw();
    }).catch(function (err) { say(err.message); });
  }

  function pick(event) {
    const element = event.target.closest(".node");
    if (!element) return null;
    const id = element.dataset.id;
    const shown = visible().nodes.find(function (n) { return n.id === id; });
    return shown || null;
  }

  box.addEventListener("click", function (event) {
    const node = pick(event);
    if (node) show(node);
  });
  box.addEventListener("dblclick", function (event) {
    const node = pick(event);
    if (node && node.kind === "version") window.location.href = "/ui/version?ref=" + q(node.ref);
    if (node && node.kind === "run") window.location.href = "/ui/run?id=" + q(node.run);
  });
  box.addEventListener("keydown", function (event) {
    if (event.key !== "Enter") return;
    const node = pick(event);
    if (node) show(node);
  });
  collapseBox.addEventListener("change", function () {
    say(collapseBox.checked ? "Versions are collapsed by artifact and runs by job." : "");
    draw();
  });
  document.getElementById("fit").addEventListener("click", function () { fit(false); });

  // The server draws at most HEADWATER_UI_MAX_NODES nodes: past that it sends the nearest hops
  // and what it left out.
  function leftOut(cut) {
    const count = function (n) { return n.toLocaleString("en-US"); };
    const hops = function (n) { return n + " hop" + (n === 1 ? "" : "s"); };
    const parts = cut.sides.map(function (side) {
      return side.direction + ", " + count(side.total) + " versions and runs over " + hops(side.hops) +
        ": the nearest " + hops(side.depth) + " drawn";
    });
    const command = "headwater " + cut.sides[0].direction + " " + root + " --refs";
    return "Too large to draw whole (over " + count(cut.max_nodes) + " nodes): " + parts.join("; ") +
      " (" + count(cut.shown) + " nodes). Pick a smaller depth, or list every ref with: " + command;
  }

  load(box.dataset.src).then(function (data) {
    merge(data);
    const notes = [];
    if (data.truncated) notes.push(leftOut(data.truncated));
    if (nodes.size > AUTO_COLLAPSE) {
      collapseBox.checked = true;
      notes.push(nodes.size + " nodes: collapsed by artifact (versions) and job (runs) to stay readable. Untick “Collapse” to see every node.");
    }
    say(notes.join(" "));
    draw();
    box.dataset.ready = "1";
  }).catch(function (err) {
    box.textContent = "";
    const p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.textContent = err.message;
    box.appendChild(p);
    box.dataset.ready = "error";
  });
})();
