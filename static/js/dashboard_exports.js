/* Export page: poll running export jobs and update their progress bars and download links. */
(function () {
  "use strict";
  function poll() {
    var rows = document.querySelectorAll("tr[data-job-url][data-status='queued'], tr[data-job-url][data-status='running']");
    if (!rows.length) return;
    rows.forEach(function (row) {
      fetch(row.dataset.jobUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (job) {
          if (!job) return;
          row.dataset.status = job.status;
          row.querySelector(".status").textContent = job.status;
          row.querySelector("progress").value = job.progress;
          row.querySelector(".rows").textContent = job.rows_written + (job.rows_total ? " / " + job.rows_total : "");
          if (job.status === "succeeded") {
            row.querySelector(".download").innerHTML = '<a href="' + row.dataset.fileUrl + '">Download</a> · <a href="' +
              row.dataset.cardUrl + '">Dataset card</a>';
          } else if (job.status === "failed") {
            row.querySelector(".download").textContent = job.error;
          }
        });
    });
    setTimeout(poll, 1500);
  }
  poll();
})();

// "Download now" is a GET: keep the CSRF token (needed by the background POST) out of its URL.
(function () {
  var button = document.getElementById("download-now");
  var token = document.querySelector("#export-form [name=csrfmiddlewaretoken]");
  if (!button || !token) return;
  button.addEventListener("click", function () {
    token.disabled = true;
    setTimeout(function () { token.disabled = false; }, 0);
  });
})();

// The form remembers the admin's choices in the page's URL (a reload, or the page a background job
// returns to, shows them again) and previews how many rows they give, counted by the server.
(function () {
  "use strict";
  var form = document.getElementById("export-form");
  var out = document.getElementById("export-count");
  if (!form || !out) return;
  var KINDS = {
    pairs: "preference pairs", kto: "labelled answers (KTO)", rankings: "prompts with their rankings",
    demonstrations: "demonstrations", prompts: "prompts",
    conversation_pairs: "preference pairs of conversation turns", trees: "conversation trees"
  };

  function choices() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (key !== "csrfmiddlewaretoken" && value !== "") params.append(key, value);
    });
    return params;
  }
  // The API takes labelers as one comma-separated value, the page's form as repeated fields.
  function countQuery(params) {
    var query = new URLSearchParams(params);
    var labelers = query.getAll("labelers");
    query.delete("labelers");
    if (labelers.length) query.set("labelers", labelers.join(","));
    return query;
  }

  var sequence = 0;
  function refresh() {
    var params = choices();
    history.replaceState(null, "", location.pathname + (params.toString() ? "?" + params : ""));
    var mine = ++sequence;
    out.classList.remove("error");
    out.textContent = "Counting rows…";
    fetch(form.dataset.countUrl + "?" + countQuery(params), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error((body.error && body.error.message) || ("status " + r.status));
          return body;
        });
      })
      .then(function (body) {
        if (mine !== sequence) return; // an older answer arriving after a newer question
        out.dataset.rows = body.rows;
        out.textContent = "These filters give " + body.rows.toLocaleString("en") + " row" + (body.rows === 1 ? "" : "s") +
          " (" + (KINDS[body.row_kind] || body.row_kind) + ").";
      })
      .catch(function (e) {
        if (mine !== sequence) return;
        delete out.dataset.rows;
        out.classList.add("error");
        out.textContent = "Cannot export with these filters: " + e.message;
      });
  }
  var timer = null;
  function later() { clearTimeout(timer); timer = setTimeout(refresh, 250); }
  form.addEventListener("change", later);
  form.addEventListener("input", later);
  refresh();
})();
