// banditkit marketer page: plain JS, no build step, no third-party code.
// The API key lives only in this closure (never a cookie, never localStorage):
// every request sends it as an Authorization header, which a cross-site page
// cannot make the browser attach. Reloading the page signs out.
"use strict";

(function () {
  let apiKey = null;
  let titles = [];
  let current = null;          // the selected title's id
  let variants = [];
  let themes = [];             // the catalogue's theme vocabulary
  let openForms = new Set();   // variants whose tag form is open, kept across re-renders
  let shownReport = null;      // the performance report on screen, redrawn when labels change
  let shownInsights = null;    // the breakdown on screen, redrawn when labels change
  let glossary = {};           // "Namespace.feature" -> what it means (static/glossary.json)
  const VISUAL_TAGS = ["closeup", "group", "no-people", "dark", "bright", "warm", "cool",
                       "text-heavy", "minimal"];
  const COLORS = ["#e50914", "#46d369", "#6ab0ff", "#f5a623", "#c77dff", "#00c2c7",
                  "#ff7eb6", "#b8e986", "#ffd27a", "#8d99ae"];
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "style") {
        // CSSOM, not a style attribute: the page's CSP allows no inline styles.
        for (const declaration of value.split(";")) {
          const at = declaration.indexOf(":");
          if (at > 0) node.style.setProperty(declaration.slice(0, at).trim(), declaration.slice(at + 1).trim());
        }
      }
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function say(text, isError) {
    const box = $("message");
    box.textContent = text || "";
    box.className = isError ? "error" : "";
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const headers = { "Authorization": "Bearer " + apiKey };
    let payload;
    if (body instanceof FormData) {
      payload = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const response = await fetch(path, { method, headers, body: payload,
                                          credentials: "omit", cache: "no-store" });
    if (response.status === 204) return null;
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const message = data && data.error ? data.error.message : response.statusText;
      throw new ApiError(response.status, message || ("HTTP " + response.status));
    }
    return data;
  }

  function colorOf(variantId) {
    const index = variants.findIndex((v) => v.id === variantId);
    return COLORS[(index < 0 ? variants.length : index) % COLORS.length];
  }

  // A variant's name on the page: its label (its id, in a tooltip, for support).
  function labelOf(variantId) {
    const variant = variants.find((v) => v.id === variantId);
    return variant ? variant.label : variantId;
  }

  function variantUrl(variantId) {
    return "/v1/catalogue/titles/" + encodeURIComponent(current) + "/variants/" + variantId;
  }

  function words(text) {
    return text.split(",").map((w) => w.trim()).filter(Boolean);
  }

  function pct(value, digits) {
    return value === null || value === undefined ? "–" : (100 * value).toFixed(digits ?? 1) + "%";
  }

  // ------------------------------------------------------------------ sign in

  async function signIn(event) {
    event.preventDefault();
    const typed = $("key").value.trim();
    if (!typed) { say("Type an API key with the marketer role.", true); return; }
    apiKey = typed;
    try {
      const data = await api("GET", "/v1/catalogue/titles");
      $("key").value = "";
      $("signin").hidden = true;
      $("who").hidden = false;
      $("who-text").textContent = "Signed in · key …" + typed.slice(-4);
      $("app").hidden = false;
      document.body.dataset.signedIn = "true";
      say("");
      titles = data.titles;
      themes = (await api("GET", "/v1/catalogue/themes")).themes;
      renderTitles();
    } catch (error) {
      apiKey = null;
      say(error.status === 401 ? "That key is not valid." :
          error.status === 403 ? "That key's role may not manage artwork; use a marketer key." :
          "Sign-in failed: " + error.message, true);
    }
  }

  function signOut() {
    apiKey = null; current = null; titles = []; variants = []; themes = []; shownReport = null;
    shownInsights = null;
    $("app").hidden = true; $("who").hidden = true; $("signin").hidden = false;
    $("title-panel").hidden = true;
    delete document.body.dataset.signedIn;
    say("Signed out.");
  }

  // ------------------------------------------------------------------ titles

  async function loadTitles() {
    titles = (await api("GET", "/v1/catalogue/titles")).titles;
    renderTitles();
  }

  function renderTitles() {
    const list = $("titles");
    list.replaceChildren();
    for (const title of titles) {
      const button = el("button", {
        type: "button", "data-title": title.id,
        class: title.id === current ? "selected" : "",
        onclick: () => selectTitle(title.id),
      }, title.name, el("span", { class: "muted", text: " · " + title.activeVariantCount +
                                                        "/" + title.variantCount }));
      list.append(el("li", {}, button));
    }
    if (!titles.length) list.append(el("li", { class: "muted", text: "No titles yet." }));
  }

  async function createTitle(event) {
    event.preventDefault();
    const id = $("title-id").value.trim();
    const name = $("title-name").value.trim();
    const genres = $("title-genres").value.split(",").map((g) => g.trim()).filter(Boolean);
    const body = { id, genres };
    if (name) body.name = name;
    try {
      await api("POST", "/v1/catalogue/titles", body);
      $("title-form").reset();
      await loadTitles();
      await selectTitle(id);
      say("Title " + id + " created.");
    } catch (error) {
      say("Could not create the title: " + error.message, true);
    }
  }

  async function selectTitle(titleId) {
    current = titleId;
    shownReport = null;
    shownInsights = null;
    renderTitles();
    try {
      const title = await api("GET", "/v1/catalogue/titles/" + encodeURIComponent(titleId));
      $("title-panel").hidden = false;
      $("title-heading").textContent = title.name + " (" + title.id + ")";
      showGenres(title.genres);
      $("uploads").replaceChildren();
      variants = title.variants;
      renderVariants();
      renderCandidates(title.candidates);
      await loadPerformance();
      await loadInsights();
    } catch (error) {
      say("Could not load " + titleId + ": " + error.message, true);
    }
  }

  function showGenres(genres) {
    $("title-genres-text").textContent = genres.length ? "Genres: " + genres.join(", ") : "No genres";
    $("genres-edit").value = genres.join(", ");
  }

  async function saveGenres(event) {
    event.preventDefault();
    const genres = $("genres-edit").value.split(",").map((g) => g.trim()).filter(Boolean);
    try {
      const title = await api("PATCH", "/v1/catalogue/titles/" + encodeURIComponent(current),
                              { genres });
      showGenres(title.genres);
      say("Genres of " + title.id + " saved.");
    } catch (error) {
      say("Could not save the genres: " + error.message, true);
    }
  }

  async function deleteTitle() {
    if (!current || !window.confirm("Delete title " + current + " with all its artwork?")) return;
    try {
      await api("DELETE", "/v1/catalogue/titles/" + encodeURIComponent(current));
      say("Title " + current + " deleted.");
      current = null;
      variants = [];
      $("title-panel").hidden = true;
      await loadTitles();
    } catch (error) {
      say("Could not delete " + current + ": " + error.message, true);
    }
  }

  async function refreshTitle() {
    const title = await api("GET", "/v1/catalogue/titles/" + encodeURIComponent(current));
    variants = title.variants;
    renderVariants();
    renderCandidates(title.candidates);
    if (shownReport) renderPerformance(shownReport);
    if (shownInsights) renderInsights(shownInsights);
    const entry = titles.find((t) => t.id === current);
    if (entry) {
      entry.variantCount = title.variantCount;
      entry.activeVariantCount = title.activeVariantCount;
      renderTitles();
    }
  }

  // ------------------------------------------------------------------ variants

  function featureTable(features, open) {
    const table = el("table");
    for (const [namespace, values] of Object.entries(features)) {
      for (const [name, value] of Object.entries(values)) {
        const shown = typeof value === "number" ? (Math.round(value * 1000) / 1000) : value;
        const meaning = glossary[namespace + "." + name];
        const label = meaning ? el("td", { class: "glossed", title: meaning, text: name })
                              : el("td", { text: name });
        table.append(el("tr", { "data-feature": namespace + "." + name },
                        el("td", { class: "ns", text: namespace }), label,
                        el("td", { text: String(shown) })));
      }
    }
    const details = el("details", { class: "features" }, el("summary", { text: "Features" }), table);
    details.open = open;
    return details;
  }

  function variantCard(variant, featuresOpen) {
    const toggle = el("input", { type: "checkbox", "data-role": "active-toggle" });
    toggle.checked = variant.active;
    toggle.addEventListener("change", () => setActive(variant.id, toggle.checked, toggle));
    const remove = el("button", {
      type: "button", class: "danger", "data-role": "delete",
      onclick: () => deleteVariant(variant.id),
    }, "Delete");
    const warnings = el("ul", { class: "warnings" });
    for (const warning of variant.warnings) {
      if (warning.code === "near_duplicate") continue;   // shown as badges below
      warnings.append(el("li", { "data-code": warning.code, title: warning.message },
                         "⚠ " + warning.message));
    }
    const badges = el("div", { class: "badges" });
    for (const other of variant.nearDuplicates) {
      badges.append(el("span", { class: "badge dup", "data-duplicate-of": other, title: other },
                       "near-duplicate of " + labelOf(other)));
    }
    const details = variant.details || {};
    const card = el("div", {
      class: "card" + (variant.active ? "" : " inactive"),
      "data-variant": variant.id, style: "--swatch: " + colorOf(variant.id),
    },
      el("img", { src: variant.imageUrl, alt: variant.label, title: variant.id, loading: "lazy" }),
      el("div", { class: "meta" },
        el("span", { class: "label", "data-role": "label", title: variant.id, text: variant.label }),
        el("span", { class: "muted", text: (details.width || "?") + "×" + (details.height || "?") })),
      el("div", { class: "muted", text: variant.filename && variant.filename !== variant.label ?
                                          variant.filename : "(" + variant.source + ")" }),
      tagBadges(variant), suggestionChips(variant),
      badges, warnings, tagForm(variant, openForms.has(variant.id)),
      featureTable(variant.features, featuresOpen),
      el("div", { class: "actions" },
        el("label", {}, toggle, " Active"), remove));
    return card;
  }

  // ------------------------------------------------------------------ labels and tags

  function tagBadges(variant) {
    const box = el("div", { class: "tags", "data-role": "tags" });
    const tags = variant.tags;
    for (const [field, kind] of [["themes", "theme"], ["tone", "tone"], ["cast", "cast"],
                                 ["setting", "setting"], ["visual", "visual"]]) {
      for (const value of tags[field]) {
        box.append(el("span", { class: "badge tag " + kind, "data-tag": kind + "=" + value,
                                title: kind }, value));
      }
    }
    return box;
  }

  function suggestionChips(variant) {
    const box = el("div", { class: "suggestions", "data-role": "suggestions" });
    if (!variant.suggestedTags.length) return box;
    box.append(el("span", { class: "muted", text: "Suggested: " }));
    for (const tag of variant.suggestedTags) {
      const rest = variant.suggestedTags.filter((t) => t !== tag);
      box.append(el("span", { class: "badge suggestion", "data-suggestion": tag }, tag,
        el("button", { type: "button", class: "chip", "data-role": "confirm", title: "confirm",
                       onclick: () => saveVariant(variant, {
                         tags: { visual: variant.tags.visual.concat([tag]) } }, "confirmed " + tag) }, "✓"),
        el("button", { type: "button", class: "chip", "data-role": "dismiss", title: "remove",
                       onclick: () => saveVariant(variant, { suggestedTags: rest },
                                                  "removed suggestion " + tag) }, "✕")));
    }
    return box;
  }

  function tagForm(variant, open) {
    const input = (name, value, hint) => el("label", {}, name + " ",
      el("input", { name, value, placeholder: hint || "", autocomplete: "off" }));
    const visual = el("fieldset", { class: "visual" }, el("legend", { text: "visual" }));
    for (const tag of VISUAL_TAGS) {
      const box = el("input", { type: "checkbox", name: "visual", value: tag });
      box.checked = variant.tags.visual.includes(tag);
      visual.append(el("label", {}, box, " " + tag));
    }
    const form = el("form", { "data-role": "tag-form", autocomplete: "off" },
      input("label", variant.label),
      input("themes", variant.tags.themes.join(", "), themes.join(", ")),
      input("tone", variant.tags.tone.join(", "), "tense, tender"),
      input("cast", variant.tags.cast.join(", "), "characters shown"),
      input("setting", variant.tags.setting.join(", "), "where it is set"),
      visual,
      el("button", { type: "submit", "data-role": "save-tags" }, "Save"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const field = (name) => form.elements.namedItem(name).value;
      const checked = Array.from(form.querySelectorAll("input[name=visual]:checked"))
        .map((box) => box.value);
      saveVariant(variant, {
        label: field("label").trim() || variant.label,
        tags: { themes: words(field("themes")), tone: words(field("tone")),
                cast: words(field("cast")), setting: words(field("setting")), visual: checked },
      }, "saved");
    });
    const details = el("details", { class: "edit", "data-role": "edit" },
                       el("summary", { text: "Label & tags" }), form);
    details.open = open;
    return details;
  }

  async function saveVariant(variant, change, what) {
    try {
      const saved = await api("PATCH", variantUrl(variant.id),
                              Object.assign({ revision: variant.revision }, change));
      await refreshTitle();
      say(saved.label + ": " + what + ".");
    } catch (error) {
      say("Could not change " + variant.label + ": " + error.message, true);
    }
  }

  function renderVariants() {
    const grid = $("variants");
    // A re-render (another upload finished, a toggle) keeps the feature tables the marketer opened.
    const opened = new Set(Array.from(grid.querySelectorAll(".card"))
      .filter((card) => card.querySelector("details.features").open)
      .map((card) => card.dataset.variant));
    openForms = new Set(Array.from(grid.querySelectorAll(".card"))
      .filter((card) => card.querySelector("details.edit").open)
      .map((card) => card.dataset.variant));
    grid.replaceChildren(...variants.map((variant) => variantCard(variant, opened.has(variant.id))));
    const active = variants.filter((v) => v.active).length;
    $("variant-count").textContent = "(" + active + " active of " + variants.length + ")";
    if (!variants.length) grid.append(el("p", { class: "muted", text: "No variants yet: drop posters above." }));
  }

  async function setActive(variantId, active, toggle) {
    try {
      const name = labelOf(variantId);
      await api("PATCH", variantUrl(variantId), { active });
      await refreshTitle();
      say(name + (active ? " is on." : " is off."));
    } catch (error) {
      toggle.checked = !active;
      say("Could not change " + labelOf(variantId) + ": " + error.message, true);
    }
  }

  async function deleteVariant(variantId) {
    const name = labelOf(variantId);
    if (!window.confirm("Delete variant " + name + "? Its image is removed.")) return;
    try {
      await api("DELETE", variantUrl(variantId));
      await refreshTitle();
      say(name + " deleted.");
    } catch (error) {
      say("Could not delete " + name + ": " + error.message, true);
    }
  }

  // ------------------------------------------------------------------ uploads

  async function uploadFiles(files) {
    if (!current) { say("Pick a title first.", true); return; }
    const list = $("uploads");
    for (const file of files) {
      const row = el("li", { "data-file": file.name }, "Analysing " + file.name + "…");
      list.append(row);
      const form = new FormData();
      form.append("file", file, file.name);
      try {
        const variant = await api("POST", "/v1/catalogue/titles/" +
                                  encodeURIComponent(current) + "/variants", form);
        row.className = "done";
        row.title = variant.id;
        row.textContent = file.name + " → " + variant.label +
          (variant.warnings.length ? " (" + variant.warnings.length + " warnings)" : "") +
          (variant.suggestedTags.length ? "; suggested tags: " + variant.suggestedTags.join(", ") : "");
      } catch (error) {
        row.className = "error";
        row.textContent = file.name + ": " + error.message;
      }
    }
    await refreshTitle();
  }

  function setupDropzone() {
    const zone = $("dropzone");
    const stop = (event) => { event.preventDefault(); event.stopPropagation(); };
    ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
      stop(event); zone.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, (event) => {
      stop(event); zone.classList.remove("over");
    }));
    zone.addEventListener("drop", (event) => {
      const files = Array.from((event.dataTransfer && event.dataTransfer.files) || []);
      if (files.length) uploadFiles(files);
    });
    $("file-input").addEventListener("change", (event) => {
      const files = Array.from(event.target.files || []);
      event.target.value = "";
      if (files.length) uploadFiles(files);
    });
  }

  // ------------------------------------------------------------------ trailers

  function renderCandidates(candidates) {
    const grid = $("candidates");
    grid.replaceChildren();
    for (const candidate of candidates) {
      const details = candidate.details || {};
      const warnings = el("ul", { class: "warnings" });
      for (const warning of candidate.warnings) warnings.append(el("li", {}, "⚠ " + warning.message));
      grid.append(el("div", { class: "card", "data-candidate": candidate.id },
        el("img", { src: candidate.imageUrl, alt: candidate.filename }),
        el("div", { class: "meta" },
          el("span", { class: "label", title: candidate.id, text: candidate.filename || candidate.id }),
          el("span", { class: "muted", text: "t=" + (details.timestamp ?? "?") + "s · score " +
                                              (details.score ?? "?") })),
        warnings, featureTable(candidate.features),
        el("div", { class: "actions" },
          el("button", { type: "button", "data-role": "approve",
                         onclick: () => approveCandidate(candidate.id) }, "Approve"),
          el("button", { type: "button", class: "danger", "data-role": "discard",
                         onclick: () => discardCandidate(candidate.id) }, "Discard"))));
    }
  }

  async function uploadTrailer(event) {
    const file = event.target.files && event.target.files[0];
    event.target.value = "";
    if (!file || !current) return;
    const status = $("trailer-status");
    status.textContent = "Mining frames from " + file.name + "…";
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const result = await api("POST", "/v1/catalogue/titles/" + encodeURIComponent(current) +
                               "/trailers", form);
      status.textContent = result.candidates.length + " candidate frames from " +
        result.frames + " frames in " + result.shots + " shots.";
      await refreshTitle();
    } catch (error) {
      status.textContent = file.name + ": " + error.message;
    }
  }

  async function approveCandidate(candidateId) {
    try {
      const variant = await api("POST", "/v1/catalogue/titles/" + encodeURIComponent(current) +
                                "/candidates/" + candidateId + "/approve");
      await refreshTitle();
      say("Frame approved as variant " + variant.label + ".");
    } catch (error) {
      say("Could not approve " + candidateId + ": " + error.message, true);
    }
  }

  async function discardCandidate(candidateId) {
    try {
      await api("DELETE", "/v1/catalogue/titles/" + encodeURIComponent(current) +
                "/candidates/" + candidateId);
      await refreshTitle();
    } catch (error) {
      say("Could not discard " + candidateId + ": " + error.message, true);
    }
  }

  // ------------------------------------------------------------------ performance

  async function loadPerformance() {
    if (!current) return;
    const days = $("perf-days").value;
    try {
      const report = await api("GET", "/v1/catalogue/titles/" + encodeURIComponent(current) +
                               "/performance?days=" + days);
      renderPerformance(report);
    } catch (error) {
      say("Could not load performance: " + error.message, true);
    }
  }

  function lineChart(container, days, series, options) {
    const width = 520, height = 220, left = 40, right = 24, top = 10, bottom = 28;
    const plotW = width - left - right, plotH = height - top - bottom;
    const maxY = options.maxY;
    const x = (i) => left + (days.length <= 1 ? plotW / 2 : (i * plotW) / (days.length - 1));
    const y = (v) => top + plotH - (v / maxY) * plotH;
    const root = svg("svg", { viewBox: "0 0 " + width + " " + height, role: "img",
                              "aria-label": options.label });
    for (let k = 0; k <= 4; k++) {
      const value = (maxY * k) / 4;
      root.append(svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value),
                                stroke: "#333", "stroke-width": 1 }));
      root.append(svg("text", { x: left - 4, y: y(value) + 3, "text-anchor": "end" },
                      (100 * value).toFixed(0) + "%"));
    }
    const step = Math.max(1, Math.ceil(days.length / 7));
    days.forEach((day, i) => {
      if (i % step === 0 || i === days.length - 1) {
        root.append(svg("text", { x: x(i), y: height - 8, "text-anchor": "middle" }, day.slice(5)));
      }
    });
    for (const line of series) {
      if (line.band) {
        const upper = [], lower = [];
        line.band.forEach((pair, i) => {
          if (pair) { upper.push([x(i), y(pair[1])]); lower.unshift([x(i), y(pair[0])]); }
        });
        if (upper.length) {
          root.append(svg("polygon", { points: upper.concat(lower).map((p) => p.join(",")).join(" "),
                                       fill: line.color, "fill-opacity": 0.12, stroke: "none" }));
        }
      }
      let path = "", pen = false;
      line.values.forEach((value, i) => {
        if (value === null || value === undefined) { pen = false; return; }
        path += (pen ? " L" : " M") + x(i).toFixed(1) + " " + y(value).toFixed(1);
        pen = true;
        root.append(svg("circle", { cx: x(i), cy: y(value), r: days.length > 20 ? 2.5 : 4,
                                    fill: line.color }));
      });
      if (path) {
        root.append(svg("path", { d: path.trim(), fill: "none", stroke: line.color,
                                  "stroke-width": 2, "data-variant": line.id }));
      }
    }
    container.replaceChildren(root);
  }

  function variantChart(container, rows) {
    // One row per variant: its share of traffic as a bar, its take rate as a
    // point with the Wilson interval as a whisker.
    const width = 1040, rowH = 30, top = 24, left = 120, gap = 40;
    const barW = (width - left - gap - 20) / 2, rateX = left + barW + gap;
    const height = top + rowH * Math.max(rows.length, 1) + 8;
    const root = svg("svg", { viewBox: "0 0 " + width + " " + height, role: "img",
                              "aria-label": "share and take rate by variant" });
    root.append(svg("text", { x: left, y: 12 }, "share of traffic"));
    root.append(svg("text", { x: rateX, y: 12 }, "take rate (95% interval)"));
    for (const [x0, w] of [[left, barW], [rateX, barW]]) {
      for (let k = 0; k <= 4; k++) {
        const x = x0 + (w * k) / 4;
        root.append(svg("line", { x1: x, x2: x, y1: top - 4, y2: height - 6, stroke: "#333" }));
        root.append(svg("text", { x: x, y: height, "text-anchor": "middle" }, (25 * k) + "%"));
      }
    }
    rows.forEach((v, i) => {
      const y = top + i * rowH, mid = y + rowH / 2, color = colorOf(v.variantId);
      const name = svg("text", { x: left - 8, y: mid + 4, "text-anchor": "end" },
                       labelOf(v.variantId).slice(0, 18));
      name.append(svg("title", {}, v.variantId));
      root.append(name);
      root.append(svg("rect", { x: left, y: y + 6, height: rowH - 16, rx: 2, fill: color,
                                width: Math.max(0, (v.share || 0) * barW),
                                "data-variant": v.variantId, "data-kind": "share" }));
      root.append(svg("rect", { x: left, y: y + rowH - 8, height: 3, fill: color,
                                "fill-opacity": 0.6,
                                width: Math.max(0, (v.recentShare || 0) * barW),
                                "data-variant": v.variantId, "data-kind": "recent-share" }));
      if (v.joined) {
        const x = (value) => rateX + value * barW;
        root.append(svg("line", { x1: x(v.takeRateLow), x2: x(v.takeRateHigh), y1: mid, y2: mid,
                                  stroke: color, "stroke-width": 2 }));
        for (const end of [v.takeRateLow, v.takeRateHigh]) {
          root.append(svg("line", { x1: x(end), x2: x(end), y1: mid - 6, y2: mid + 6,
                                    stroke: color, "stroke-width": 2 }));
        }
        root.append(svg("circle", { cx: x(v.takeRate), cy: mid, r: 5, fill: color,
                                    "data-variant": v.variantId, "data-kind": "rate" }));
      } else {
        root.append(svg("text", { x: rateX + 4, y: mid + 4 }, "no outcome yet"));
      }
    });
    container.replaceChildren(root);
  }

  function renderPerformance(report) {
    shownReport = report;
    const known = new Set(variants.map((v) => v.id));
    const rows = report.variants;
    $("perf-summary").textContent = report.impressions + " impressions, " + report.takes +
      " takes (" + report.joined + " with a known outcome) since " + report.since.slice(0, 10) +
      "; " + report.recentImpressions + " impressions in the last 24 h";
    const share = rows.map((v) => ({ id: v.variantId, color: colorOf(v.variantId),
                                     values: v.daily.map((d) => d.share) }));
    const rate = rows.map((v) => ({ id: v.variantId, color: colorOf(v.variantId),
                                    values: v.daily.map((d) => d.takeRate),
                                    band: v.daily.map((d) => d.joined ? [d.takeRateLow, d.takeRateHigh] : null) }));
    let maxRate = 0.05;
    for (const v of rows) for (const d of v.daily) if (d.joined) maxRate = Math.max(maxRate, d.takeRateHigh);
    variantChart($("chart-variants"), rows);
    lineChart($("chart-share"), report.days, share, { maxY: 1, label: "share of traffic" });
    lineChart($("chart-rate"), report.days, rate, { maxY: Math.min(1, Math.ceil(maxRate * 10) / 10),
                                                    label: "take rate" });
    const body = $("perf-table").tBodies[0];
    body.replaceChildren();
    for (const v of rows) {
      body.append(el("tr", { "data-variant": v.variantId },
        el("td", { title: v.variantId },
           el("span", { class: "swatch", style: "background:" + colorOf(v.variantId) }),
           labelOf(v.variantId) + (known.has(v.variantId) ? "" : " (deleted)")),
        el("td", { text: v.impressions }), el("td", { text: v.takes }),
        el("td", { text: pct(v.takeRate) }),
        el("td", { text: v.joined ? pct(v.takeRateLow) + " – " + pct(v.takeRateHigh) : "–" }),
        el("td", { text: pct(v.share) }),
        el("td", { "data-kind": "recent-share", text: pct(v.recentShare) })));
    }
  }

  // ------------------------------------------------------------------ who likes which variant

  function insightsUrl(feature) {
    const days = $("perf-days").value;
    return "/v1/catalogue/titles/" + encodeURIComponent(current) + "/insights?days=" + days +
      (feature ? "&feature=" + encodeURIComponent(feature) : "");
  }

  async function loadInsights() {
    if (!current) return;
    const select = $("insights-feature");
    try {
      const listed = await api("GET", insightsUrl(null));
      const wanted = select.value;
      select.replaceChildren(el("option", { value: "" }, "(pick a feature)"),
        ...listed.features.map((f) => el("option", { value: f }, f)));
      const feature = listed.features.includes(wanted) ? wanted : "";
      select.value = feature;
      if (!feature) {
        shownInsights = null;
        $("chart-insights").replaceChildren();
        $("insights-table").tBodies[0].replaceChildren();
        $("insights-summary").textContent = listed.features.length ?
          listed.decisions + " decisions with an outcome: pick a feature." :
          "No decisions with an outcome yet.";
        return;
      }
      renderInsights(await api("GET", insightsUrl(feature)));
    } catch (error) {
      say("Could not load who likes which variant: " + error.message, true);
    }
  }

  function insightsChart(container, report) {
    // One group per segment, one row per variant: the weighted take rate as a
    // point with its interval as a whisker, the raw take rate as a grey tick.
    const width = 1040, rowH = 22, headH = 24, top = 34, left = 230, right = 30;
    const plotW = width - left - right;
    let maxRate = 0.05;
    for (const s of report.segments) for (const v of s.variants) {
      if (v.impressions) maxRate = Math.max(maxRate, v.takeRateHigh, v.rawTakeRate);
    }
    maxRate = Math.min(1, Math.ceil(maxRate * 10) / 10);
    const x = (value) => left + (value / maxRate) * plotW;
    const rows = report.segments.reduce((n, s) => n + s.variants.length, 0);
    const height = top + report.segments.length * headH + rows * rowH + 20;
    const root = svg("svg", { viewBox: "0 0 " + width + " " + height, role: "img",
                              "aria-label": "propensity-weighted take rate by " + report.feature });
    root.append(svg("text", { x: left, y: 12, class: "legend" },
                    "take rate by " + report.feature + ", propensity-weighted (members' preference, " +
                    "not raw share); grey tick: raw take rate"));
    for (let k = 0; k <= 4; k++) {
      const value = (maxRate * k) / 4;
      root.append(svg("line", { x1: x(value), x2: x(value), y1: top - 8, y2: height - 16,
                                stroke: "#333" }));
      root.append(svg("text", { x: x(value), y: height - 4, "text-anchor": "middle" },
                      (100 * value).toFixed(0) + "%"));
    }
    let y = top;
    for (const segment of report.segments) {
      root.append(svg("text", { x: 8, y: y + 15, class: "segment", "data-segment": segment.segment },
                      segment.segment + " (" + segment.decisions + ")"));
      y += headH;
      for (const v of segment.variants) {
        const mid = y + rowH / 2, color = colorOf(v.variantId);
        const name = svg("text", { x: left - 8, y: mid + 4, "text-anchor": "end", class: "variant",
                                   "data-variant": v.variantId }, labelOf(v.variantId).slice(0, 28));
        name.append(svg("title", {}, v.variantId));
        root.append(name);
        if (v.impressions) {
          root.append(svg("line", { x1: x(v.takeRateLow), x2: x(v.takeRateHigh), y1: mid, y2: mid,
                                    stroke: color, "stroke-width": 3 }));
          root.append(svg("line", { x1: x(v.rawTakeRate), x2: x(v.rawTakeRate), y1: mid - 7,
                                    y2: mid + 7, stroke: "#9a9a9a", "stroke-width": 2,
                                    "data-kind": "raw" }));
          root.append(svg("circle", { cx: x(v.takeRate), cy: mid, r: 6, fill: color,
                                      "data-variant": v.variantId, "data-segment": segment.segment,
                                      "data-kind": "weighted-rate" }));
        } else {
          root.append(svg("text", { x: left + 4, y: mid + 4 }, "not shown to this segment"));
        }
        y += rowH;
      }
    }
    container.replaceChildren(root);
  }

  function renderInsights(report) {
    shownInsights = report;
    $("insights-summary").textContent = report.decisions + " decisions with an outcome since " +
      report.since.slice(0, 10) + ", " + report.segments.length + " segments";
    insightsChart($("chart-insights"), report);
    const body = $("insights-table").tBodies[0];
    body.replaceChildren();
    for (const segment of report.segments) {
      for (const v of segment.variants) {
        body.append(el("tr", { "data-segment": segment.segment, "data-variant": v.variantId },
          el("td", { text: segment.segment }),
          el("td", { title: v.variantId },
             el("span", { class: "swatch", style: "background:" + colorOf(v.variantId) }),
             labelOf(v.variantId)),
          el("td", { text: v.impressions }),
          el("td", { text: v.impressions ? v.effectiveSize.toFixed(1) : "–" }),
          el("td", { text: pct(v.takeRate) }),
          el("td", { text: v.impressions ? pct(v.takeRateLow) + " – " + pct(v.takeRateHigh) : "–" }),
          el("td", { text: pct(v.rawTakeRate) })));
      }
    }
  }

  async function loadGlossary() {
    // Public and static: the meaning of each artwork feature, shown on hover.
    try {
      const response = await fetch("/marketer/static/glossary.json", { credentials: "omit" });
      if (response.ok) glossary = await response.json();
    } catch (error) {
      glossary = {};
    }
  }

  async function refreshReports() {
    await loadPerformance();
    await loadInsights();
  }

  // ------------------------------------------------------------------ start

  document.addEventListener("DOMContentLoaded", () => {
    $("signin").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOut);
    $("title-form").addEventListener("submit", createTitle);
    $("trailer-input").addEventListener("change", uploadTrailer);
    $("genres-form").addEventListener("submit", saveGenres);
    $("delete-title").addEventListener("click", deleteTitle);
    $("perf-refresh").addEventListener("click", refreshReports);
    $("perf-days").addEventListener("change", refreshReports);
    $("insights-feature").addEventListener("change", loadInsights);
    setupDropzone();
    loadGlossary().then(() => { document.body.dataset.ready = "true"; });
  });
})();
