/* Prompt page: the active reward model's score and rank-by-score beside each answer. The scores come
   from the reward-model app's API (the page itself is rendered without that app). */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("prompt-config").textContent);
  var status = document.getElementById("reward-model-status");
  if (!config.urls.scores) return;
  var pct = function (v) { return Math.round(v * 100) + "%"; };

  function fillAll(selector, text) {
    document.querySelectorAll(selector).forEach(function (cell) { cell.textContent = text; });
  }
  // 68 % from 24 held-out pairs is not 68 % from 2,400: the sample goes with the figure.
  function describe(model) {
    var text = "Scores from the active reward model, v" + model.version;
    if (model.validation_accuracy !== null) {
      text += ": validation accuracy " + pct(model.validation_accuracy);
      if (model.validation_pairs) {
        text += " on " + model.validation_pairs + " held-out pairs" +
          (model.validation_prompts ? " of " + model.validation_prompts + " prompts" : "");
      }
    }
    return text + ".";
  }

  fetch(config.urls.scores, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error((body.error && body.error.message) || ("status " + r.status));
        return body;
      });
    })
    .then(function (data) {
      if (!data.reward_model) {
        status.textContent = "No reward model is active in this project yet, so there are no scores.";
        fillAll("td.score, td.score-rank", "–");
        return;
      }
      status.textContent = describe(data.reward_model);
      var byCandidate = {};
      data.scores.forEach(function (s) { byCandidate[s.candidate_id] = s; });
      document.querySelectorAll("#prompt-review tbody tr[data-candidate-id]").forEach(function (row) {
        var score = byCandidate[row.dataset.candidateId];
        row.querySelector("td.score").textContent = score ? (score.score >= 0 ? "+" : "") + score.score.toFixed(3) : "not scored";
        row.querySelector("td.score-rank").textContent = score ? score.rank : "–";
      });
    })
    .catch(function (e) {
      status.textContent = "Could not load the reward model's scores: " + e.message;
      status.classList.add("error");
      fillAll("td.score, td.score-rank", "?");
    });
})();
