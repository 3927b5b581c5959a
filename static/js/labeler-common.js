/* Shared by the labeler pages: the JSON API client, drafts kept in the browser and on the server,
   skip, and moving on to the next task. Plain JavaScript, no build step. */
(function () {
  "use strict";

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details;
    }
    get isAuth() {
      // An ended session reaches DRF as an anonymous request (403 not_authenticated); a rotated
      // CSRF token after logging in elsewhere is a 403 permission_denied.
      return this.status === 401 || (this.status === 403 &&
        ["not_authenticated", "authentication_failed", "permission_denied"].includes(this.code));
    }
  }

  async function api(method, url, body) {
    let response;
    try {
      response = await fetch(url, {
        method,
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken()},
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(0, "network", "The server could not be reached. Your work is kept in this browser; try again.");
    }
    if (response.status === 204) return {status: 204, data: null};
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    if (!response.ok) {
      const problem = (data && data.error) || {};
      throw new ApiError(response.status, problem.code || "error",
        problem.message || `The server answered ${response.status}.`, problem.details);
    }
    return {status: response.status, data};
  }

  function randomKey() {
    // crypto.randomUUID needs a secure context; getRandomValues works on plain http too.
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function loginUrl() {
    return "/accounts/login/?next=" + encodeURIComponent(location.pathname + location.search);
  }

  function showError(element, error) {
    if (!element) return;
    element.textContent = "";
    element.append(document.createTextNode(error.message || String(error)));
    if (error.isAuth) {
      const link = document.createElement("a");
      link.href = loginUrl();
      link.textContent = "Log in again";
      element.append(document.createTextNode(" Your session has ended; your work is kept in this browser. "), link);
    }
  }

  /* A draft lives in localStorage at once (so nothing is lost to a crash, a refresh or an ended
     session) and on the server shortly after (so it follows the labeler to another machine).
     `synced` marks a local copy the server has; an unsynced one wins on the next load. */
  class Drafts {
    constructor({task, userId, collect, apply, statusElement, clock}) {
      this.task = task;
      this.clock = clock || null;
      this.url = `/api/labeler/assignments/${task.id}/draft/`;
      this.storageKey = `rlhf-draft:${userId}:${task.kind}:${task.prompt.id}`;
      this.collect = collect;
      this.apply = apply;
      this.statusElement = statusElement;
      this.timer = null;
      this.version = 0;
    }

    read() {
      try { return JSON.parse(localStorage.getItem(this.storageKey) || "null"); } catch (error) { return null; }
    }

    write(entry) {
      try { localStorage.setItem(this.storageKey, JSON.stringify(entry)); } catch (error) { /* storage full */ }
    }

    status(text, error) {
      if (!this.statusElement) return;
      if (error) { showError(this.statusElement, error); this.statusElement.classList.add("error"); return; }
      this.statusElement.classList.remove("error");
      this.statusElement.textContent = text;
    }

    restore() {
      const local = this.read();
      const server = this.task.draft || {};
      if (local && !local.synced && local.data) {
        this.apply(local.data);
        this.status("Restored your unsaved draft from this browser.");
        this.schedule(0);
      } else if (Object.keys(server).length) {
        this.apply(server);
        this.status("Draft restored.");
      } else if (local && local.data) {
        this.apply(local.data);
      }
    }

    changed() {
      this.version += 1;
      const data = this.collect();
      if (this.clock) data.seconds_spent = this.clock.seconds();
      this.write({data, savedAt: Date.now(), synced: false, version: this.version});
      this.status("Saving…");
      this.schedule(800);
    }

    schedule(delay) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.saveToServer(), delay);
    }

    async saveToServer() {
      const entry = this.read();
      if (!entry || entry.synced) return;
      try {
        await api("PUT", this.url, {draft: entry.data});
        const latest = this.read();
        // Mark synced only if nothing changed while the request was in flight.
        if (latest && latest.savedAt === entry.savedAt) this.write({...latest, synced: true});
        this.status("Draft saved " + new Date().toLocaleTimeString());
      } catch (error) {
        if (error.isAuth) {
          this.status("", error);
        } else {
          this.status("", new ApiError(error.status, error.code,
            "Draft kept in this browser; the server did not save it (" + error.message + ")."));
        }
      }
    }

    clear() {
      clearTimeout(this.timer);
      if (this.clock) this.clock.clear();
      try { localStorage.removeItem(this.storageKey); } catch (error) { /* ignore */ }
    }
  }

  /* Time spent on one task, kept across reloads: in this browser (saved every few seconds and when
     the page goes away) and in the draft, so a reload, another machine or a re-leased task after
     an expired lease carries on counting instead of starting again at zero. */
  class TaskClock {
    constructor({task, userId}) {
      this.key = `rlhf-time:${userId}:${task.kind}:${task.prompt.id}`;
      let stored = 0;
      try { stored = Number(localStorage.getItem(this.key)) || 0; } catch (error) { /* no storage */ }
      const drafted = Number((task.draft || {}).seconds_spent) || 0;
      this.base = Math.max(stored, drafted, 0);
      this.since = Date.now();
      setInterval(() => this.persist(), 5000);
      window.addEventListener("pagehide", () => this.persist());
    }

    seconds() { return Math.round((this.base + (Date.now() - this.since) / 1000) * 10) / 10; }

    persist() {
      if (this.stopped) return;  // submitted or skipped: the interval and pagehide must not write it back
      try { localStorage.setItem(this.key, String(this.seconds())); } catch (error) { /* storage full */ }
    }

    clear() {
      this.stopped = true;
      try { localStorage.removeItem(this.key); } catch (error) { /* ignore */ }
    }
  }

  async function nextTask(task) {
    const {status, data} = await api("POST", "/api/labeler/assignments/lease/", {project: task.project.id, kind: task.kind});
    if (status === 204) {
      location.assign(`/?finished=${encodeURIComponent(task.kind)}`);
    } else {
      location.assign(`/tasks/${data.id}/`);
    }
  }

  function setupSkip(task, drafts) {
    const form = document.getElementById("skip-form");
    if (!form) return;
    const errorElement = document.getElementById("skip-error");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const chosen = form.querySelector("input[name=skip-reason]:checked");
      let reason = chosen ? chosen.value : "";
      if (reason === "other") reason = document.getElementById("skip-other").value.trim();
      if (!reason) { errorElement.textContent = "Choose a reason or write one."; return; }
      try {
        await api("POST", `/api/labeler/assignments/${task.id}/skip/`, {reason});
        drafts.clear();
        await nextTask(task);
      } catch (error) { showError(errorElement, error); }
    });
  }

  function setupClosed(task) {
    const button = document.getElementById("next-task");
    if (button) button.addEventListener("click", () => nextTask(task).catch((error) => alert(error.message)));
  }

  function loadTask() {
    return JSON.parse(document.getElementById("task-data").textContent);
  }

  window.Labeler = {api, ApiError, Drafts, TaskClock, randomKey, showError, nextTask, setupSkip, setupClosed, loadTask, loginUrl};
})();
