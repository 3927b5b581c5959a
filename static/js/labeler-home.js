/* Labeler home: a start button leases a task through the API and opens it; the counts and buttons
   refresh by themselves while the page is in view, so work that appears (candidates generated,
   a lease returned) is offered without a reload. */
(function () {
  "use strict";
  const errorElement = document.getElementById("start-error");
  document.querySelectorAll("button.start").forEach((button) => {
    button.addEventListener("click", async () => {
      errorElement.textContent = "";
      button.disabled = true;
      try {
        const body = {project: Number(button.dataset.project), kind: button.dataset.kind};
        const {status, data} = await Labeler.api("POST", "/api/labeler/assignments/lease/", body);
        if (status === 204) {
          errorElement.textContent = "No task of that kind is available right now.";
          button.disabled = false;
          return;
        }
        location.assign(`/tasks/${data.id}/`);
      } catch (error) {
        Labeler.showError(errorElement, error);
        button.disabled = false;
      }
    });
  });

  // ---- a conversation from the labeler's own opening message ------------------------------------
  document.querySelectorAll("form.opening-form").forEach((form) => {
    const box = form.querySelector("textarea");
    const error = form.querySelector(".opening-error");
    const submit = form.querySelector("button[type=submit]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      if (!box.value.trim()) { error.textContent = "Write the message the conversation starts with."; box.focus(); return; }
      submit.disabled = true;
      try {
        const {data} = await Labeler.api("POST", "/api/labeler/converse/open/", {project: Number(form.dataset.project), opening: box.value});
        location.assign(`/tasks/${data.id}/`);
      } catch (failure) {
        Labeler.showError(error, failure);
        submit.disabled = false;
      }
    });
    // Ctrl/Cmd+Enter starts it from the text area; a plain Enter is a new line.
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); form.requestSubmit(); }
    });
  });

  // ---- refresh ---------------------------------------------------------------------------------
  const REFRESH_MS = window.labelerHomeRefreshMs || 15000;
  // The same words as the server-rendered page (templates/labeler/home.html).
  function comingText(project) {
    const n = project.rank_generating;
    if (!n) return "";
    let text = `${n} more to rank ${n === 1 ? "is" : "are"} being written by the model`;
    if (project.generation_seconds) text += `, about ${Math.round(project.generation_seconds)} s per prompt`;
    return text + `; this page offers ${n === 1 ? "it" : "them"} by itself.`;
  }
  async function refresh() {
    if (document.visibilityState !== "visible") return;
    let data;
    try {
      ({data} = await Labeler.api("GET", "/api/labeler/work/"));
    } catch (error) {
      return;  // a passing failure: the next round tries again; a lease attempt shows real errors
    }
    for (const project of data.projects) {
      const row = document.querySelector(`tr[data-project="${project.id}"]`);
      if (!row) continue;
      for (const kind of ["demonstrate", "rank"]) {
        row.querySelector(`[data-count=${kind}]`).textContent = String(project[kind]);
        row.querySelector(`button.start[data-kind=${kind}]`).disabled = !project[kind];
      }
      row.querySelector("button.start[data-kind=any]").disabled = !(project.rank || project.demonstrate);
      // Only projects with conversations have their count and button on the page.
      const converseCount = row.querySelector("[data-count=converse]");
      const converseButton = row.querySelector("button.start[data-kind=converse]");
      if (converseButton) {
        converseButton.disabled = !project.converse;
        if (converseCount) converseCount.textContent = String(project.converse);
      }
      row.querySelector("[data-coming]").textContent = comingText(project);
    }
  }
  setInterval(refresh, REFRESH_MS);
  document.addEventListener("visibilitychange", refresh);
})();
