// Renders a report view (simulator/report/html/view.py) with Plotly: the tables, the
// figures, and a toggle per device that hides or shows its traces and rows everywhere.
// Shared by the self-contained report and the `llmsim ui` app; uses no network.
"use strict";
const LlmsimViews = (() => {
  const hidden = new Set();          // device labels switched off (kept across updates)
  const NUMBER = /^([-+]?[\d.,]+(e[-+]?\d+)?%?( [a-zA-Z]+)?|n\/a.*|[\d.]+ \S+ \/ .*)$/;  // "208 ms", "1.81", "18 GB / 86 GB"

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value; else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function table(t) {
    const head = el("tr", {}, ...t.headers.map((h) => el("th", {}, h)));
    const cell = (c) => el("td", NUMBER.test(c) ? {"class": "num"} : {}, c);
    const rows = t.rows.map((r) => el("tr", {"data-device": r[0]}, ...r.map(cell)));
    return el("section", {"class": "table", id: "table-" + t.id}, el("h2", {}, t.title),
              el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)),
              t.caption ? el("p", {"class": "caption"}, t.caption) : "");
  }

  function visibility(traces) {
    return traces.map((t) => (t.meta === null || t.meta === undefined || !hidden.has(t.meta)));
  }

  function applyToggles(root) {
    for (const div of root.querySelectorAll(".chart")) {
      if (div.data) Plotly.restyle(div, {visible: visibility(div.data)});
    }
    for (const row of root.querySelectorAll("tr[data-device]")) {
      const label = row.getAttribute("data-device");
      const device = [...hidden].find((h) => label === h || label.startsWith(h + " "));
      row.classList.toggle("off", device !== undefined);
    }
  }

  function toggles(root, view) {
    const box = el("div", {"class": "toggles", id: "toggles"}, el("span", {}, "devices: "));
    for (const d of view.devices) {
      const input = el("input", {type: "checkbox", "data-device": d.label});
      input.checked = !hidden.has(d.label);
      input.addEventListener("change", () => {
        if (input.checked) hidden.delete(d.label); else hidden.add(d.label);
        applyToggles(root);
      });
      box.append(el("label", {style: "border-color:" + d.colour}, input, " " + d.label));
    }
    return box;
  }

  function figure(f) {
    const div = el("div", {"class": "chart", id: "chart-" + f.id});
    const card = el("section", {"class": "figure"}, el("h2", {}, f.title), div, el("p", {"class": "caption"}, f.caption));
    return {card, div, f};
  }

  function render(root, view) {
    const charts = view.figures.map(figure);
    root.replaceChildren(
      el("header", {}, el("h1", {id: "title"}, view.title), el("p", {"class": "subtitle"}, view.subtitle),
         toggles(root, view)),
      ...view.tables.slice(0, 1).map(table),
      el("div", {"class": "grid"}, ...charts.map((c) => c.card)),
      ...view.tables.slice(1).map(table),
      view.notes.length ? el("section", {"class": "notes"}, el("h2", {}, "Notes"),
                             el("ul", {}, ...view.notes.map((n) => el("li", {}, n)))) : "",
      el("footer", {}, "drawn by " + view.generator + " with plotly.js " + Plotly.version));
    for (const c of charts) {
      const shown = visibility(c.f.figure.data);
      const traces = c.f.figure.data.map((t, i) => ({...t, visible: shown[i]}));
      Plotly.newPlot(c.div, traces, c.f.figure.layout, {displaylogo: false, responsive: true});
    }
    applyToggles(root);
  }

  return {render, hidden};
})();
