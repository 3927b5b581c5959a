/* Project dashboard: the reward model's versions measured on the frozen evaluation set (the history
 * API's `evaluation`): accuracy and RM-labeler beside labeler-labeler agreement per version, the
 * calibration error per version, and the latest version's reliability diagram and score histogram.
 * dashboard.js calls window.drawRewardModelEvaluation(runs) with the runs it has just read. */
(function () {
  "use strict";
  var pct = function (v) { return Math.round(v * 100) + "%"; };
  var number = function (v) { return Math.round(v * 100) / 100; };
  function value(v) { return v === undefined ? null : v; }

  window.drawRewardModelEvaluation = function (runs) {
    var agreementEl = document.getElementById("chart-rm-eval-agreement");
    var eceEl = document.getElementById("chart-rm-eval-ece");
    var reliabilityEl = document.getElementById("chart-rm-eval-reliability");
    var scoresEl = document.getElementById("chart-rm-eval-scores");
    if (!agreementEl) return;
    // Oldest first, so the lines read left to right as the model was retrained.
    var versions = runs.filter(function (r) { return r.version !== null && r.evaluation; }).reverse();
    var labels = versions.map(function (r) { return "v" + r.version; });
    renderLineChart(agreementEl, {
      title: "Frozen evaluation set per version",
      labels: labels,
      series: [
        { name: "accuracy", values: versions.map(function (r) { return value(r.evaluation.accuracy); }) },
        { name: "RM-labeler", values: versions.map(function (r) { return value(r.evaluation.rm_labeler.agreement); }) },
        {
          name: "labeler-labeler",
          values: versions.map(function (r) { return r.evaluation.labeler_labeler ? value(r.evaluation.labeler_labeler.agreement) : null; })
        }
      ],
      yMin: 0, yMax: 1, yFormat: pct, emptyMessage: "no version measured on the frozen set yet"
    });
    renderBarChart(eceEl, {
      title: "Expected calibration error per version",
      labels: versions.map(function (r) { return "v" + r.version + " (" + r.evaluation.calibration.pairs + " pairs)"; }),
      values: versions.map(function (r) { return value(r.evaluation.calibration.ece); }),
      yFormat: function (v) { return v.toFixed(2); }, emptyMessage: "no version measured on the frozen set yet"
    });

    var latest = versions.length ? versions[versions.length - 1] : null;
    var suffix = latest ? " (v" + latest.version + ")" : "";
    var bins = latest ? latest.evaluation.calibration.bins : [];
    renderLineChart(reliabilityEl, {
      title: "Reliability diagram" + suffix,
      labels: bins.map(function (b) { return b.lower.toFixed(1) + "–" + b.upper.toFixed(1); }),
      series: [
        { name: "observed frequency" + suffix, values: bins.map(function (b) { return value(b.observed); }) },
        { name: "perfectly calibrated", values: bins.map(function (b) { return (b.lower + b.upper) / 2; }), color: "#9aa3b2" }
      ],
      yMin: 0, yMax: 1, yFormat: pct, emptyMessage: "no version measured on the frozen set yet"
    });
    var scores = latest ? latest.evaluation.scores : { edges: [], counts: [] };
    var every = Math.max(1, Math.ceil(scores.counts.length / 5));
    renderBarChart(scoresEl, {
      title: "Score distribution" + suffix,
      // Every few bins' left edge, so the labels do not run into each other.
      labels: scores.counts.map(function (_, i) { return i % every ? "" : number(scores.edges[i]); }),
      values: scores.counts,
      colors: scores.counts.map(function () { return "#2451d6"; }),
      yFormat: function (v) { return Math.round(v * 10) / 10; }, emptyMessage: "no version measured on the frozen set yet"
    });
  };
})();
