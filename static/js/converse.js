/* Talk to the model, one turn per page: the K replies stream in side by side (server-sent events
   from the turn's stored state, so a reload shows all that has arrived and keeps streaming), then
   the labeler ranks them with the rank page's widget, may edit the best one or write their own,
   and sends the next user message (a new turn, a new page) or ends the conversation. Everything
   typed is kept as a draft; a failed or stalled backend is said plainly and retried from here. */
(function () {
  "use strict";
  const task = Labeler.loadTask();
  Labeler.setupClosed(task);
  const panes = document.getElementById("reply-panes");
  if (!panes) return;  // a submitted or skipped turn: the page only shows the conversation
  const $ = (id) => document.getElementById(id);
  const userId = $("task").dataset.user;
  const conversation = task.conversation || {};
  const canContinue = Boolean(conversation.can_continue);
  const repliesSection = $("replies"), statusLine = $("live-status"), problem = $("live-problem");
  const judge = $("judge"), errorElement = $("form-error");
  const editToggle = $("edit-toggle"), editPanel = $("edit-panel"), editText = $("edit-text");
  const ownReplyArea = $("own-reply-area"), ownReply = $("own-reply"), comment = $("comment");
  const nextTurn = $("next-turn"), sendButton = $("send"), endButton = $("end"), retryButton = $("retry");
  const minChars = task.project.min_demonstration_chars;
  const clock = new Labeler.TaskClock({task, userId});
  const letter = (index) => String.fromCharCode(65 + index);

  // One key per turn, kept across reloads: a POST retried after a lost answer stores nothing twice.
  const keyStorage = `rlhf-turn-key:${userId}:${task.id}`;
  let idempotencyKey = null;
  try { idempotencyKey = localStorage.getItem(keyStorage); } catch (error) { /* no storage */ }
  function keepKey(key) {
    idempotencyKey = key;
    try { localStorage.setItem(keyStorage, key); } catch (error) { /* storage full */ }
  }
  if (!idempotencyKey) keepKey(Labeler.randomKey());

  // ---- the replies as they stream ---------------------------------------------------------------
  const STATUS_TEXT = {
    queued: "Waiting for the model to start…",
    running: "The model is writing its replies…",
    done: "The replies are written: rank them below.",
  };
  let live = conversation.live || null;
  let source = null;
  const paneTexts = [];

  function buildPanes(count) {
    panes.replaceChildren();
    paneTexts.length = 0;
    panes.dataset.count = String(count);
    for (let index = 0; index < count; index++) {
      const pane = document.createElement("article");
      pane.className = "reply-pane";
      pane.dataset.slot = String(index);
      const header = document.createElement("header");
      header.textContent = "Reply " + letter(index);
      const body = document.createElement("div");
      body.className = "reply-text";
      body.append(document.createTextNode(""));
      pane.append(header, body);
      panes.append(pane);
      paneTexts.push(body.firstChild);
    }
  }

  function showState() {
    const status = live ? live.status : "failed";
    repliesSection.dataset.status = status;
    panes.setAttribute("aria-busy", String(status === "queued" || status === "running"));
    const failed = status === "failed" || status === "stalled";
    problem.hidden = !failed;
    if (failed) {
      const message = (live && live.error) || "The replies could not be written. Retry.";
      $("live-error").textContent = message;
      $("kept-note").hidden = /kept/i.test(message);  // the server's message may say so already
      statusLine.textContent = status === "stalled" ? "The model has stopped writing." : "The model could not answer.";
    } else {
      statusLine.textContent = STATUS_TEXT[status] || "";
    }
    panes.querySelectorAll(".reply-pane").forEach((pane, index) => {
      pane.classList.toggle("finished", Boolean(live && live.finished[index]));
    });
  }

  function applySnapshot(state) {
    live = state;
    if (!state) { showState(); return; }
    if (paneTexts.length !== state.texts.length) buildPanes(state.texts.length);
    state.texts.forEach((text, index) => { paneTexts[index].data = text; });
    showState();
  }

  function applyDelta(delta) {
    for (const [index, appended] of delta.slots) {
      live.texts[index] += appended;
      paneTexts[index].appendData(appended);
    }
    live.finished = delta.finished;
    live.status = delta.status;
    showState();
  }

  function closeStream() {
    if (source) { source.close(); source = null; }
  }

  function openStream() {
    closeStream();
    const stream = new EventSource(`/api/labeler/assignments/${task.id}/live/stream`);
    source = stream;
    const parse = (event) => JSON.parse(event.data);
    stream.addEventListener("snapshot", (event) => applySnapshot(parse(event)));
    stream.addEventListener("delta", (event) => applyDelta(parse(event)));
    stream.addEventListener("end", (event) => {
      closeStream();
      const state = parse(event);
      applySnapshot(state);
      if (!state) return;
      if (state.status === "done") repliesReady();
      // The server ends a long stream on its own; the next one starts from a fresh snapshot.
      else if (state.status === "queued" || state.status === "running") openStream();
    });
    stream.addEventListener("error", () => {
      // A dropped connection is retried by EventSource itself; a refused one (session ended,
      // server down) closes it, and the state is then read once to say why, and tried again.
      if (source !== stream) return;
      if (stream.readyState !== EventSource.CLOSED) {
        statusLine.textContent = "The connection to the server dropped; reconnecting…";
        return;
      }
      source = null;
      setTimeout(recoverStream, 2000);
    });
  }

  async function recoverStream() {
    try {
      const {data} = await Labeler.api("GET", `/api/labeler/assignments/${task.id}/live/`);
      applySnapshot(data);
      if (data.status === "done") repliesReady();
      else if (data.status === "queued" || data.status === "running") openStream();
    } catch (error) {
      Labeler.showError(statusLine, error);
      if (!error.isAuth) setTimeout(recoverStream, 5000);
    }
  }

  retryButton.addEventListener("click", async () => {
    retryButton.disabled = true;
    try {
      const {data} = await Labeler.api("POST", `/api/labeler/assignments/${task.id}/live/retry/`);
      applySnapshot(data);
      openStream();
    } catch (error) {
      if (error.code === "replies_streaming" || error.code === "replies_ready") openStream();
      else Labeler.showError($("live-error"), error);
    } finally {
      retryButton.disabled = false;
    }
  });

  // ---- ranking, edit, own reply ------------------------------------------------------------------
  let candidates = task.candidates || [];
  let widget = null;
  let widgetState = null;  // the widget's state as its onChange reports it (or a draft's, until it mounts)
  let edit = {open: false, candidate: null, text: ""};

  async function repliesReady() {
    if (widget) return;
    if (!candidates.length) {
      try {
        ({data: {candidates}} = await Labeler.api("GET", `/api/labeler/assignments/${task.id}/`));
      } catch (error) {
        Labeler.showError(statusLine, error);
        return;
      }
    }
    mountWidget();
  }

  function mountWidget() {
    widget = RankWidget.mount({
      container: $("rank-widget"),
      candidates,
      flags: task.flags,
      ratingsRequired: task.project.ratings_required,
      layout: task.project.layout,
      allowNoneAcceptable: true,
      initial: widgetState || undefined,
      onChange: (state) => { widgetState = state; widgetChanged(); changed(); },
      onSubmitKey: () => (nextTurn || endButton).focus(),
    });
    // Ranking replaces the streamed panes: the widget shows the same texts, ready to order.
    repliesSection.classList.add("collapsed");
    judge.hidden = false;
    setButtons(true);
    widgetChanged();
    syncEdit();
    // The keyboard works on the replies at once, unless the labeler is typing somewhere already.
    const typing = document.activeElement && document.activeElement.matches("input, textarea, select");
    if (!typing) widget.focus();
  }

  function setButtons(enabled) {
    if (sendButton) sendButton.disabled = !enabled;
    endButton.disabled = !enabled;
  }

  const textOf = (id) => (candidates.find((c) => c.id === id) || {}).text || "";
  function bestId() {
    const order = widget ? widget.value().order : [];
    return order.length ? order[0][0] : null;
  }
  function noneAcceptable() { return Boolean(widget && widget.value().none_acceptable); }

  function widgetChanged() {
    const none = noneAcceptable();
    ownReplyArea.hidden = !none;
    $("edit-area").hidden = none;  // with no acceptable reply there is nothing to edit: the labeler writes their own
    if (!edit.open) $("edit-source").textContent = "the best reply";
  }

  function syncEdit() {
    editPanel.hidden = !edit.open;
    editToggle.hidden = edit.open;
    editToggle.setAttribute("aria-expanded", String(edit.open));
    if (edit.open) {
      const index = candidates.findIndex((c) => c.id === edit.candidate);
      $("edit-source").textContent = index >= 0 ? `answer ${letter(index)}` : "the best reply";
      if (editText.value !== edit.text) editText.value = edit.text;
    }
  }

  editToggle.addEventListener("click", () => {
    const best = bestId();
    if (best === null) return;
    edit = {open: true, candidate: best, text: textOf(best)};
    syncEdit();
    editText.focus();
    changed();
  });
  $("edit-reset").addEventListener("click", () => { edit.text = textOf(edit.candidate); syncEdit(); editText.focus(); changed(); });
  $("edit-cancel").addEventListener("click", () => { edit = {open: false, candidate: null, text: ""}; syncEdit(); editToggle.focus(); changed(); });
  editText.addEventListener("input", () => { edit.text = editText.value; changed(); });

  function countOwnReply() { $("own-reply-count").textContent = String(ownReply.value.trim().length); }
  ownReply.addEventListener("input", () => { countOwnReply(); changed(); });

  // ---- drafts ----------------------------------------------------------------------------------------
  function collect() {
    return {
      widget: widgetState,
      edit,
      reply: ownReply.value,
      comment: comment.value,
      next_user_turn: nextTurn ? nextTurn.value : "",
      idempotency_key: idempotencyKey,
    };
  }
  function apply(draft) {
    if (draft.widget && typeof draft.widget === "object") widgetState = draft.widget;
    if (draft.edit && typeof draft.edit === "object" && draft.edit.open && typeof draft.edit.text === "string") {
      edit = {open: true, candidate: Number(draft.edit.candidate), text: draft.edit.text};
    }
    if (typeof draft.reply === "string") ownReply.value = draft.reply;
    if (typeof draft.comment === "string") comment.value = draft.comment;
    if (nextTurn && typeof draft.next_user_turn === "string") nextTurn.value = draft.next_user_turn;
    // A key that reached the server from another machine wins: it may already name a submission.
    if (typeof draft.idempotency_key === "string" && draft.idempotency_key) keepKey(draft.idempotency_key);
  }
  const drafts = new Labeler.Drafts({task, userId, collect, apply, statusElement: $("draft-status"), clock});
  function changed() { errorElement.textContent = ""; drafts.changed(); }
  drafts.restore();
  countOwnReply();
  [comment, nextTurn].forEach((box) => box && box.addEventListener("input", changed));
  Labeler.setupSkip(task, drafts);

  // ---- submit ------------------------------------------------------------------------------------------
  let submitting = false;
  function refuse(message, focus) {
    errorElement.textContent = message;
    if (focus) focus.focus();
  }

  async function submit(continuing) {
    if (submitting || !widget) return;
    const problemText = widget.validate();
    if (problemText) { refuse(problemText); widget.focus(); return; }
    const value = widget.value();
    const body = {
      idempotency_key: idempotencyKey,
      order: value.order,
      items: value.items,
      comment: comment.value,
      seconds_spent: clock.seconds(),
      none_acceptable: value.none_acceptable,
    };
    if (value.none_acceptable) {
      const text = ownReply.value.trim();
      if (text.length < Math.max(1, minChars)) {
        refuse(text ? `Your reply has ${text.length} characters; this project asks for at least ${minChars}.`
          : "None of the replies is acceptable: write the reply the conversation should go on with.", ownReply);
        return;
      }
      body.reply = ownReply.value;
    } else if (edit.open && edit.text.trim() && edit.text.trim() !== textOf(edit.candidate).trim()) {
      body.edit = {candidate: edit.candidate, text: edit.text};
    }
    if (continuing) {
      if (!nextTurn.value.trim()) { refuse("Write your next message, or end the conversation.", nextTurn); return; }
      body.next_user_turn = nextTurn.value;
    }
    submitting = true;
    setButtons(false);
    try {
      const {data} = await Labeler.api("POST", `/api/labeler/assignments/${task.id}/turn/`, body);
      drafts.clear();
      try { localStorage.removeItem(keyStorage); } catch (error) { /* ignore */ }
      location.assign(data.next_assignment ? `/tasks/${data.next_assignment}/` : "/?conversation=ended");
    } catch (error) {
      Labeler.showError(errorElement, error);
      submitting = false;
      setButtons(true);
    }
  }
  if (sendButton) sendButton.addEventListener("click", () => submit(true));
  endButton.addEventListener("click", () => submit(false));
  // Ctrl/Cmd+Enter sends from the message box (a plain Enter is a new line).
  if (nextTurn) {
    nextTurn.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(true); }
    });
  }

  // ---- start ----------------------------------------------------------------------------------------
  applySnapshot(live);
  if (live && live.status === "done") repliesReady();
  else if (live && (live.status === "queued" || live.status === "running")) openStream();
  window.addEventListener("pagehide", closeStream);
})();
