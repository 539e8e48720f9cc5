// graphfuse explorer: talks to the HTTP/JSON gateway of the server that serves this page.
"use strict";

const $ = (id) => document.getElementById(id);
const explorer = { cy: null, lastAsk: null };
window.explorer = explorer;

async function call(method, path, body) {
  const headers = body ? { "content-type": "application/json" } : {};
  const token = $("token").value;
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = await response.json();
  if (!response.ok) {
    throw new Error(`${data.status || response.status}: ${data.message || response.statusText}`);
  }
  return data;
}

function showError(error) {
  const box = $("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "onclick") node.addEventListener("click", value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const kindName = (kind) => (kind === "ANSWER_KIND_INFERRED" ? "inferred" : "fact");
const ms = (us) => `${(Number(us || 0) / 1000).toFixed(1)} ms`;

// A path as walked from its start: a reversed hop was followed from its stored tail back to its head.
function pathText(path) {
  const name = (id, label) => label || id;
  return path.hops
    .map((h, i) => {
      const start = i > 0 ? "" : h.reversed ? name(h.tailId, h.tailName) : name(h.headId, h.headName);
      return start + (h.reversed ? ` <-${h.relation}- ${name(h.headId, h.headName)}` : ` -${h.relation}-> ${name(h.tailId, h.tailName)}`);
    })
    .join("");
}

// ------------------------------------------------------------------------------------------ graphs
async function loadGraphs() {
  const [info, list] = await Promise.all([call("GET", "/v1/info"), call("GET", "/v1/graphs")]);
  $("model").textContent = `${info.model} (${info.precision}) on ${info.device}`;
  const select = $("graph");
  select.replaceChildren(...list.graphs.map((g) => el("option", { value: g.name }, g.name)));
  const wanted = new URLSearchParams(location.search).get("graph") || info.defaultGraph;
  if (wanted) {
    if (![...select.options].some((o) => o.value === wanted)) {
      select.append(el("option", { value: wanted }, wanted));
    }
    select.value = wanted;
  }
  await loadStats();
}

async function loadStats() {
  const graph = $("graph").value;
  if (!graph) return;
  try {
    const g = await call("GET", `/v1/graphs/${encodeURIComponent(graph)}`);
    $("stats").textContent =
      `${g.entities} entities, ${g.relations} relations, ${g.triples} triples; reasoner ${g.reasoner}` +
      (g.linkPredictor ? `; link predictor ${g.linkPredictor}` : "") +
      (g.recommender ? `; recommender ${g.recommender}` : "");
    showNameProgress(Number(g.namesEmbedded || 0), Number(g.namesTotal || 0));
    $("relations").replaceChildren(...(g.relationWords || []).map(relationItem));
    showError(null);
  } catch (error) {
    $("stats").textContent = "";
    $("relations").replaceChildren();
    showError(error);
  }
}

// Names still being embedded in the background: a progress bar, refreshed until every name has its vector.
let progressTimer = null;
function showNameProgress(embedded, total) {
  const bar = $("names");
  clearTimeout(progressTimer);
  bar.hidden = embedded >= total;
  bar.max = total;
  bar.value = embedded;
  bar.title = `names embedded: ${embedded} of ${total}`;
  if (!bar.hidden) progressTimer = setTimeout(loadStats, 2000);
}

// A relation's words: those relation records gave it, then the phrases each way with what they answer.
function relationItem(w) {
  const given = [
    w.name && `name "${w.name}"`,
    w.inverseName && `inverse "${w.inverseName}"`,
    w.aliases.length && `aliases ${w.aliases.map((a) => `"${a}"`).join(", ")}`,
    w.description && `description "${w.description}"`,
  ].filter(Boolean);
  const way = (arrow, phrases, answers) =>
    el("div", { class: "path" }, `${arrow}: ${phrases.join(" | ")}` + (answers ? ` (answers: ${answers})` : ""));
  return el(
    "li",
    { class: "relation", "data-relation": w.id },
    el("strong", {}, w.id),
    el("span", { class: "muted words" }, given.length ? given.join("; ") : "no words given: read from its id"),
    way("head \u2192 tail", w.forwardPhrases, w.forwardAnswers),
    way("tail \u2192 head", w.inversePhrases, w.inverseAnswers),
  );
}

// --------------------------------------------------------------------------------------------- ask
async function ask(event) {
  event.preventDefault();
  showError(null);
  const request = {
    graph: $("graph").value,
    question: $("question").value,
    topK: Number($("top-k").value) || 5,
  };
  try {
    const response = await call("POST", "/v1/ask", request);
    explorer.lastAsk = response;
    renderAnswers(response);
    drawEvidence(response);
  } catch (error) {
    $("answers").replaceChildren();
    $("fused").textContent = "";
    $("timing").textContent = "";
    if (explorer.cy) explorer.cy.elements().remove();
    showError(error);
  }
}

function renderAnswers(response) {
  $("fused").textContent = response.text;
  $("answers").replaceChildren(
    ...response.answers.map((a) =>
      el(
        "li",
        { class: "answer", "data-entity": a.entityId },
        el("strong", {}, a.name || a.entityId),
        el("span", { class: "score" }, a.score.toFixed(3)),
        el("span", { class: `kind ${kindName(a.kind)}` }, kindName(a.kind)),
        ...a.evidence.slice(0, 2).map((p) => el("div", { class: "path" }, pathText(p))),
      ),
    ),
  );
  const t = response.timing || {};
  $("timing").textContent =
    `total ${ms(t.totalUs)}: queue ${ms(t.queueUs)}, encode ${ms(t.encodeUs)}, reason ${ms(t.reasonUs)}; ` +
    `read ${response.region.entities} entities, ${response.region.edges} edges`;
}

// The evidence of the shown answers as one graph: every entity on a path once, every hop once.
function evidenceElements(response) {
  const nodes = new Map();
  const edges = new Map();
  const topics = new Set(response.topicEntities.map((t) => t.id));
  const answers = new Set(response.answers.map((a) => a.entityId));
  const addNode = (id, name) => {
    if (!nodes.has(id)) {
      const role = topics.has(id) ? "topic" : answers.has(id) ? "answer" : "other";
      nodes.set(id, { data: { id, label: name || id }, classes: role });
    }
  };
  for (const answer of response.answers) {
    addNode(answer.entityId, answer.name);
    for (const path of answer.evidence) {
      for (const hop of path.hops) {
        addNode(hop.headId, hop.headName);
        addNode(hop.tailId, hop.tailName);
        const [source, target] = [hop.headId, hop.tailId]; // the stored fact's direction, however walked
        const key = `${source}\u0000${hop.relation}\u0000${target}`;
        const weight = (edges.get(key)?.data.weight || 0) + path.weight;
        edges.set(key, { data: { id: key, source, target, label: hop.relation, weight } });
      }
    }
  }
  for (const topic of response.topicEntities) addNode(topic.id, topic.name);
  return [...nodes.values(), ...edges.values()];
}

function drawEvidence(response) {
  const elements = evidenceElements(response);
  const weights = elements.filter((e) => e.data.source).map((e) => e.data.weight);
  const heaviest = Math.max(1e-9, ...weights);
  if (!explorer.cy) {
    explorer.cy = cytoscape({
      container: $("cy"),
      style: [
        { selector: "node", style: { label: "data(label)", "font-size": 10, "background-color": "#98a2b3", "text-wrap": "wrap", "text-max-width": 120 } },
        { selector: "node.topic", style: { "background-color": "#d9480f", width: 34, height: 34 } },
        { selector: "node.answer", style: { "background-color": "#2f6fdf" } },
        {
          selector: "edge",
          style: {
            label: "data(label)", "font-size": 9, "curve-style": "bezier", "target-arrow-shape": "triangle",
            "line-color": "#b3bccb", "target-arrow-color": "#b3bccb", "text-rotation": "autorotate",
            width: `mapData(weight, 0, ${heaviest}, 1, 8)`,
          },
        },
      ],
    });
    explorer.cy.on("tap", "node", (event) => showEntity(event.target.id()));
  }
  const cy = explorer.cy;
  cy.elements().remove();
  cy.add(elements);
  cy.style().selector("edge").style("width", `mapData(weight, 0, ${heaviest}, 1, 8)`).update();
  cy.layout({ name: "breadthfirst", directed: true, roots: cy.nodes(".topic"), padding: 20, spacingFactor: 1.1 }).run();
}

// ----------------------------------------------------------------------------------------- lookups
function tripleItem(t) {
  return el(
    "li",
    {},
    `${t.headName || t.headId} -${t.relation}-> ${t.tailName || t.tailId}`,
    el("span", { class: "score" }, t.score.toFixed(3)),
    el("span", { class: `kind ${kindName(t.kind)}` }, kindName(t.kind)),
    ...(kindName(t.kind) === "inferred" ? evidenceItems(t.evidence) : []),
  );
}

// Paths grouped by pattern (a path-pattern predictor's evidence) come under their pattern and its share.
function evidenceItems(paths) {
  const items = [];
  let shown = null;
  for (const p of paths) {
    if (p.pattern && p.pattern !== shown) {
      items.push(el("div", { class: "pattern" }, `${p.pattern} (${Math.round(100 * p.weight)}% of the evidence)`));
      shown = p.pattern;
    }
    items.push(el("div", { class: "path" }, pathText(p)));
  }
  return items;
}

async function lookup(request, title) {
  showError(null);
  try {
    const response = await call("POST", "/v1/lookup", { graph: $("graph").value, topK: 10, ...request });
    $("entity").replaceChildren(
      el("h2", {}, title),
      el("p", { class: "muted" }, `${response.totalFacts} stored facts; ${ms(response.timing.totalUs)}`),
      el("ul", { id: "lookup-results" }, ...response.triples.map(tripleItem)),
    );
  } catch (error) {
    $("entity").replaceChildren();
    showError(error);
  }
}

function showEntity(id) {
  const node = explorer.cy.getElementById(id);
  return lookup({ head: id }, `About ${node.data("label") || id}`);
}

function lookupForm(event) {
  event.preventDefault();
  const request = {
    head: $("lookup-head").value,
    relation: $("lookup-relation").value,
    tail: $("lookup-tail").value,
  };
  return lookup(request, "Lookup");
}

$("ask-form").addEventListener("submit", ask);
$("lookup-form").addEventListener("submit", lookupForm);
$("graph").addEventListener("change", loadStats);
$("token").value = sessionStorage.getItem("graphfuse-token") || "";
$("token").addEventListener("change", () => {
  sessionStorage.setItem("graphfuse-token", $("token").value);
  loadGraphs().catch(showError);
});
loadGraphs().catch(showError);
