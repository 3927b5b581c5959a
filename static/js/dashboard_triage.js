/* Triage page: fetches the reward-model app's triage API and lists (1) prompts where the active model
 * confidently disagrees with the labelers' consensus, each disputed pair's texts and each counted
 * ranking with its actions, (2) labelers by lowest agreement, (3) excluded rankings with Restore.
 * Actions post to the quality API; after one that changes the lists, the lists are fetched again, so
 * what the page shows is always what the server holds. Built with DOM calls only: no inline script
 * or style (CSP), and every text from the server goes in as text, never as HTML. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("triage-config").textContent);
  var statusEl = document.getElementById("triage-status");
  if (!config.urls.triage) return;
  var noticeEl = document.getElementById("triage-notice");
  var promptsEl = document.getElementById("triage-prompts");
  var labelersBody = document.querySelector("#triage-labelers tbody");
  var excludedBody = document.querySelector("#triage-excluded tbody");
  var excludedCard = document.getElementById("triage-excluded-card");
  var form = document.getElementById("triage-threshold");
  var input = document.getElementById("triage-confident");
  var MIN_CONFIDENT = 0.5, MAX_CONFIDENT = 0.999;
  var REASON_MORE = "triage: the reward model confidently disagrees with the consensus";
  var confident = new URLSearchParams(window.location.search).get("confident");
  var extraAsked = {}; // prompt id -> extra rankings the server last confirmed

  function el(name, text, attrs) {
    var node = document.createElement(name);
    if (text !== undefined && text !== null) node.textContent = text;
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }
  function pct(value) { return value === null || value === undefined ? "–" : Math.round(value * 100) + "%"; }
  // Near certainty the tenths matter: 99.8 % is not 100 %.
  function probability(value) { return value >= 0.99 && value < 1 ? (value * 100).toFixed(1) + "%" : pct(value); }
  function withId(template, id) { return template.replace("/0/", "/" + id + "/"); }
  // The prompt's segment is matched by name: the project's part of the path is left alone.
  function promptUrl(id) { return config.urls.prompt_template.replace("/prompts/0/", "/prompts/" + id + "/"); }
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function csrfToken() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    if (m) return decodeURIComponent(m[1]);
    var field = document.querySelector("[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  // A failed request becomes an Error with the server's message and status; an unreachable server
  // (fetch's TypeError) becomes one that says so, since its own text ("Failed to fetch") explains nothing.
  function request(method, url, body) {
    var headers = { Accept: "application/json" };
    var options = { method: method, credentials: "same-origin", headers: headers };
    if (method !== "GET") {
      headers["X-CSRFToken"] = csrfToken();
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body || {});
    }
    return fetch(url, options).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.ok) return data;
        var error = new Error((data.error && data.error.message) || (data.detail) || ("the server answered " + r.status));
        error.status = r.status;
        throw error;
      });
    }, function () {
      var error = new Error("could not reach the server; nothing was changed. Check the connection and try again");
      error.status = 0;
      throw error;
    });
  }

  function say(target, text, isError) {
    target.textContent = text;
    target.hidden = !text;
    target.classList.toggle("error", !!isError);
  }

  // --- Loading ----------------------------------------------------------------------------------

  function load() {
    var url = config.urls.triage + (confident ? "?confident=" + encodeURIComponent(confident) : "");
    say(statusEl, "Loading…");
    return request("GET", url).then(render, function (e) {
      say(statusEl, "Could not load the triage lists: " + e.message + ".", true);
      var retry = statusEl.appendChild(el("button", "Try again", { type: "button", class: "triage-retry" }));
      retry.addEventListener("click", load);
    });
  }

  function render(data) {
    input.value = data.confident;
    if (data.reward_model === null) {
      say(statusEl, "No reward model is active in this project yet, so there are no disagreements to list: " +
        "once a version is trained and active, the rankings it confidently disagrees with appear here. " +
        "Agreement between labelers is below.");
    } else {
      say(statusEl, "Reward model v" + data.reward_model_version + ": " +
        plural(data.prompts.length, "prompt") + " where it gives the opposite of the consensus a probability of " +
        probability(data.confident) + " or more.");
    }
    renderPrompts(data);
    renderLabelers(data.labelers);
    renderExcluded(data.excluded);
  }

  // --- Confident disagreements --------------------------------------------------------------------

  // How one ranking ordered the disputed pairs: as the consensus, the other way, or tied.
  function pairTally(order, pairs) {
    var group = {};
    order.forEach(function (ids, index) { ids.forEach(function (id) { group[id] = index; }); });
    var tally = { same: 0, reversed: 0, tied: 0 };
    pairs.forEach(function (pair) {
      if (!(pair.better in group) || !(pair.worse in group)) return;
      var diff = group[pair.better] - group[pair.worse];
      tally[diff < 0 ? "same" : diff > 0 ? "reversed" : "tied"] += 1;
    });
    return tally;
  }

  function renderPrompts(data) {
    promptsEl.textContent = "";
    if (data.reward_model === null) return;
    if (!data.prompts.length) {
      promptsEl.appendChild(el("p", "None at this threshold: the model and the labelers' consensus agree, or the model is " +
        "not that sure. Lower the threshold to see closer calls.", { class: "muted" }));
      return;
    }
    data.prompts.forEach(function (row) { promptsEl.appendChild(promptBlock(row)); });
  }

  function promptBlock(row) {
    var block = el("article", null, { class: "triage-prompt", "data-prompt-id": row.prompt_id });
    var heading = block.appendChild(el("h3"));
    heading.appendChild(el("a", row.title || "Prompt " + row.prompt_id, {
      href: promptUrl(row.prompt_id),
    }));
    heading.appendChild(el("span", " model up to " + probability(row.confidence) + " for the opposite order", { class: "muted triage-confidence" }));

    var pairs = block.appendChild(el("ol", null, { class: "triage-pairs" }));
    row.disagreements.forEach(function (pair) {
      var item = pairs.appendChild(el("li", null, { class: "triage-pair" }));
      item.appendChild(el("p", "The model: " + probability(pair.model_probability) + " that the second is better", { class: "triage-probability" }));
      var sides = item.appendChild(el("div", null, { class: "triage-sides" }));
      [["Better by consensus", pair.better_text, "better"], ["Worse by consensus", pair.worse_text, "worse"]].forEach(function (side) {
        var box = sides.appendChild(el("div", null, { class: "triage-side triage-" + side[2] }));
        box.appendChild(el("div", side[0], { class: "triage-side-label" }));
        box.appendChild(el("div", side[1], { class: "triage-text candidate-text" }));
      });
    });

    var message = el("p", null, { class: "triage-message", role: "status" });
    message.hidden = true;
    var rankings = block.appendChild(el("ul", null, { class: "triage-rankings" }));
    row.rankings.forEach(function (ranking) { rankings.appendChild(rankingItem(ranking, row, message)); });

    var more = block.appendChild(el("p", null, { class: "triage-prompt-actions" }));
    var moreButton = more.appendChild(el("button", "Ask for one more ranking", { type: "button", class: "triage-more" }));
    moreButton.addEventListener("click", function () { askForMore(row, moreButton, message); });
    block.appendChild(message);
    return block;
  }

  function rankingItem(ranking, row, message) {
    var item = el("li", null, { class: "triage-ranking", "data-ranking-id": ranking.id });
    var who = item.appendChild(el("span", null, { class: "triage-who" }));
    who.appendChild(el("strong", ranking.labeler));
    if (ranking.is_gold) who.appendChild(el("span", " ★ gold", { class: "triage-gold" }));
    var tally = pairTally(ranking.order, row.disagreements);
    var parts = [tally.same + " as the consensus", tally.reversed + " reversed"];
    if (tally.tied) parts.push(tally.tied + " tied");
    item.appendChild(el("span", " · on these pairs: " + parts.join(", "), { class: "muted" }));

    var actions = item.appendChild(el("span", null, { class: "triage-actions" }));
    var excludeButton = actions.appendChild(el("button", "Exclude", { type: "button", class: "triage-exclude" }));
    if (config.is_admin) {
      var goldButton = actions.appendChild(el("button", ranking.is_gold ? "Unmark gold" : "Mark gold", { type: "button", class: "triage-gold-toggle" }));
      goldButton.addEventListener("click", function () { setGold(ranking, goldButton, message); });
    }
    var excludeForm = item.appendChild(excludeFormFor(ranking, excludeButton, message));
    excludeButton.addEventListener("click", function () {
      excludeForm.hidden = !excludeForm.hidden;
      if (!excludeForm.hidden) excludeForm.querySelector("input").focus();
    });
    return item;
  }

  // The reason is asked for in a small form under the ranking (no window.prompt: it blocks the page
  // and cannot be styled or tested); the server refuses a blank one, and so does this form.
  function excludeFormFor(ranking, excludeButton, message) {
    var formEl = el("form", null, { class: "triage-exclude-form" });
    formEl.hidden = true;
    var inputId = "exclude-reason-" + ranking.id;
    formEl.appendChild(el("label", "Why exclude " + ranking.labeler + "'s ranking?", { for: inputId }));
    var reason = formEl.appendChild(el("input", null, { type: "text", id: inputId, name: "reason", maxlength: "500", autocomplete: "off" }));
    var submit = formEl.appendChild(el("button", "Exclude", { type: "submit", class: "primary" }));
    var cancel = formEl.appendChild(el("button", "Cancel", { type: "button" }));
    cancel.addEventListener("click", function () { formEl.hidden = true; say(message, ""); excludeButton.focus(); });
    formEl.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!reason.value.trim()) {
        say(message, "Say why this ranking is excluded: the reason is recorded with the exclusion.", true);
        reason.focus();
        return;
      }
      submit.disabled = true;
      request("POST", withId(config.urls.exclude_template, ranking.id), { reason: reason.value.trim() })
        .then(function () {
          say(noticeEl, "Excluded " + ranking.labeler + "'s ranking " + ranking.id + ": it no longer counts. " +
            "It is listed under Excluded rankings, where Restore undoes it.");
          return load();
        }, function (e) {
          submit.disabled = false;
          say(message, "Could not exclude the ranking: " + e.message + ".", true);
        });
    });
    return formEl;
  }

  function setGold(ranking, button, message) {
    button.disabled = true;
    request("POST", withId(config.urls.gold_template, ranking.id), { is_gold: !ranking.is_gold })
      .then(function (body) {
        say(noticeEl, (body.is_gold ? "Marked " : "Unmarked ") + ranking.labeler + "'s ranking " + ranking.id + " as gold.");
        return load();
      }, function (e) {
        button.disabled = false;
        say(message, e.status === 403
          ? "Only the project's admins can mark a ranking gold (the server answered 403)."
          : "Could not change the gold mark: " + e.message + ".", true);
      });
  }

  function askForMore(row, button, message) {
    // The API sets the rankings wanted beyond the overlap; "one more" is one beyond what the prompt has
    // (or was last asked here), so a second click asks for another.
    var known = extraAsked[row.prompt_id];
    if (known === undefined) known = typeof row.extra_rankings === "number" ? row.extra_rankings : Math.max(0, row.rankings.length - config.overlap);
    button.disabled = true;
    request("POST", withId(config.urls.more_rankings_template, row.prompt_id), { extra: known + 1, reason: REASON_MORE })
      .then(function (body) {
        extraAsked[row.prompt_id] = body.extra_rankings;
        button.disabled = false;
        say(message, "Asked: this prompt now wants " + plural(body.extra_rankings, "ranking") + " beyond the overlap of " +
          config.overlap + "; the queue serves it to a labeler who has not ranked it.");
      }, function (e) {
        button.disabled = false;
        say(message, "Could not ask for another ranking: " + e.message + ".", true);
      });
  }

  // --- Labelers and excluded rankings --------------------------------------------------------------

  function renderLabelers(labelers) {
    labelersBody.textContent = "";
    if (!labelers.length) {
      labelersBody.appendChild(el("tr")).appendChild(el("td", "No counted rankings yet.", { colspan: "3", class: "muted" }));
      return;
    }
    labelers.forEach(function (row) {
      var tr = labelersBody.appendChild(el("tr", null, { "data-labeler-id": row.labeler_id }));
      tr.appendChild(el("td", row.username));
      tr.appendChild(el("td", pct(row.model_agreement) + " of " + plural(row.model_pairs, "pair")));
      tr.appendChild(el("td", pct(row.peer_agreement) + " of " + plural(row.peer_pairs, "pair")));
    });
  }

  var excludedMessage = excludedCard.appendChild(el("p", null, { class: "triage-message", role: "status" }));
  excludedMessage.hidden = true;

  function renderExcluded(excluded) {
    excludedBody.textContent = "";
    if (!excluded.length) {
      excludedBody.appendChild(el("tr")).appendChild(el("td", "No ranking is excluded.", { colspan: "5", class: "muted" }));
      return;
    }
    excluded.forEach(function (row) {
      var tr = excludedBody.appendChild(el("tr", null, { "data-ranking-id": row.id }));
      tr.appendChild(el("td", String(row.id)));
      tr.appendChild(el("td")).appendChild(el("a", "Prompt " + row.prompt_id, {
        href: promptUrl(row.prompt_id),
      }));
      tr.appendChild(el("td", row.labeler));
      tr.appendChild(el("td", row.quality_state.replace(/_/g, " ")));
      var button = tr.appendChild(el("td")).appendChild(el("button", "Restore", { type: "button", class: "triage-restore" }));
      button.addEventListener("click", function () {
        button.disabled = true;
        request("POST", withId(config.urls.restore_template, row.id), { reason: "restored from triage" })
          .then(function () {
            say(excludedMessage, "");
            say(noticeEl, "Restored " + row.labeler + "'s ranking " + row.id + ": it counts again.");
            return load();
          }, function (e) {
            button.disabled = false;
            say(excludedMessage, "Could not restore ranking " + row.id + ": " + e.message + ".", true);
          });
      });
    });
  }

  // --- The threshold -------------------------------------------------------------------------------

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var value = parseFloat(input.value);
    if (!(value >= MIN_CONFIDENT && value <= MAX_CONFIDENT)) {
      say(statusEl, "The threshold is a probability from " + MIN_CONFIDENT + " to " + MAX_CONFIDENT + ".", true);
      input.focus();
      return;
    }
    confident = String(value);
    // In the address too, so a reload or a shared link shows the same lists.
    var params = new URLSearchParams(window.location.search);
    params.set("confident", confident);
    window.history.replaceState(null, "", window.location.pathname + "?" + params.toString());
    say(noticeEl, "");
    load();
  });

  load();
})();
