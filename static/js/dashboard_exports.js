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
            row.querySelector(".download").innerHTML = '<a href="' + row.dataset.fileUrl + '">Download</a>';
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
