/* The rank page: loads the task, mounts the ranking widget (rank-widget.js) and keeps its draft, the
   comment and the clock; submits or skips. The ranking itself (order, ties, ratings, flags, "none
   acceptable", side by side for two answers) is the widget's. */
(function () {
  "use strict";
  const task = Labeler.loadTask();
  Labeler.setupClosed(task);
  const container = document.getElementById("rank-widget");
  if (!container) return;
  const errorElement = document.getElementById("form-error");
  const commentBox = document.getElementById("comment");
  const submitButton = document.getElementById("submit");
  const userId = document.getElementById("task").dataset.user;
  const clock = new Labeler.TaskClock({task, userId});
  const idempotencyKey = Labeler.randomKey();
  let submitting = false;

  // ---- drafts: {order, items, none_acceptable, chosen, comment}, as the widget reports its state ----
  let widgetState = null;  // the widget's last reported state; null until the labeler changes it
  let restored = null;
  function collect() {
    const draft = {comment: commentBox.value};
    if (widgetState) {
      draft.order = widgetState.groups;
      draft.items = widgetState.items;
      draft.none_acceptable = widgetState.none_acceptable;
      draft.chosen = widgetState.chosen;
    }
    return draft;
  }
  function apply(draft) {
    restored = draft;
    if (typeof draft.comment === "string") commentBox.value = draft.comment;
  }
  const drafts = new Labeler.Drafts({
    task, userId, collect, apply, statusElement: document.getElementById("draft-status"), clock,
  });
  function changed() { errorElement.textContent = ""; drafts.changed(); }
  drafts.restore();

  const initial = restored && Array.isArray(restored.order) ? {
    groups: restored.order, items: restored.items, none_acceptable: restored.none_acceptable, chosen: restored.chosen,
  } : undefined;
  const widget = RankWidget.mount({
    container,
    candidates: task.candidates,
    flags: task.flags,
    ratingsRequired: task.project.ratings_required,
    layout: task.project.layout,
    allowNoneAcceptable: true,
    initial,
    onChange(state) { widgetState = state; changed(); },
    onSubmitKey: submit,
  });
  if (initial) widgetState = {...initial};
  // The keyboard works from the first moment: the best-placed answer has focus, not the page.
  widget.focus();
  commentBox.addEventListener("input", changed);
  Labeler.setupSkip(task, drafts);
  // Enter with nothing focused submits too, as it did before the widget took the keys inside it.
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target === document.body && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      submit();
    }
  });

  // ---- submit ----------------------------------------------------------------------------------------
  async function submit() {
    if (submitting) return;
    const problem = widget.validate();
    if (problem) { errorElement.textContent = problem; return; }
    const value = widget.value();
    submitting = true;
    submitButton.disabled = true;
    try {
      await Labeler.api("POST", `/api/labeler/assignments/${task.id}/ranking/`, {
        order: value.order,
        items: value.items,
        none_acceptable: value.none_acceptable,
        comment: commentBox.value,
        seconds_spent: clock.seconds(),
        idempotency_key: idempotencyKey,
      });
      drafts.clear();
      await Labeler.nextTask(task);
    } catch (error) {
      Labeler.showError(errorElement, error);
      submitting = false;
      submitButton.disabled = false;
    }
  }
  submitButton.addEventListener("click", submit);
})();
