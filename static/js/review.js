/* Review page: Accept or Reject (with a note) the submission shown, through the review API, then load
 * the next one. The item itself is rendered by the server; this only posts the decision. No inline
 * script (CSP); the server's messages go in as text. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("review-config").textContent);
  var item = document.getElementById("review-item");
  if (!item) return;
  var reason = document.getElementById("review-reason");
  var errorEl = document.getElementById("review-error");
  var buttons = [document.getElementById("review-accept"), document.getElementById("review-reject")];

  function csrfToken() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    if (m) return decodeURIComponent(m[1]);
    var field = document.querySelector("[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function decide(decision) {
    var note = reason.value.trim();
    if (decision === "reject" && !note) {
      errorEl.textContent = "Say why you reject it: the labeler reads this note.";
      reason.focus();
      return;
    }
    errorEl.textContent = "";
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(config.decide, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ kind: item.dataset.kind, id: Number(item.dataset.id), decision: decision, reason: note }),
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        // 409: another reviewer decided first; the next item is what matters either way.
        if (r.ok || r.status === 409) { window.location.reload(); return; }
        throw new Error((data.error && data.error.message) || "the server answered " + r.status);
      });
    }, function () {
      throw new Error("could not reach the server; nothing was changed");
    }).catch(function (e) {
      errorEl.textContent = "Not saved: " + e.message + ".";
      buttons.forEach(function (b) { b.disabled = false; });
    });
  }

  buttons[0].addEventListener("click", function () { decide("accept"); });
  buttons[1].addEventListener("click", function () { decide("reject"); });
})();
