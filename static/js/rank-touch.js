/* Drag to reorder by touch in the rank widget (rank-widget.js, on the rank and converse pages).

   HTML5 drag and drop, which the mouse uses (rank-widget.js), gets no touch events on phones and tablets, so a
   finger drags with Pointer Events instead. Only a card's title bar takes a touch drag (touch-action: none
   there, in app.css): a swipe anywhere else on a card still scrolls the page, which on a phone is needed far
   more often than a drag. Mouse pointers are left alone, so mouse drag and the keyboard work as before. */
(function () {
  "use strict";
  const SLOP_PX = 8;  // how far a finger moves before a touch is a drag rather than a tap
  const EDGE_PX = 56;  // near the viewport's top or bottom edge a drag scrolls the page: K cards rarely fit a phone
  const MAX_SCROLL_PX = 14;  // per frame, at the very edge

  /* list: the <ol> of rank groups. zoneOf(point, card): "before", "after" or "tie" for a point over a card.
     clearDropMarks(): remove the drop-* classes. drop(id, targetId, zone): apply and render the move.
     Returns a function that removes every listener it added (the widget's destroy() calls it). */
  function setupTouchDrag({list, zoneOf, clearDropMarks, drop}) {
    let drag = null;  // {pointerId, id, card, startX, startY, startScroll, x, y, moving, frame}
    const listeners = [];
    function listen(target, type, handler, options) {
      target.addEventListener(type, handler, options);
      listeners.push([target, type, handler, options]);
    }

    function targetAt(x, y) {
      // The dragged card follows the finger, so it is the topmost element there: look beneath it.
      for (const element of document.elementsFromPoint(x, y)) {
        const card = element.closest(".candidate");
        if (card && list.contains(card) && card !== drag.card) return card;
      }
      return null;
    }
    function follow() {
      const dy = drag.y - drag.startY + (window.scrollY - drag.startScroll);
      drag.card.style.transform = `translateY(${dy}px)`;
      clearDropMarks();
      const target = targetAt(drag.x, drag.y);
      if (target) target.classList.add("drop-" + zoneOf({clientY: drag.y}, target));
    }
    function scrollNearEdges() {
      if (!drag || !drag.moving) return;
      const bottom = window.innerHeight - EDGE_PX;
      const depth = drag.y < EDGE_PX ? drag.y - EDGE_PX : drag.y > bottom ? drag.y - bottom : 0;
      if (depth) {
        window.scrollBy(0, Math.max(-MAX_SCROLL_PX, Math.min(MAX_SCROLL_PX, depth / 3)));
        follow();
      }
      drag.frame = requestAnimationFrame(scrollNearEdges);
    }
    function end(commit) {
      if (!drag) return;
      const {id, card, x, y, moving, frame} = drag;
      const target = moving && commit ? targetAt(x, y) : null;
      cancelAnimationFrame(frame);
      card.style.transform = "";
      card.classList.remove("dragging", "touch-dragging");
      clearDropMarks();
      drag = null;
      if (target) drop(id, Number(target.dataset.id), zoneOf({clientY: y}, target));
    }

    listen(list, "pointerdown", (event) => {
      if (event.pointerType === "mouse" || !event.isPrimary || drag) return;
      const header = event.target.closest(".candidate > header");
      // The card's buttons stay buttons: a tap on them is a tap.
      if (!header || event.target.closest("button, select, input, a")) return;
      const card = header.parentElement;
      drag = {
        pointerId: event.pointerId, id: Number(card.dataset.id), card,
        startX: event.clientX, startY: event.clientY, startScroll: window.scrollY,
        x: event.clientX, y: event.clientY, moving: false, frame: 0,
      };
    });
    listen(document, "pointermove", (event) => {
      if (!drag || event.pointerId !== drag.pointerId) return;
      drag.x = event.clientX;
      drag.y = event.clientY;
      if (!drag.moving) {
        if (Math.hypot(drag.x - drag.startX, drag.y - drag.startY) < SLOP_PX) return;
        drag.moving = true;
        drag.card.classList.add("dragging", "touch-dragging");
        drag.frame = requestAnimationFrame(scrollNearEdges);
      }
      event.preventDefault();
      follow();
    });
    listen(document, "pointerup", (event) => {
      if (drag && event.pointerId === drag.pointerId) end(true);
    });
    // The browser took the touch (a native long-press drag, a system gesture): nothing moves.
    listen(document, "pointercancel", (event) => {
      if (drag && event.pointerId === drag.pointerId) end(false);
    });
    return function teardown() {
      end(false);
      for (const [target, type, handler, options] of listeners) target.removeEventListener(type, handler, options);
      listeners.length = 0;
    };
  }

  window.RankTouch = {setupTouchDrag};
})();
