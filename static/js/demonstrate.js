/* Write a demonstration: autosaved draft, length check, submit, then the next task. */
(function () {
  "use strict";
  const task = Labeler.loadTask();
  Labeler.setupClosed(task);
  const answer = document.getElementById("answer");
  if (!answer) return;
  const counter = document.getElementById("char-count");
  const errorElement = document.getElementById("form-error");
  const submitButton = document.getElementById("submit");
  const minChars = task.project.min_demonstration_chars;
  const clock = new Labeler.TaskClock({task, userId: document.getElementById("task").dataset.user});
  const idempotencyKey = Labeler.randomKey();

  function count() { counter.textContent = String(answer.value.trim().length); }

  const drafts = new Labeler.Drafts({
    task,
    userId: document.getElementById("task").dataset.user,
    collect: () => ({text: answer.value}),
    apply: (draft) => { if (typeof draft.text === "string") answer.value = draft.text; },
    statusElement: document.getElementById("draft-status"),
    clock,
  });
  drafts.restore();
  count();
  answer.addEventListener("input", () => { count(); errorElement.textContent = ""; drafts.changed(); });
  Labeler.setupSkip(task, drafts);

  async function submit() {
    const text = answer.value.trim();
    if (!text) { errorElement.textContent = "The answer is empty: write the reply a good assistant would give."; return; }
    if (text.length < minChars) {
      errorElement.textContent = `The answer has ${text.length} characters; this project asks for at least ${minChars}.`;
      return;
    }
    submitButton.disabled = true;
    try {
      await Labeler.api("POST", `/api/labeler/assignments/${task.id}/demonstration/`, {
        text: answer.value,
        idempotency_key: idempotencyKey,
        seconds_spent: clock.seconds(),
      });
      drafts.clear();
      await Labeler.nextTask(task);
    } catch (error) {
      Labeler.showError(errorElement, error);
      submitButton.disabled = false;
    }
  }
  submitButton.addEventListener("click", submit);
  // Ctrl/Cmd+Enter submits from the text area; a plain Enter is a new line.
  answer.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(); }
  });
})();
