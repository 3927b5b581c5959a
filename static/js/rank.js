/* Rank K answers: order by drag and drop or keyboard alone, ties, 1-7 ratings, flags, comment.
   The order is a list of tie groups of candidate ids, best first: [[3], [1, 4], [2]]. */
(function () {
  "use strict";
  const task = Labeler.loadTask();
  Labeler.setupClosed(task);
  const list = document.getElementById("ranking");
  if (!list) return;
  const errorElement = document.getElementById("form-error");
  const commentBox = document.getElementById("comment");
  const submitButton = document.getElementById("submit");
  const clock = new Labeler.TaskClock({task, userId: document.getElementById("task").dataset.user});
  const idempotencyKey = Labeler.randomKey();
  const ids = task.candidates.map((c) => c.id);
  const letters = new Map(ids.map((id, index) => [id, String.fromCharCode(65 + index)]));
  const FOLD_CHARS = 600;

  const state = {
    groups: ids.map((id) => [id]),
    items: Object.fromEntries(ids.map((id) => [id, {rating: null, flags: []}])),
  };
  let awaitingRating = null;
  let submitting = false;

  // ---- order operations (pure, on state.groups) ------------------------------------------------
  const groupOf = (id) => state.groups.findIndex((group) => group.includes(id));
  function removeId(id) {
    state.groups = state.groups.map((group) => group.filter((x) => x !== id)).filter((group) => group.length);
  }
  function placeAt(id, position) {
    removeId(id);
    state.groups.splice(Math.max(0, Math.min(position, state.groups.length)), 0, [id]);
  }
  function moveUp(id) {
    const g = groupOf(id);
    if (state.groups[g].length > 1) { removeId(id); state.groups.splice(g, 0, [id]); return; }
    if (g > 0) [state.groups[g - 1], state.groups[g]] = [state.groups[g], state.groups[g - 1]];
  }
  function moveDown(id) {
    const g = groupOf(id);
    if (state.groups[g].length > 1) { removeId(id); state.groups.splice(g + 1, 0, [id]); return; }
    if (g < state.groups.length - 1) [state.groups[g + 1], state.groups[g]] = [state.groups[g], state.groups[g + 1]];
  }
  function tieWithNeighbour(id) {
    const g = groupOf(id);
    if (g === 0) return;  // nothing is above the first place
    // Found by member: removeId rebuilds the groups.
    const neighbour = state.groups[g - 1][0];
    removeId(id);
    state.groups[groupOf(neighbour)].push(id);
  }
  function untie(id) {
    const g = groupOf(id);
    if (state.groups[g].length < 2) return;
    removeId(id);
    state.groups.splice(g + 1, 0, [id]);
  }
  function dropOn(id, targetId, zone) {
    if (id === targetId) return;
    removeId(id);
    const g = groupOf(targetId);
    if (zone === "tie") state.groups[g].push(id);
    else state.groups.splice(zone === "before" ? g : g + 1, 0, [id]);
  }

  // ---- rendering: cards are built once and moved, so focus, open flags and text stay ---------------
  const cards = new Map();
  function ordinal(n) {
    const suffix = n % 10 === 1 && n % 100 !== 11 ? "st" : n % 10 === 2 && n % 100 !== 12 ? "nd" : n % 10 === 3 && n % 100 !== 13 ? "rd" : "th";
    return n + suffix;
  }
  function button(text, action, title) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = text; b.dataset.act = action; b.title = title; b.tabIndex = -1;
    return b;
  }
  // The page renders each answer's Markdown server-side (sanitised: nothing in it can run); the raw
  // text, as the model wrote it, is one click away.
  function showFormatted(element, candidate, formatted) {
    element.classList.toggle("formatted", formatted);
    if (formatted) element.innerHTML = candidate.html;
    else element.textContent = candidate.text;
  }
  function buildCard(candidate) {
    const card = document.createElement("article");
    card.className = "candidate";
    card.tabIndex = 0;
    card.draggable = true;
    card.dataset.id = candidate.id;
    const header = document.createElement("header");
    const name = document.createElement("span");
    name.className = "letter";
    name.textContent = "Answer " + letters.get(candidate.id);
    const place = document.createElement("span");
    place.className = "place";
    const tools = document.createElement("span");
    tools.className = "card-buttons";
    tools.append(button("↑", "up", "Move up (↑)"), button("↓", "down", "Move down (↓)"),
      button("Tie with above", "tie", "Tie with the answer above (t)"), button("Untie", "untie", "Untie (u)"));
    header.append(name, place, tools);
    const text = document.createElement("div");
    text.className = "candidate-text";
    showFormatted(text, candidate, typeof candidate.html === "string");
    card.append(header, text);
    if (candidate.cut_off) {
      // Said in words, so the labeler judges what is there rather than guessing why it stops.
      const note = document.createElement("p");
      note.className = "cut-off-note";
      note.textContent = "Cut off: this answer reached the length limit and stops mid-way.";
      card.append(note);
    }
    if (typeof candidate.html === "string") {
      const view = button("Raw text", "view", "Show the answer as the model wrote it, or formatted");
      view.tabIndex = 0;
      view.className = "view-toggle";
      card.append(view);
    }
    if (candidate.text.length > FOLD_CHARS || candidate.text.split("\n").length > 12) {
      text.classList.add("folded");
      const fold = button("Show all", "fold", "Unfold or fold (o)");
      fold.tabIndex = 0;
      fold.className = "fold-toggle";
      card.append(fold);
    }
    const judgement = document.createElement("div");
    judgement.className = "judgement";
    const ratingLabel = document.createElement("label");
    ratingLabel.className = "rating-label";
    ratingLabel.textContent = "Quality ";
    const select = document.createElement("select");
    select.className = "rating";
    select.setAttribute("aria-label", `Quality of answer ${letters.get(candidate.id)}, 1 to 7`);
    select.append(new Option("–", ""));
    for (let r = 1; r <= 7; r++) select.append(new Option(r === 1 ? "1 worst" : r === 7 ? "7 best" : String(r), String(r)));
    select.addEventListener("change", () => { state.items[candidate.id].rating = select.value ? Number(select.value) : null; changed(); });
    ratingLabel.append(select);
    const flags = document.createElement("details");
    flags.className = "flags";
    const summary = document.createElement("summary");
    summary.textContent = "Flags";
    flags.append(summary);
    for (const flag of task.flags) {
      const label = document.createElement("label");
      label.className = "flag";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = flag.key;
      box.addEventListener("change", () => {
        const chosen = new Set(state.items[candidate.id].flags);
        if (box.checked) chosen.add(flag.key); else chosen.delete(flag.key);
        state.items[candidate.id].flags = [...chosen];
        syncCard(candidate.id);
        changed();
      });
      label.append(box, document.createTextNode(" " + flag.label));
      flags.append(label);
    }
    judgement.append(ratingLabel, flags);
    card.append(judgement);
    return card;
  }
  for (const candidate of task.candidates) cards.set(candidate.id, buildCard(candidate));

  function syncCard(id) {
    const card = cards.get(id);
    const item = state.items[id];
    card.querySelector("select.rating").value = item.rating ? String(item.rating) : "";
    card.querySelectorAll(".flags input").forEach((box) => { box.checked = item.flags.includes(box.value); });
    const count = item.flags.length;
    card.querySelector(".flags summary").textContent = count ? `Flags (${count})` : "Flags";
    card.classList.toggle("awaiting-rating", awaitingRating === id);
  }

  function render() {
    const focused = document.activeElement && document.activeElement.closest ? document.activeElement.closest(".candidate") : null;
    list.replaceChildren();
    state.groups.forEach((group, index) => {
      const li = document.createElement("li");
      li.className = "rank-group" + (group.length > 1 ? " tied" : "");
      li.dataset.place = String(index + 1);
      const label = document.createElement("div");
      label.className = "group-label";
      label.textContent = group.length > 1 ? `Tied for ${ordinal(index + 1)}` : ordinal(index + 1);
      li.append(label);
      for (const id of group) {
        const card = cards.get(id);
        // Offer only what applies: nothing is above the first place, and only a tied answer unties.
        card.querySelector("button[data-act=tie]").hidden = index === 0;
        card.querySelector("button[data-act=untie]").hidden = group.length < 2;
        card.querySelector(".place").textContent = group.length > 1 ? `tied ${ordinal(index + 1)}` : ordinal(index + 1);
        card.setAttribute("aria-label", `Answer ${letters.get(id)}, ${group.length > 1 ? "tied for " : ""}${ordinal(index + 1)} place`);
        card.dataset.place = String(index + 1);
        li.append(card);
        syncCard(id);
      }
      list.append(li);
    });
    if (focused) focused.focus({preventScroll: false});
  }

  // ---- drafts --------------------------------------------------------------------------------------
  function collect() { return {order: state.groups, items: state.items, comment: commentBox.value}; }
  function apply(draft) {
    const order = Array.isArray(draft.order) ? draft.order : null;
    const flat = order ? order.flat() : [];
    // A draft from another lease may name other candidates: keep its order only if it fits exactly.
    if (order && flat.length === ids.length && new Set(flat).size === ids.length && flat.every((id) => ids.includes(id))) {
      state.groups = order.map((group) => group.slice());
    }
    if (draft.items && typeof draft.items === "object") {
      for (const id of ids) {
        const item = draft.items[id];
        if (!item) continue;
        state.items[id] = {
          rating: Number.isInteger(item.rating) && item.rating >= 1 && item.rating <= 7 ? item.rating : null,
          flags: Array.isArray(item.flags) ? item.flags.filter((f) => task.flags.some((x) => x.key === f)) : [],
        };
      }
    }
    if (typeof draft.comment === "string") commentBox.value = draft.comment;
  }
  const drafts = new Labeler.Drafts({
    task, userId: document.getElementById("task").dataset.user, collect, apply,
    statusElement: document.getElementById("draft-status"),
    clock,
  });
  function changed() { errorElement.textContent = ""; drafts.changed(); }
  function reorder(operation) { operation(); render(); changed(); }

  drafts.restore();
  render();
  // The keyboard works from the first moment: the best-placed answer has focus, not the page.
  const firstCard = list.querySelector("article.candidate");
  if (firstCard) firstCard.focus({preventScroll: true});
  commentBox.addEventListener("input", changed);
  Labeler.setupSkip(task, drafts);

  // ---- mouse and touch: buttons and drag and drop ---------------------------------------------------
  list.addEventListener("click", (event) => {
    const target = event.target.closest("button[data-act]");
    if (!target) return;
    const card = target.closest(".candidate");
    const id = Number(card.dataset.id);
    const act = target.dataset.act;
    if (act === "fold") { toggleFold(card); return; }
    if (act === "view") { toggleView(card, id); return; }
    const operations = {up: moveUp, down: moveDown, tie: tieWithNeighbour, untie};
    card.focus();
    reorder(() => operations[act](id));
  });
  function toggleView(card, id) {
    const text = card.querySelector(".candidate-text");
    const candidate = task.candidates.find((c) => c.id === id);
    const formatted = !text.classList.contains("formatted");
    showFormatted(text, candidate, formatted);
    card.querySelector(".view-toggle").textContent = formatted ? "Raw text" : "Formatted";
  }
  function toggleFold(card) {
    const text = card.querySelector(".candidate-text");
    const toggle = card.querySelector(".fold-toggle");
    if (!toggle) return;
    const folded = text.classList.toggle("folded");
    toggle.textContent = folded ? "Show all" : "Show less";
  }
  let dragged = null;
  function zoneOf(event, card) {
    const box = card.getBoundingClientRect();
    const y = (event.clientY - box.top) / box.height;
    return y < 0.3 ? "before" : y > 0.7 ? "after" : "tie";
  }
  function clearDropMarks() {
    list.querySelectorAll(".drop-before, .drop-after, .drop-tie").forEach((el) => el.classList.remove("drop-before", "drop-after", "drop-tie"));
  }
  list.addEventListener("dragstart", (event) => {
    const card = event.target.closest(".candidate");
    if (!card) return;
    dragged = Number(card.dataset.id);
    card.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", String(dragged));
  });
  list.addEventListener("dragend", (event) => {
    const card = event.target.closest(".candidate");
    if (card) card.classList.remove("dragging");
    clearDropMarks();
    dragged = null;
  });
  list.addEventListener("dragover", (event) => {
    const card = event.target.closest(".candidate");
    if (dragged === null || !card || Number(card.dataset.id) === dragged) return;
    event.preventDefault();
    clearDropMarks();
    card.classList.add("drop-" + zoneOf(event, card));
  });
  list.addEventListener("drop", (event) => {
    const card = event.target.closest(".candidate");
    if (dragged === null || !card) return;
    event.preventDefault();
    const id = dragged, targetId = Number(card.dataset.id), zone = zoneOf(event, card);
    clearDropMarks();
    reorder(() => dropOn(id, targetId, zone));
  });
  // A finger gets the same drop zones through Pointer Events (rank-touch.js): no touch reaches HTML5 DnD.
  RankTouch.setupTouchDrag({list, zoneOf, clearDropMarks, drop: (id, targetId, zone) => reorder(() => dropOn(id, targetId, zone))});

  // ---- keyboard --------------------------------------------------------------------------------------
  function visualOrder() { return state.groups.flat(); }
  function focusCard(id) { const card = cards.get(id); if (card) card.focus(); }
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const inField = target.matches && target.matches("input, textarea, select");
    if (inField) {
      if (event.key === "Escape" && target.closest(".candidate")) { event.preventDefault(); target.closest(".candidate").focus(); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const card = target.closest ? target.closest(".candidate") : null;
    const onCard = card && target === card;
    if (event.key === "Enter" && (onCard || target === document.body)) { event.preventDefault(); submit(); return; }
    if (!onCard) return;
    const id = Number(card.dataset.id);
    if (awaitingRating === id && /^[1-7]$/.test(event.key)) {
      event.preventDefault();
      state.items[id].rating = Number(event.key);
      awaitingRating = null;
      syncCard(id);
      changed();
      return;
    }
    if (awaitingRating !== null) { awaitingRating = null; syncCard(id); }
    const order = visualOrder();
    const here = order.indexOf(id);
    const k = ids.length;
    if (/^[1-9]$/.test(event.key) && Number(event.key) <= k) { event.preventDefault(); reorder(() => placeAt(id, Number(event.key) - 1)); }
    else if (event.key === "ArrowUp") { event.preventDefault(); reorder(() => moveUp(id)); }
    else if (event.key === "ArrowDown") { event.preventDefault(); reorder(() => moveDown(id)); }
    else if (event.key === "t") { event.preventDefault(); reorder(() => tieWithNeighbour(id)); }
    else if (event.key === "u") { event.preventDefault(); reorder(() => untie(id)); }
    else if (event.key === "j") { event.preventDefault(); focusCard(order[Math.min(here + 1, k - 1)]); }
    else if (event.key === "k") { event.preventDefault(); focusCard(order[Math.max(here - 1, 0)]); }
    else if (event.key === "r") { event.preventDefault(); awaitingRating = id; syncCard(id); }
    else if (event.key === "o") { event.preventDefault(); toggleFold(card); }
  });

  // ---- submit ----------------------------------------------------------------------------------------
  async function submit() {
    if (submitting) return;
    const unrated = ids.filter((id) => !state.items[id].rating).map((id) => letters.get(id));
    if (task.project.ratings_required && unrated.length) {
      errorElement.textContent = `Rate every answer from 1 to 7 before submitting (missing: ${unrated.join(", ")}). Keyboard: select an answer, press r, then a digit.`;
      return;
    }
    submitting = true;
    submitButton.disabled = true;
    try {
      await Labeler.api("POST", `/api/labeler/assignments/${task.id}/ranking/`, {
        order: state.groups,
        items: ids.map((id) => ({candidate: id, rating: state.items[id].rating, flags: state.items[id].flags})),
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
