/* Project dashboard: fetch the quality API and draw the charts; "retrain now" with live progress. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("dashboard-config").textContent);
  var pct = function (v) { return Math.round(v * 100) + "%"; };

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error(url + " answered " + r.status);
      return r.json();
    });
  }
  function csrfToken() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : (document.querySelector("[name=csrfmiddlewaretoken]") || {}).value;
  }
  function fail(el, error) { el.textContent = "Could not load: " + error.message; el.classList.add("error"); }
  function setText(id, value) { var el = document.getElementById(id); if (el) el.textContent = value; }

  var days = config.days || 30;
  getJSON(config.urls.summary).then(function (s) {
    setText("stat-agreement", s.agreement === null ? "–" : pct(s.agreement));
    setText("stat-tau", s.kendall_tau === null ? "–" : s.kendall_tau.toFixed(2));
    setText("stat-alpha", s.krippendorff_alpha == null ? "–" : s.krippendorff_alpha.toFixed(2));
    setText("stat-gold", s.gold_agreement === null ? "–" : pct(s.gold_agreement));
    setText("stat-rankings", s.rankings);
    setText("stat-demonstrations", s.demonstrations);
  }).catch(function (e) { fail(document.getElementById("summary"), e); });

  var throughputEl = document.getElementById("chart-throughput");
  getJSON(config.urls.throughput + "?days=" + days).then(function (d) {
    renderLineChart(throughputEl, {
      title: "Throughput per day",
      labels: d.points.map(function (p) { return p.day.slice(5); }),
      series: [
        { name: "rankings", values: d.points.map(function (p) { return p.rankings; }) },
        { name: "demonstrations", values: d.points.map(function (p) { return p.demonstrations; }) }
      ],
      yFormat: function (v) { return Math.round(v * 10) / 10; }
    });
  }).catch(function (e) { fail(throughputEl, e); });

  var queueEl = document.getElementById("chart-queue");
  getJSON(config.urls.queue_depth).then(function (q) {
    renderBarChart(queueEl, {
      title: "Queue depth",
      labels: ["candidates", "demonstrations", "rankings", "leased now"],
      values: [q.waiting_for_candidates, q.waiting_for_demonstrations, q.waiting_for_rankings, q.leased],
      yFormat: function (v) { return Math.round(v * 10) / 10; }
    });
  }).catch(function (e) { fail(queueEl, e); });

  var agreementEl = document.getElementById("chart-agreement");
  getJSON(config.urls.agreement + "?days=" + days).then(function (d) {
    renderLineChart(agreementEl, {
      title: "Agreement per day",
      labels: d.points.map(function (p) { return p.day.slice(5); }),
      series: [{ name: "pairwise agreement", values: d.points.map(function (p) { return p.agreement; }) }],
      yMin: 0, yMax: 1, yFormat: pct, emptyMessage: "no prompt ranked twice yet"
    });
  }).catch(function (e) { fail(agreementEl, e); });

  var accuracyEl = document.getElementById("chart-rm-accuracy");
  var lossEl = document.getElementById("chart-rm-loss");
  var progressBox = document.getElementById("retrain-progress");

  function drawRewardModels(runs) {
    var versions = runs.filter(function (r) { return r.version !== null; }).reverse();
    renderBarChart(accuracyEl, {
      title: "Validation accuracy per version",
      // The sample behind each bar: 71 % from 24 held-out pairs is not 71 % from 2,400.
      labels: versions.map(function (r) {
        return "v" + r.version + (r.validation_pairs ? " (" + r.validation_pairs + " pairs)" : "");
      }),
      values: versions.map(function (r) { return r.validation_accuracy; }),
      yMax: 1, yFormat: pct, emptyMessage: "no trained version yet"
    });
    var latest = runs.find(function (r) {
      return r.curves.step_train_loss.length || r.curves.train_loss.length || r.curves.val_loss.length;
    });
    var curves = latest ? latest.curves : { train_loss: [], val_loss: [], steps: [], step_train_loss: [] };
    var suffix = latest && latest.version ? " (v" + latest.version + ")" : "";
    if (curves.step_train_loss.length > 1) {
      // The loss as logged step by step; validation loss is measured once per epoch, at its end.
      var epochs = curves.val_loss.length, last = curves.steps[curves.steps.length - 1];
      var validation = curves.steps.map(function () { return null; });
      curves.val_loss.forEach(function (value, e) {
        var end = last * (e + 1) / epochs, nearest = 0;
        curves.steps.forEach(function (step, i) { if (Math.abs(step - end) < Math.abs(curves.steps[nearest] - end)) nearest = i; });
        validation[nearest] = value;
      });
      renderLineChart(lossEl, {
        title: "Loss curve",
        labels: curves.steps.map(function (step) { return "step " + step; }),
        series: [{ name: "train loss" + suffix, values: curves.step_train_loss }, { name: "validation loss", values: validation }],
        emptyMessage: "no loss curve yet"
      });
    } else {
      var n = Math.max(curves.train_loss.length, curves.val_loss.length);
      renderLineChart(lossEl, {
        title: "Loss curve",
        labels: Array.from({ length: n }, function (_, i) { return "epoch " + (i + 1); }),
        series: [{ name: "train loss" + suffix, values: curves.train_loss }, { name: "validation loss", values: curves.val_loss }],
        emptyMessage: "no loss curve yet"
      });
    }
    // The frozen evaluation set's charts (static/js/dashboard_rm_evaluation.js), from the same runs.
    if (window.drawRewardModelEvaluation) window.drawRewardModelEvaluation(runs);
    var running = runs.find(function (r) { return r.status === "queued" || r.status === "running"; });
    describeRuns(runs, running);
    if (progressBox) {
      if (running) {
        progressBox.hidden = false;
        progressBox.querySelector("progress").value = running.progress;
        progressBox.querySelector(".label").textContent =
          running.status + " " + pct(running.progress) + (running.progress_message ? " – " + running.progress_message : "");
      } else {
        progressBox.hidden = true;
      }
    }
    return running;
  }

  // What the retraining card says: the run under way, else how the last one ended, and which
  // version scores the candidates now. Read from the runs, so it is right after a reload too.
  function describeRuns(runs, running) {
    var status = document.getElementById("retrain-status");
    if (!status) return;
    var active = runs.find(function (r) { return r.is_active; });
    var finished = runs.find(function (r) { return r.status !== "queued" && r.status !== "running"; });
    var parts = [];
    if (running) {
      parts.push("Run " + running.id + " is " + running.status + ".");
    } else if (finished && finished.status === "succeeded") {
      var held = finished.validation_source === "evaluation_set" ? " pairs of the frozen evaluation set" : " held-out pairs";
      var size = finished.validation_pairs !== null && finished.validation_pairs !== undefined
        ? " on " + finished.validation_pairs + held + (finished.validation_prompts ? " from " + finished.validation_prompts + " prompts" : "")
        : "";
      parts.push("The last run trained version v" + finished.version + ": validation accuracy " + pct(finished.validation_accuracy) + size + ".");
    } else if (finished) {
      parts.push("The last run " + finished.status + (finished.error ? ": " + finished.error.split("\n")[0] : ".") );
    }
    parts.push(active ? "Active version: v" + active.version + "." : "No version is active yet.");
    status.textContent = parts.join(" ");
    status.classList.toggle("error", !running && !!finished && finished.status === "failed");
    if (!running) setText("retrain-message", "");
  }

  var polling = null;
  function loadRewardModels() {
    return getJSON(config.urls.reward_models + "?limit=50").then(function (page) {
      var running = drawRewardModels(page.results);
      if (running && !polling) polling = setInterval(loadRewardModels, 2000);
      if (!running && polling) { clearInterval(polling); polling = null; }
    }).catch(function (e) { fail(accuracyEl, e); });
  }
  loadRewardModels();

  var button = document.getElementById("retrain-now");
  if (button && config.urls.retrain) {
    button.addEventListener("click", function () {
      button.disabled = true;
      fetch(config.urls.retrain, {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/json", Accept: "application/json" },
        body: "{}"
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (!r.ok) throw new Error((body.error && body.error.message) || ("status " + r.status));
          setText("retrain-message", "Retraining queued…");
        });
      }).catch(function (e) { setText("retrain-message", "Could not start: " + e.message); })
        .then(function () { button.disabled = false; return loadRewardModels(); });
    });
  }
})();

/* Per-labeler statistics table. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("dashboard-config").textContent);
  var body = document.querySelector("#labeler-table tbody");
  if (!body) return;
  var pct = function (v) { return v === null ? "–" : Math.round(v * 100) + "%"; };
  fetch(config.urls.labelers + "?limit=200", { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) { return r.json(); })
    .then(function (page) {
      page.results.forEach(function (row) {
        var tr = document.createElement("tr");
        [row.username, row.role || "–", row.tasks_done,
          row.seconds_per_task === null ? "–" : row.seconds_per_task.toFixed(1),
          pct(row.skip_rate), pct(row.agreement),
          row.kendall_tau === null ? "–" : row.kendall_tau.toFixed(2), pct(row.gold_agreement), row.flags_raised
        ].forEach(function (value) {
          var td = document.createElement("td");
          td.textContent = value;
          tr.appendChild(td);
        });
        // Reliability (adversarial when significantly below 50 %) and the signals that fire, each
        // with its value and reason on hover.
        var reliability = document.createElement("td");
        reliability.textContent = (row.reliability == null ? "–" : pct(row.reliability)) +
          (row.adversarial ? " (adversarial)" : "");
        if (row.adversarial) reliability.className = "error";
        tr.appendChild(reliability);
        var signals = document.createElement("td");
        signals.className = "signals";
        (row.signals_firing || []).forEach(function (name) {
          var signal = row.signals[name];
          var tag = document.createElement("span");
          tag.className = "flag";
          tag.textContent = name.replace(/_/g, " ") + " " + (signal.value === null ? "" : signal.value.toFixed(2));
          tag.title = signal.reason + " (threshold " + signal.threshold + ")";
          signals.appendChild(tag);
          signals.appendChild(document.createTextNode(" "));
        });
        if (!signals.childNodes.length) signals.textContent = "–";
        tr.appendChild(signals);
        body.appendChild(tr);
      });
    });
})();

/* Prompts ranked more than once: agreement, consensus, and (admins) a gold toggle per ranking. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("dashboard-config").textContent);
  var body = document.querySelector("#prompt-table tbody");
  if (!body) return;
  var pct = function (v) { return v === null ? "–" : Math.round(v * 100) + "%"; };
  var EXCERPT = 48;
  function excerpt(text) {
    var flat = text.replace(/\s+/g, " ").trim();
    return flat.length > EXCERPT ? flat.slice(0, EXCERPT - 1) + "…" : flat;
  }
  // An order as the answers' words, best first: "“Paris is…” > “Lyon…” = “Nice…”". Each excerpt
  // shows the whole answer on hover and is a button that unfolds it (and folds it back).
  function candidateNode(id, texts) {
    var text = texts[id];
    if (text === undefined) {
      var missing = document.createElement("span");
      missing.textContent = "#" + id + " (deleted)";
      return missing;
    }
    var node = document.createElement("button");
    node.type = "button";
    node.className = "answer-excerpt";
    node.dataset.candidateId = id;
    node.title = text;
    node.setAttribute("aria-expanded", "false");
    node.textContent = "“" + excerpt(text) + "”";
    node.addEventListener("click", function () {
      var open = node.getAttribute("aria-expanded") !== "true";
      node.setAttribute("aria-expanded", open ? "true" : "false");
      node.textContent = "“" + (open ? text : excerpt(text)) + "”";
    });
    return node;
  }
  function order(groups, texts) {
    var span = document.createElement("span");
    span.className = "order";
    groups.forEach(function (group, g) {
      if (g) span.appendChild(document.createTextNode(" > "));
      group.forEach(function (id, i) {
        if (i) span.appendChild(document.createTextNode(" = "));
        span.appendChild(candidateNode(id, texts));
      });
    });
    return span;
  }
  function csrfToken() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : (document.querySelector("[name=csrfmiddlewaretoken]") || {}).value;
  }
  function goldButton(ranking) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "gold-toggle";
    button.dataset.rankingId = ranking.id;
    var paint = function () {
      button.textContent = ranking.is_gold ? "★ gold" : "mark gold";
      button.setAttribute("aria-pressed", ranking.is_gold ? "true" : "false");
    };
    paint();
    button.addEventListener("click", function () {
      button.disabled = true;
      fetch(config.urls.gold_template.replace("/0/", "/" + ranking.id + "/"), {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ is_gold: !ranking.is_gold })
      }).then(function (r) { return r.ok ? r.json() : Promise.reject(new Error("status " + r.status)); })
        .then(function (saved) { ranking.is_gold = saved.is_gold; paint(); })
        .catch(function (e) { button.title = "Could not save: " + e.message; })
        .then(function () { button.disabled = false; });
    });
    return button;
  }
  fetch(config.urls.prompts + "?limit=50", { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) { return r.json(); })
    .then(function (page) {
      page.results.forEach(function (row) {
        var texts = {};
        row.candidates.forEach(function (c) { texts[c.id] = c.text; });
        var tr = document.createElement("tr");
        tr.dataset.promptId = row.prompt_id;
        var title = document.createElement("td");
        var link = document.createElement("a");
        link.href = config.urls.prompt_template.replace("/prompts/0/", "/prompts/" + row.prompt_id + "/");
        link.textContent = row.title;
        link.title = "Every answer, each labeler's rank and rating, and the reward model's scores";
        title.appendChild(link);
        tr.appendChild(title);
        [pct(row.agreement), row.kendall_tau === null ? "–" : row.kendall_tau.toFixed(2)].forEach(function (value) {
          var td = document.createElement("td");
          td.textContent = value;
          tr.appendChild(td);
        });
        var consensus = document.createElement("td");
        consensus.className = "consensus";
        consensus.appendChild(order(row.consensus_order, texts));
        if (row.cycles_broken) consensus.appendChild(document.createTextNode(" (cycle broken)"));
        tr.appendChild(consensus);
        var weighted = document.createElement("td");
        weighted.className = "consensus-weighted";
        weighted.title = "Each labeler's vote weighted by their estimated reliability";
        weighted.appendChild(order(row.weighted_consensus_order || [], texts));
        tr.appendChild(weighted);
        var cell = document.createElement("td");
        row.rankings.forEach(function (ranking) {
          var line = document.createElement("div");
          line.className = "ranking";
          line.appendChild(document.createTextNode((ranking.labeler || "import") + ": "));
          line.appendChild(order(ranking.order, texts));
          line.appendChild(document.createTextNode(" "));
          if (config.is_admin) line.appendChild(goldButton(ranking));
          else if (ranking.is_gold) line.appendChild(document.createTextNode("★ gold"));
          cell.appendChild(line);
        });
        tr.appendChild(cell);
        body.appendChild(tr);
      });
    });
})();
