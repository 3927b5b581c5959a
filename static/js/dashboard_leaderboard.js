/* Project dashboard: the generator leaderboard panel (#leaderboard). Fetches the leaderboard API,
 * draws strengths with their 95 % intervals, win/loss/tie counts and the reward model's mean score
 * per generator, and the win-rate matrix; while a run computes, shows its progress and asks again.
 * The panel's element carries the API's URLs (data-url, data-refresh-url); without it this does nothing.
 * Everything is built with DOM calls and SVG attributes: no inline script or style (CSP). */
(function () {
  "use strict";
  var panel = document.getElementById("leaderboard");
  if (!panel) return;
  var NS = "http://www.w3.org/2000/svg";
  var POLL_MS = 2000;
  var BAR_W = 220, BAR_H = 18;
  var timer = null;

  function el(name, text, attrs) {
    var node = document.createElement(name);
    if (text !== undefined && text !== null) node.textContent = text;
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }
  function svg(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  // The panel's parts; the template holds only the card, its heading and the CSRF token.
  var controls = panel.appendChild(el("p"));
  var refreshButton = controls.appendChild(el("button", "Recompute", { type: "button" }));
  controls.appendChild(document.createTextNode(" "));
  var statusEl = controls.appendChild(el("span", null, { role: "status" }));
  var progressBox = panel.appendChild(el("div"));
  progressBox.hidden = true;
  var progressBar = progressBox.appendChild(el("progress", null, { max: "1", value: "0" }));
  progressBox.appendChild(document.createTextNode(" "));
  var progressLabel = progressBox.appendChild(el("span"));
  var standings = panel.appendChild(el("table", null, { class: "data", id: "leaderboard-standings" }));
  var headings = standings.appendChild(el("thead")).appendChild(el("tr"));
  ["Generator", "Strength [95% CI]", "Interval", "Wins", "Losses", "Ties", "Comparisons", "RM mean score", "RM scored"]
    .forEach(function (h) { headings.appendChild(el("th", h, { scope: "col" })); });
  var tableBody = standings.appendChild(el("tbody"));
  var matrixEl = panel.appendChild(el("div", null, { id: "leaderboard-matrix" }));
  var noteEl = panel.appendChild(el("p", null, { class: "muted" }));

  function csrfToken() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    if (m) return decodeURIComponent(m[1]);
    var input = panel.querySelector("[name=csrfmiddlewaretoken]") || document.querySelector("[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  function request(method, url) {
    var headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
    return fetch(url, { method: method, credentials: "same-origin", headers: headers }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) throw new Error((body.error && body.error.message) || url + " answered " + r.status);
        return body;
      });
    });
  }
  function fixed(v, digits) { return v === null || v === undefined ? "–" : v.toFixed(digits); }
  function pct(v) { return v === null || v === undefined ? "–" : Math.round(v * 100) + "%"; }

  // One interval on a scale shared by every row, with the zero line (the average generator).
  function ciBar(row, low, high) {
    var box = svg("svg", { viewBox: "0 0 " + BAR_W + " " + BAR_H, width: BAR_W, height: BAR_H, role: "img",
      "aria-label": "strength " + fixed(row.strength, 2) + ", 95% interval " + fixed(row.ci_low, 2) + " to " + fixed(row.ci_high, 2) });
    if (row.strength === null) return box;
    var x = function (v) { return 6 + (BAR_W - 12) * (v - low) / (high - low || 1); };
    svg("line", { x1: x(0), x2: x(0), y1: 0, y2: BAR_H, stroke: "#dde1e8" }, box);
    svg("line", { x1: x(row.ci_low), x2: x(row.ci_high), y1: BAR_H / 2, y2: BAR_H / 2, stroke: "#2451d6", "stroke-width": 3 }, box);
    svg("circle", { cx: x(row.strength), cy: BAR_H / 2, r: 4, fill: "#1b2a4a" }, box);
    return box;
  }

  function drawStandings(board) {
    tableBody.textContent = "";
    var ranked = board.generators.filter(function (g) { return g.strength !== null; });
    var low = Math.min.apply(null, [0].concat(ranked.map(function (g) { return g.ci_low; })));
    var high = Math.max.apply(null, [0].concat(ranked.map(function (g) { return g.ci_high; })));
    if (!board.generators.length) {
      var empty = el("tr");
      empty.appendChild(el("td", "No generator yet: no counted ranking and no scored candidate.", { colspan: 9 }));
      tableBody.appendChild(empty);
    }
    board.generators.forEach(function (g) {
      var tr = el("tr");
      tr.appendChild(el("td", g.name, { title: g.source }));
      tr.appendChild(el("td", g.strength === null ? "not compared" :
        fixed(g.strength, 2) + " [" + fixed(g.ci_low, 2) + ", " + fixed(g.ci_high, 2) + "]"));
      var cell = el("td");
      cell.appendChild(ciBar(g, low, high));
      tr.appendChild(cell);
      [g.wins, g.losses, g.ties, g.comparisons].forEach(function (v) { tr.appendChild(el("td", String(v))); });
      tr.appendChild(el("td", fixed(g.reward_model_mean_score, 3)));
      tr.appendChild(el("td", String(g.reward_model_scored)));
      tableBody.appendChild(tr);
    });
  }

  function drawMatrix(board) {
    matrixEl.textContent = "";
    var names = board.matrix.generators;
    if (names.length < 2) {
      matrixEl.appendChild(el("p", "No ranking compares two generators yet.", { class: "muted" }));
      return;
    }
    var table = el("table", null, { class: "data" });
    table.appendChild(el("caption", "Row's win rate against the column (ties count half), with the number of comparisons"));
    var head = el("tr");
    head.appendChild(el("th", ""));
    names.forEach(function (name, j) { head.appendChild(el("th", "#" + (j + 1), { title: name, scope: "col" })); });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    names.forEach(function (name, i) {
      var tr = el("tr");
      tr.appendChild(el("th", "#" + (i + 1) + " " + name, { scope: "row" }));
      names.forEach(function (_, j) {
        var rate = board.matrix.win_rate[i][j], n = board.matrix.comparisons[i][j];
        tr.appendChild(el("td", i === j ? "" : rate === null ? "–" : pct(rate) + " (" + n + ")"));
      });
      body.appendChild(tr);
    });
    matrixEl.appendChild(table);
  }

  function draw(state) {
    var run = state.run, board = state.leaderboard;
    var inFlight = run.status === "queued" || run.status === "running";
    progressBox.hidden = !inFlight;
    if (inFlight) {
      progressBar.value = run.progress;
      progressLabel.textContent = run.status + " " + pct(run.progress);
    }
    var parts = [];
    if (inFlight) parts.push("Computing the leaderboard (run " + run.id + ")…");
    else if (run.status === "failed") parts.push("The last run failed: " + (run.error || "no reason given").split("\n")[0]);
    if (board && !state.up_to_date && !inFlight) parts.push("This result is not on the newest rankings.");
    if (board && !state.up_to_date && inFlight) parts.push("Showing the previous result meanwhile.");
    statusEl.textContent = parts.join(" ");
    if (board) {
      drawStandings(board);
      drawMatrix(board);
      noteEl.textContent = "Davidson-Bradley-Terry strengths (log scale, mean zero) from " + board.outcomes +
        " comparisons of different generators in " + board.rankings + " rankings up to " +
        (board.cutoff ? new Date(board.cutoff).toLocaleString() : "now") + "; " +
        (board.confidence ? Math.round(board.confidence * 100) + "% " : "") + "cluster-bootstrap intervals from " +
        board.resamples + " resamples" + (board.tie_strength !== null ? "; tie parameter ν = " + fixed(board.tie_strength, 2) : "") +
        (board.reward_model ? ". Reward-model scores: version v" + board.reward_model.version + "." : ". No reward-model version is active.");
    }
    clearTimeout(timer);
    if (inFlight) timer = setTimeout(load, POLL_MS);
  }

  function showError(error) {
    statusEl.textContent = "Could not load the leaderboard: " + error.message;
    statusEl.classList.add("error");
  }

  function load() {
    request("GET", panel.dataset.url).then(function (state) {
      statusEl.classList.remove("error");
      draw(state);
    }).catch(showError);
  }

  refreshButton.addEventListener("click", function () {
    refreshButton.disabled = true;
    request("POST", panel.dataset.refreshUrl).then(draw).catch(showError).then(function () {
      refreshButton.disabled = false;
    });
  });
  load();
})();
