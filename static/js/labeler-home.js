/* Labeler home: a start button leases a task through the API and opens it. */
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
})();
