// `llmsim ui`: each change of an input asks /api/report for the view and redraws it; a bad
// input shows the one-line message the API answers (the CLI's) and keeps the last view.
"use strict";
(() => {
  const form = document.getElementById("inputs");
  const root = document.getElementById("report");
  const errorBox = document.getElementById("error");
  const status = document.getElementById("status");
  let pending = null;
  let asked = 0;

  function fill(select, names, chosen) {
    select.replaceChildren(...names.map((n) => new Option(n, n, false, n === chosen)));
  }

  function query() {
    const params = new URLSearchParams();
    for (const input of form.querySelectorAll("[name]")) {
      if (input.value.trim() !== "") params.set(input.name, input.value.trim());
    }
    return params;
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  async function answer(response) {
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  async function update() {
    const mine = ++asked;
    status.textContent = "updating…";
    try {
      const view = await answer(await fetch("/api/report?" + query()));
      if (mine !== asked) return;
      errorBox.hidden = true;
      LlmsimViews.render(root, view);
      status.textContent = "";
    } catch (err) {
      if (mine !== asked) return;
      showError(err.message);
      status.textContent = "";
    }
  }

  async function upload(input) {
    const file = input.files[0];
    if (!file) return;
    const body = new FormData();
    body.append("kind", input.dataset.kind);
    body.append("file", file);
    try {
      const made = await answer(await fetch("/api/upload", {method: "POST", body}));
      if (input.dataset.kind === "model") {
        const select = document.getElementById("model");
        select.append(new Option(made.label, made.name, true, true));
      } else {
        const hw = document.getElementById("hardware");
        hw.value = hw.value.trim() ? hw.value.trim() + "," + made.name : made.name;
      }
      update();
    } catch (err) {
      showError(err.message);
    }
  }

  form.addEventListener("input", (event) => {
    if (event.target.type === "file") return;
    clearTimeout(pending);
    pending = setTimeout(update, 250);
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  for (const input of form.querySelectorAll("input[type=file]")) input.addEventListener("change", () => upload(input));

  fetch("/api/names").then(answer).then((names) => {
    fill(document.getElementById("model"), names.models, names.default_model);
    fill(document.getElementById("stack"), names.stacks, names.default_stack);
    update();
  }).catch((err) => showError(err.message));
})();
