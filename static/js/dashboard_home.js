/* Dashboard home: each project's active reward-model version, from the reward-model app's API (the
   page itself is rendered without that app), with the sample behind its validation accuracy. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("home-config").textContent);
  if (!config.urls.active_reward_models) return;
  var cells = document.querySelectorAll("td.reward-model[data-project-id]");
  var pct = function (v) { return Math.round(v * 100) + "%"; };

  function describe(model) {
    var text = "v" + model.version;
    if (model.validation_accuracy === null) return text + " (not validated)";
    text += ": " + pct(model.validation_accuracy);
    if (model.validation_pairs) {
      text += " on " + model.validation_pairs + " held-out pairs" +
        (model.validation_prompts ? " of " + model.validation_prompts + " prompts" : "");
    }
    return text;
  }

  fetch(config.urls.active_reward_models + "?limit=" + Math.max(cells.length, 1), {
    credentials: "same-origin", headers: { Accept: "application/json" }
  })
    .then(function (r) { if (!r.ok) throw new Error("status " + r.status); return r.json(); })
    .then(function (page) {
      var byProject = {};
      page.results.forEach(function (model) { byProject[model.project] = model; });
      cells.forEach(function (cell) {
        var model = byProject[cell.dataset.projectId];
        cell.textContent = model ? describe(model) : "none active";
        cell.classList.toggle("muted", !model);
      });
    })
    .catch(function (e) {
      cells.forEach(function (cell) { cell.textContent = "?"; cell.title = "Could not load: " + e.message; });
    });
})();
