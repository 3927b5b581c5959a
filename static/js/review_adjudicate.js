/* Adjudication page: the rank widget (rank-widget.js) over every answer the labelers ranked; "Record as
 * gold" posts the order to the adjudication API and reloads, where the server shows the stored gold
 * order. No inline script (CSP); the server's messages go in as text. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("adjudication-config").textContent);
  var host = document.getElementById("adjudication-widget");
  if (!host || config.done) return;
  var errorEl = document.getElementById("adjudication-error");
  var submit = document.getElementById("adjudication-submit");
  var reason = document.getElementById("adjudication-reason");

  function csrfToken() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    if (m) return decodeURIComponent(m[1]);
    var field = document.querySelector("[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function send() {
    var value = widget.value();
    errorEl.textContent = "";
    submit.disabled = true;
    fetch(config.submit, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ order: value.order, reason: reason.value.trim() }),
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.ok || r.status === 409) { window.location.reload(); return; }
        throw new Error((data.error && data.error.message) || "the server answered " + r.status);
      });
    }, function () {
      throw new Error("could not reach the server; nothing was changed");
    }).catch(function (e) {
      errorEl.textContent = "Not saved: " + e.message + ".";
      submit.disabled = false;
    });
  }

  var widget = window.RankWidget.mount({
    container: host,
    candidates: config.candidates,
    flags: config.flags,
    ratingsRequired: false,
    layout: "list",
    allowNoneAcceptable: false,
    onChange: function () { errorEl.textContent = ""; },
    onSubmitKey: send,
  });
  submit.addEventListener("click", send);
})();
