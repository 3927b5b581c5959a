/* Review page: Accept or Reject (with a note) the submission shown, through the review API, then load
 * the next one. The item itself is rendered by the server; this only posts the decision, through the
 * shared API client (labeler-common.js). No inline script (CSP); the server's messages go in as text. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("review-config").textContent);
  var item = document.getElementById("review-item");
  if (!item) return;
  var reason = document.getElementById("review-reason");
  var errorEl = document.getElementById("review-error");
  var buttons = [document.getElementById("review-accept"), document.getElementById("review-reject")];

  function decide(decision) {
    var note = reason.value.trim();
    if (decision === "reject" && !note) {
      errorEl.textContent = "Say why you reject it: the labeler reads this note.";
      reason.focus();
      return;
    }
    errorEl.textContent = "";
    buttons.forEach(function (b) { b.disabled = true; });
    window.Labeler.api("POST", config.decide,
      { kind: item.dataset.kind, id: Number(item.dataset.id), decision: decision, reason: note })
      .then(function () { window.location.reload(); })
      .catch(function (error) {
        // 409: another reviewer decided first; the next item is what matters either way.
        if (error.status === 409) { window.location.reload(); return; }
        window.Labeler.showError(errorEl, { message: "Not saved: " + error.message, isAuth: error.isAuth });
        buttons.forEach(function (b) { b.disabled = false; });
      });
  }

  buttons[0].addEventListener("click", function () { decide("accept"); });
  buttons[1].addEventListener("click", function () { decide("reject"); });
})();
