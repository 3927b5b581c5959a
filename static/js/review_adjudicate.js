/* Adjudication page: the rank widget (rank-widget.js) over every answer the labelers ranked; "Record as
 * gold" posts the order to the adjudication API and reloads, where the server shows the stored gold
 * order. Posts through the shared API client (labeler-common.js). No inline script (CSP); the server's
 * messages go in as text. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("adjudication-config").textContent);
  var host = document.getElementById("adjudication-widget");
  if (!host || config.done) return;
  var errorEl = document.getElementById("adjudication-error");
  var submit = document.getElementById("adjudication-submit");
  var reason = document.getElementById("adjudication-reason");

  function send() {
    var value = widget.value();
    errorEl.textContent = "";
    submit.disabled = true;
    window.Labeler.api("POST", config.submit, { order: value.order, reason: reason.value.trim() })
      .then(function () { window.location.reload(); })
      .catch(function (error) {
        // 409: adjudicated meanwhile; the reloaded page shows the stored gold order.
        if (error.status === 409) { window.location.reload(); return; }
        window.Labeler.showError(errorEl, { message: "Not saved: " + error.message, isAuth: error.isAuth });
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
