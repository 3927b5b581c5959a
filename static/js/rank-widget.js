/* RankWidget: order K answers best first (drag and drop, touch, keyboard alone), ties, 1-7 ratings, flags,
   and "none of these is acceptable". Shared by the rank page (rank.js) and the converse page; the contract
   is in the mount() comment below. Two answers may sit side by side instead, with one-key choices.

   The order is a list of tie groups of candidate ids, best first: [[3], [1, 4], [2]]. */
(function () {
  "use strict";
  const FOLD_CHARS = 600;
  const FOLD_LINES = 12;

  function ordinal(n) {
    const suffix = n % 10 === 1 && n % 100 !== 11 ? "st" : n % 10 === 2 && n % 100 !== 12 ? "nd" : n % 10 === 3 && n % 100 !== 13 ? "rd" : "th";
    return n + suffix;
  }
  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }
  function button(text, action, title) {
    const b = element("button", "", text);
    b.type = "button"; b.dataset.act = action; b.title = title; b.tabIndex = -1;
    return b;
  }
  function kbdLine(parts) {
    // parts: strings, and [key] arrays for keys: ["Tab", " or ", ["j"], ...]
    const li = document.createElement("li");
    for (const part of parts) li.append(Array.isArray(part) ? element("kbd", "", part[0]) : document.createTextNode(part));
    return li;
  }
  // The page renders each answer's Markdown server-side (sanitised: nothing in it can run) as `html`;
  // the raw text, as the model wrote it, is one click away. Without `html` the text is shown raw.
  function showFormatted(target, candidate, formatted) {
    target.classList.toggle("formatted", formatted);
    if (formatted) target.innerHTML = candidate.html;
    else target.textContent = candidate.text;
  }

  /* Pure operations on an order (tie groups of ids); each returns a new order. */
  const Order = {
    groupOf: (groups, id) => groups.findIndex((group) => group.includes(id)),
    without: (groups, id) => groups.map((group) => group.filter((x) => x !== id)).filter((group) => group.length),
    placeAt(groups, id, position) {
      const rest = Order.without(groups, id);
      rest.splice(Math.max(0, Math.min(position, rest.length)), 0, [id]);
      return rest;
    },
    moveUp(groups, id) {
      const g = Order.groupOf(groups, id);
      const next = groups.map((group) => group.slice());
      if (next[g].length > 1) { const rest = Order.without(next, id); rest.splice(g, 0, [id]); return rest; }
      if (g > 0) [next[g - 1], next[g]] = [next[g], next[g - 1]];
      return next;
    },
    moveDown(groups, id) {
      const g = Order.groupOf(groups, id);
      const next = groups.map((group) => group.slice());
      if (next[g].length > 1) { const rest = Order.without(next, id); rest.splice(g + 1, 0, [id]); return rest; }
      if (g < next.length - 1) [next[g + 1], next[g]] = [next[g], next[g + 1]];
      return next;
    },
    tieWithAbove(groups, id) {
      const g = Order.groupOf(groups, id);
      if (g === 0) return groups;  // nothing is above the first place
      // Found by member: `without` rebuilds the groups.
      const neighbour = groups[g - 1][0];
      const rest = Order.without(groups, id);
      rest[Order.groupOf(rest, neighbour)].push(id);
      return rest;
    },
    untie(groups, id) {
      const g = Order.groupOf(groups, id);
      if (groups[g].length < 2) return groups;
      const rest = Order.without(groups, id);
      rest.splice(g + 1, 0, [id]);
      return rest;
    },
    dropOn(groups, id, targetId, zone) {
      if (id === targetId) return groups;
      const rest = Order.without(groups, id);
      const g = Order.groupOf(rest, targetId);
      if (zone === "tie") rest[g].push(id);
      else rest.splice(zone === "before" ? g : g + 1, 0, [id]);
      return rest;
    },
  };

  // Side by side: each one-key choice is an order of the two answers (and, for "both bad", the mark).
  const CHOICES = [
    {key: "a", choice: "a", label: "A is better"},
    {key: "b", choice: "b", label: "B is better"},
    {key: "t", choice: "tie", label: "Tie: equally good"},
    {key: "n", choice: "bad", label: "Both bad"},
  ];
  function choiceOrder(choice, a, b) {
    return choice === "b" ? [[b], [a]] : choice === "tie" || choice === "bad" ? [[a, b]] : [[a], [b]];
  }
  function choiceOf(groups, noneAcceptable, a) {
    if (groups.length === 1) return noneAcceptable ? "bad" : "tie";
    return groups[0][0] === a ? "a" : "b";
  }

  /* mount({container, candidates, flags, ratingsRequired, layout, allowNoneAcceptable, initial, onChange, onSubmitKey})
       container            element the widget renders into (it owns everything inside)
       candidates           [{id, text, cut_off, html?}] in the order shown (html: sanitised Markdown, optional)
       flags                [{key, label}]
       ratingsRequired      bool
       layout               "list" | "side_by_side" (side by side only with exactly 2 answers, else a list)
       allowNoneAcceptable  bool: show the "None of these is acceptable" control
       initial              optional {groups, items: {id: {rating, flags}}, none_acceptable, chosen}: a draft;
                            whatever does not fit these candidates is ignored
       onChange(state)      after every change: state = {groups, items, none_acceptable, chosen}, copies;
                            `chosen` is false while a side-by-side pair has no choice yet
       onSubmitKey()        Enter pressed on an answer inside the widget
     Returns {value(), validate(), focus(), destroy()}:
       value()    -> {order: [[id], ...], items: [{candidate, rating, flags}], none_acceptable}
       validate() -> null, or a message for the labeler (ratings missing, no choice made) */
  function mount(options) {
    const container = options.container;
    const candidates = options.candidates.slice();
    const flagList = options.flags || [];
    const ids = candidates.map((c) => c.id);
    const letters = new Map(ids.map((id, index) => [id, String.fromCharCode(65 + index)]));
    const sideBySide = options.layout === "side_by_side" && ids.length === 2;
    const allowNone = Boolean(options.allowNoneAcceptable);
    const onChange = options.onChange || function () {};
    const onSubmitKey = options.onSubmitKey || function () {};

    const state = {
      groups: ids.map((id) => [id]),
      items: Object.fromEntries(ids.map((id) => [id, {rating: null, flags: []}])),
      none_acceptable: false,
      chosen: !sideBySide,  // a pair starts with no choice: the first answer is not the default winner
    };
    restore(options.initial);
    let awaitingRating = null;

    function restore(initial) {
      if (!initial || typeof initial !== "object") return;
      const order = Array.isArray(initial.groups) ? initial.groups : null;
      const flat = order && order.every(Array.isArray) ? order.flat() : [];
      // A draft from another lease may name other candidates: keep its order only if it fits exactly.
      const fits = order && flat.length === ids.length && new Set(flat).size === ids.length && flat.every((id) => ids.includes(id));
      if (fits) state.groups = order.map((group) => group.slice());
      if (initial.items && typeof initial.items === "object") {
        for (const id of ids) {
          const item = initial.items[id];
          if (!item) continue;
          state.items[id] = {
            rating: Number.isInteger(item.rating) && item.rating >= 1 && item.rating <= 7 ? item.rating : null,
            flags: Array.isArray(item.flags) ? item.flags.filter((f) => flagList.some((x) => x.key === f)) : [],
          };
        }
      }
      state.none_acceptable = allowNone && initial.none_acceptable === true;
      if (sideBySide) {
        state.chosen = Boolean(fits) && initial.chosen !== false;
        if (state.chosen && state.groups.length === 2) state.none_acceptable = false;  // "both bad" is a tie
        if (!state.chosen) { state.groups = ids.map((id) => [id]); state.none_acceptable = false; }
      }
    }

    function snapshot() {
      return {
        groups: state.groups.map((group) => group.slice()),
        items: Object.fromEntries(ids.map((id) => [id, {rating: state.items[id].rating, flags: state.items[id].flags.slice()}])),
        none_acceptable: state.none_acceptable,
        chosen: state.chosen,
      };
    }
    function changed() { onChange(snapshot()); }

    // ---- DOM: cards are built once and moved, so focus, open flags and text stay ------------------
    const root = element("div", "rank-widget " + (sideBySide ? "side-by-side" : "list-layout"));
    container.replaceChildren(root);
    root.append(keysHelp());
    if (!sideBySide) {
      root.append(element("p", "muted rank-hint", "Drag an answer onto the top or bottom edge of another to place it before or after; onto its middle to tie them. On a touch screen, drag it by its title."));
    }
    const cards = new Map();
    for (const candidate of candidates) cards.set(candidate.id, buildCard(candidate));
    let list = null, columns = null, choiceBar = null, noneBox = null;
    if (sideBySide) {
      columns = element("div", "sbs-columns");
      columns.setAttribute("role", "group");
      columns.setAttribute("aria-label", "The two answers");
      for (const id of ids) {
        const column = element("div", "sbs-column");
        column.append(cards.get(id));
        columns.append(column);
      }
      choiceBar = element("div", "sbs-choices");
      choiceBar.setAttribute("role", "group");
      choiceBar.setAttribute("aria-label", "Which answer is better?");
      for (const option of CHOICES) {
        if (option.choice === "bad" && !allowNone) continue;
        const b = element("button", "sbs-choice");
        b.type = "button";
        b.dataset.choice = option.choice;
        b.setAttribute("aria-pressed", "false");
        b.append(document.createTextNode(option.label + " "), element("kbd", "", option.key));
        choiceBar.append(b);
      }
      root.append(columns, choiceBar);
    } else {
      list = element("ol", "ranking");
      list.setAttribute("aria-label", "Answers, best first");
      root.append(list);
      if (allowNone) {
        const label = element("label", "none-acceptable-toggle");
        noneBox = document.createElement("input");
        noneBox.type = "checkbox";
        noneBox.className = "none-acceptable";
        label.append(noneBox, document.createTextNode(" None of these is acceptable "), element("kbd", "", "n"),
          element("span", "muted", " (still order them: the least bad first)"));
        root.append(label);
      }
    }

    function keysHelp() {
      const details = element("details", "keys");
      details.append(element("summary", "", "Keyboard"));
      const ul = document.createElement("ul");
      ul.append(kbdLine([["Tab"], " or ", ["j"], "/", ["k"], ": select an answer"]));
      if (sideBySide) {
        ul.append(kbdLine([["a"], ": A is better; ", ["b"], ": B is better; ", ["t"], ": a tie"]));
        if (allowNone) ul.append(kbdLine([["n"], ": both are bad"]));
      } else {
        ul.append(kbdLine([["1"], "–", [String(ids.length)], ": put it at that place"]));
        ul.append(kbdLine([["↑"], "/", ["↓"], ": move it up or down"]));
        ul.append(kbdLine([["t"], ": tie it with the answer above; ", ["u"], ": untie"]));
        if (allowNone) ul.append(kbdLine([["n"], ": none of these is acceptable (or not)"]));
      }
      ul.append(kbdLine([["r"], " then ", ["1"], "–", ["7"], ": rate it (7 is best)"]));
      ul.append(kbdLine([["o"], ": unfold or fold a long answer"]));
      ul.append(kbdLine([["Enter"], ": submit"]));
      details.append(ul);
      return details;
    }

    function buildCard(candidate) {
      const letter = letters.get(candidate.id);
      const card = element("article", "candidate");
      card.tabIndex = 0;
      card.draggable = !sideBySide;
      card.dataset.id = candidate.id;
      const header = document.createElement("header");
      const place = element("span", "place");
      header.append(element("span", "letter", "Answer " + letter), place);
      if (!sideBySide) {
        const tools = element("span", "card-buttons");
        tools.append(button("↑", "up", "Move up (↑)"), button("↓", "down", "Move down (↓)"),
          button("Tie with above", "tie", "Tie with the answer above (t)"), button("Untie", "untie", "Untie (u)"));
        header.append(tools);
      }
      const text = element("div", "candidate-text");
      showFormatted(text, candidate, typeof candidate.html === "string");
      card.append(header, text);
      if (candidate.cut_off) {
        // Said in words, so the labeler judges what is there rather than guessing why it stops.
        card.append(element("p", "cut-off-note", "Cut off: this answer reached the length limit and stops mid-way."));
      }
      if (typeof candidate.html === "string") {
        const view = button("Raw text", "view", "Show the answer as the model wrote it, or formatted");
        view.tabIndex = 0;
        view.className = "view-toggle";
        card.append(view);
      }
      if (candidate.text.length > FOLD_CHARS || candidate.text.split("\n").length > FOLD_LINES) {
        text.classList.add("folded");
        const fold = button("Show all", "fold", "Unfold or fold (o)");
        fold.tabIndex = 0;
        fold.className = "fold-toggle";
        card.append(fold);
      }
      const judgement = element("div", "judgement");
      const ratingLabel = element("label", "rating-label", "Quality ");
      const select = element("select", "rating");
      select.setAttribute("aria-label", `Quality of answer ${letter}, 1 to 7`);
      select.append(new Option("–", ""));
      for (let r = 1; r <= 7; r++) select.append(new Option(r === 1 ? "1 worst" : r === 7 ? "7 best" : String(r), String(r)));
      select.addEventListener("change", () => { state.items[candidate.id].rating = select.value ? Number(select.value) : null; changed(); });
      ratingLabel.append(select);
      const flags = element("details", "flags");
      flags.append(element("summary", "", "Flags"));
      for (const flag of flagList) {
        const label = element("label", "flag");
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
      if (sideBySide) renderPair(); else renderList();
      if (noneBox) noneBox.checked = state.none_acceptable;
      root.classList.toggle("none-acceptable-marked", state.none_acceptable);
    }

    function renderList() {
      const active = document.activeElement;
      const focused = active && active.closest && list.contains(active) ? active.closest(".candidate") : null;
      list.replaceChildren();
      state.groups.forEach((group, index) => {
        const li = element("li", "rank-group" + (group.length > 1 ? " tied" : ""));
        li.dataset.place = String(index + 1);
        li.append(element("div", "group-label", group.length > 1 ? `Tied for ${ordinal(index + 1)}` : ordinal(index + 1)));
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

    const VERDICTS = {
      a: ["Better", "Worse"], b: ["Worse", "Better"], tie: ["Tie", "Tie"], bad: ["Both bad", "Both bad"],
    };
    function renderPair() {
      const choice = state.chosen ? choiceOf(state.groups, state.none_acceptable, ids[0]) : null;
      ids.forEach((id, index) => {
        const card = cards.get(id);
        const verdict = choice ? VERDICTS[choice][index] : "";
        card.querySelector(".place").textContent = verdict;
        card.dataset.verdict = verdict ? verdict.toLowerCase().replace(" ", "-") : "";
        card.setAttribute("aria-label", `Answer ${letters.get(id)}` + (verdict ? `: ${verdict.toLowerCase()}` : ""));
        syncCard(id);
      });
      choiceBar.querySelectorAll("button[data-choice]").forEach((b) => {
        const on = b.dataset.choice === choice;
        b.setAttribute("aria-pressed", on ? "true" : "false");
        b.classList.toggle("chosen", on);
      });
    }

    function reorder(next) { state.groups = next; render(); changed(); }
    function choose(choice) {
      if (choice === "bad" && !allowNone) return;
      state.groups = choiceOrder(choice, ids[0], ids[1]);
      state.none_acceptable = choice === "bad";
      state.chosen = true;
      render();
      changed();
    }
    function setNoneAcceptable(value) {
      state.none_acceptable = allowNone && value;
      render();
      changed();
    }

    // ---- mouse and touch: buttons and drag and drop ------------------------------------------------
    const listeners = [];
    function listen(target, type, handler) { target.addEventListener(type, handler); listeners.push([target, type, handler]); }
    function toggleView(card, id) {
      const text = card.querySelector(".candidate-text");
      const candidate = candidates.find((c) => c.id === id);
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
    listen(root, "click", (event) => {
      const choiceButton = event.target.closest("button[data-choice]");
      if (choiceButton && root.contains(choiceButton)) { choose(choiceButton.dataset.choice); return; }
      const target = event.target.closest("button[data-act]");
      if (!target || !root.contains(target)) return;
      const card = target.closest(".candidate");
      const id = Number(card.dataset.id);
      const act = target.dataset.act;
      if (act === "fold") { toggleFold(card); return; }
      if (act === "view") { toggleView(card, id); return; }
      const operations = {up: Order.moveUp, down: Order.moveDown, tie: Order.tieWithAbove, untie: Order.untie};
      card.focus();
      reorder(operations[act](state.groups, id));
    });
    if (noneBox) listen(noneBox, "change", () => setNoneAcceptable(noneBox.checked));

    let teardownTouch = null;
    if (!sideBySide) {
      let dragged = null;
      const zoneOf = (event, card) => {
        const box = card.getBoundingClientRect();
        const y = (event.clientY - box.top) / box.height;
        return y < 0.3 ? "before" : y > 0.7 ? "after" : "tie";
      };
      const clearDropMarks = () => {
        list.querySelectorAll(".drop-before, .drop-after, .drop-tie").forEach((el) => el.classList.remove("drop-before", "drop-after", "drop-tie"));
      };
      listen(list, "dragstart", (event) => {
        const card = event.target.closest(".candidate");
        if (!card) return;
        dragged = Number(card.dataset.id);
        card.classList.add("dragging");
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", String(dragged));
      });
      listen(list, "dragend", (event) => {
        const card = event.target.closest(".candidate");
        if (card) card.classList.remove("dragging");
        clearDropMarks();
        dragged = null;
      });
      listen(list, "dragover", (event) => {
        const card = event.target.closest(".candidate");
        if (dragged === null || !card || Number(card.dataset.id) === dragged) return;
        event.preventDefault();
        clearDropMarks();
        card.classList.add("drop-" + zoneOf(event, card));
      });
      listen(list, "drop", (event) => {
        const card = event.target.closest(".candidate");
        if (dragged === null || !card) return;
        event.preventDefault();
        const id = dragged, targetId = Number(card.dataset.id), zone = zoneOf(event, card);
        clearDropMarks();
        reorder(Order.dropOn(state.groups, id, targetId, zone));
      });
      // A finger gets the same drop zones through Pointer Events (rank-touch.js): no touch reaches HTML5 DnD.
      if (window.RankTouch) {
        teardownTouch = window.RankTouch.setupTouchDrag({
          list, zoneOf, clearDropMarks,
          drop: (id, targetId, zone) => reorder(Order.dropOn(state.groups, id, targetId, zone)),
        });
      }
    }

    // ---- keyboard: only while the focus is inside the widget ---------------------------------------
    function visualOrder() { return sideBySide ? ids.slice() : state.groups.flat(); }
    function focusCard(id) { const card = cards.get(id); if (card) card.focus(); }
    listen(root, "keydown", (event) => {
      const target = event.target;
      const inField = target.matches && target.matches("input, textarea, select");
      if (inField) {
        if (event.key === "Escape" && target.closest(".candidate")) { event.preventDefault(); target.closest(".candidate").focus(); }
        return;
      }
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      const card = target.closest ? target.closest(".candidate") : null;
      const onCard = card && target === card;
      if (event.key === "Enter" && onCard) { event.preventDefault(); onSubmitKey(); return; }
      if (sideBySide && !target.matches("summary") && pairKey(event)) return;
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
      if (awaitingRating !== null) { const was = awaitingRating; awaitingRating = null; syncCard(was); }
      const order = visualOrder();
      const here = order.indexOf(id);
      const k = ids.length;
      const key = event.key;
      let handled = true;
      if (key === "j") focusCard(order[Math.min(here + 1, k - 1)]);
      else if (key === "k") focusCard(order[Math.max(here - 1, 0)]);
      else if (key === "r") { awaitingRating = id; syncCard(id); }
      else if (key === "o") toggleFold(card);
      else if (sideBySide && (key === "1" || key === "2")) choose((key === "1") === (id === ids[0]) ? "a" : "b");
      else if (sideBySide) handled = false;
      else if (/^[1-9]$/.test(key) && Number(key) <= k) reorder(Order.placeAt(state.groups, id, Number(key) - 1));
      else if (key === "ArrowUp") reorder(Order.moveUp(state.groups, id));
      else if (key === "ArrowDown") reorder(Order.moveDown(state.groups, id));
      else if (key === "t") reorder(Order.tieWithAbove(state.groups, id));
      else if (key === "u") reorder(Order.untie(state.groups, id));
      else if (key === "n" && allowNone) setNoneAcceptable(!state.none_acceptable);
      else handled = false;
      if (handled) event.preventDefault();
    });
    // Side by side, a choice key works wherever the focus is in the widget (not while rating: r then a digit).
    function pairKey(event) {
      if (awaitingRating !== null) return false;
      const option = CHOICES.find((c) => c.key === event.key);
      if (!option || (option.choice === "bad" && !allowNone)) return false;
      event.preventDefault();
      choose(option.choice);
      return true;
    }

    render();

    return {
      value() {
        return {
          order: state.groups.map((group) => group.slice()),
          items: ids.map((id) => ({candidate: id, rating: state.items[id].rating, flags: state.items[id].flags.slice()})),
          none_acceptable: state.none_acceptable,
        };
      },
      validate() {
        if (!state.chosen) {
          return "Choose first: A is better (a), B is better (b), a tie (t)" + (allowNone ? " or both bad (n)." : ".");
        }
        const unrated = ids.filter((id) => !state.items[id].rating).map((id) => letters.get(id));
        if (options.ratingsRequired && unrated.length) {
          return `Rate every answer from 1 to 7 before submitting (missing: ${unrated.join(", ")}). Keyboard: select an answer, press r, then a digit.`;
        }
        return null;
      },
      focus() {
        const first = visualOrder()[0];
        if (first !== undefined) cards.get(first).focus({preventScroll: true});
      },
      destroy() {
        for (const [target, type, handler] of listeners) target.removeEventListener(type, handler);
        listeners.length = 0;
        if (teardownTouch) teardownTouch();
        container.replaceChildren();
      },
    };
  }

  window.RankWidget = {mount, Order};
})();
