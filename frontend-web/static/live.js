// Carewatch: the little JavaScript the pages use. Everything works without
// it; with it, the overview and installation pages update live from
// /events, and the invitation page takes its code from the link.
(function () {
  "use strict";

  // ----- the invitation link: /invite#<code> --------------------------------
  // The code travels in the fragment, which the browser never sends: copy it
  // into the form, then take it out of the address bar and history.
  function takeInvitationCode() {
    var field = document.getElementById("code");
    var wrapper = document.getElementById("invite-code-field");
    if (!field || !wrapper) return;
    var shape = /^cwi\.[0-9a-f]{64}$/;
    var code = decodeURIComponent(window.location.hash.replace(/^#/, ""));
    // After a refused password the server gives the code back in the field.
    if (!shape.test(code)) code = field.value;
    if (!shape.test(code)) return;
    field.value = code;
    wrapper.hidden = true;
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", window.location.pathname);
    }
  }

  // ----- live updates --------------------------------------------------------
  var HIGHLIGHT_MS = 2500;
  var REFETCH_DELAY_MS = 300;

  function Live(section) {
    this.section = section;
    this.kind = section.getAttribute("data-live");
    this.url = section.getAttribute("data-events");
    // The page's own (GET) address: after a form's POST the browser shows
    // the form's address, which neither re-reads nor reloads this page.
    this.page = section.getAttribute("data-page") || window.location.href;
    if (window.history && window.history.replaceState &&
        this.page !== window.location.pathname + window.location.search) {
      // A reload then reads the page instead of sending the form again.
      window.history.replaceState(null, "", this.page);
    }
    this.lastId = null;
    this.recent = {}; // SLC -> when its row last changed
    this.refetchTimer = null;
    this.refetching = false;
    this.again = false;
    this.connect(this.url);
  }

  Live.prototype.status = function (state, text) {
    var el = document.getElementById("live-status");
    if (!el) return;
    el.className = "live-status " + state;
    el.textContent = text;
    if (state === "stopped") {
      var link = document.createElement("a");
      link.href = this.page;
      link.textContent = "Refresh";
      el.appendChild(document.createTextNode(" "));
      el.appendChild(link);
    }
  };

  Live.prototype.connect = function (url) {
    var self = this;
    var source = new EventSource(url);
    this.source = source;
    source.onopen = function () {
      self.retryDelay = 5000;
      self.status("connected", "Live: changes appear here as they happen.");
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        // The server refused (e.g. signed out): look at the page itself,
        // which goes to the login page if need be, and try again later.
        // Each refusal in a row waits twice as long (at most a minute): a
        // server refusing more live views is not asked every 5 s per tab.
        var delay = self.retryDelay || 5000;
        self.retryDelay = Math.min(delay * 2, 60000);
        self.status("stopped", "Live updates stopped.");
        self.scheduleRefetch();
        window.setTimeout(function () { self.reconnect(); }, delay);
      } else {
        self.status("reconnecting", "Reconnecting… (changes since the last update will follow)");
      }
    };
    var track = function (handler) {
      return function (event) {
        if (event.lastEventId) self.lastId = event.lastEventId;
        var data = {};
        try { data = JSON.parse(event.data || "{}"); } catch (e) { data = {}; }
        handler.call(self, data);
      };
    };
    source.addEventListener("row", track(this.onRow));
    source.addEventListener("gone", track(this.onGone));
    source.addEventListener("change", track(this.onChange));
    source.addEventListener("reset", track(this.scheduleRefetch));
  };

  // A new EventSource after a refusal, resuming after the last event seen.
  Live.prototype.reconnect = function () {
    if (this.source && this.source.readyState !== EventSource.CLOSED) return;
    var url = this.url;
    if (this.lastId !== null) url = url.replace(/([?&])after=\d*/, "$1after=" + this.lastId);
    this.connect(url);
  };

  // Totals: each count lists the healths it covers (data-counts).
  Live.prototype.adjustTotals = function (previous, health) {
    if (previous === health) return;
    var counts = document.querySelectorAll("[data-counts]");
    for (var i = 0; i < counts.length; i++) {
      var covered = " " + counts[i].getAttribute("data-counts") + " ";
      var n = parseInt(counts[i].textContent, 10) || 0;
      if (covered.indexOf(" " + previous + " ") >= 0) n -= 1;
      if (covered.indexOf(" " + health + " ") >= 0) n += 1;
      counts[i].textContent = String(Math.max(0, n));
    }
  };

  Live.prototype.highlight = function (row) {
    row.classList.remove("updated");
    void row.offsetWidth; // restart the animation
    row.classList.add("updated");
  };

  // An installation's overview row changed.
  Live.prototype.onRow = function (data) {
    if (this.kind !== "overview" || !data.slc) return;
    this.recent[data.slc] = Date.now();
    var row = document.getElementById("row-" + data.slc);
    if (!row) {
      // Not on this page: the totals move; if it belongs here, re-read the
      // page so it appears in its place.
      this.adjustTotals(data.previous, data.health);
      if (data.listed) this.scheduleRefetch();
      return;
    }
    var shown = row.getAttribute("data-health");
    if (shown !== data.health && shown !== data.previous) {
      this.scheduleRefetch(); // missed something: re-read
      return;
    }
    if (shown === data.previous) this.adjustTotals(data.previous, data.health);
    if (!data.listed) {
      row.parentNode.removeChild(row); // it left this view
      return;
    }
    var template = document.createElement("template");
    template.innerHTML = data.html;
    var fresh = template.content.firstElementChild;
    if (!fresh) return;
    row.parentNode.replaceChild(fresh, row);
    this.highlight(fresh);
  };

  Live.prototype.onGone = function (data) {
    var row = data.slc && document.getElementById("row-" + data.slc);
    if (row) row.parentNode.removeChild(row);
    this.scheduleRefetch();
  };

  // What the overview shows besides a row's health (which comes as "row"
  // events): a new installation, its labels (customer, site, tags: also
  // its place when sorted by them, and whether a search finds it), and
  // its consent and Care Plus (the row's "consent withdrawn" and
  // "subscription expired").
  var OVERVIEW_CHANGES = { registered: true, labels: true, consent: true, subscription: true };

  Live.prototype.onChange = function (data) {
    // The installation page shows everything about one installation.
    if (this.kind === "installation" || OVERVIEW_CHANGES[data.kind]) this.scheduleRefetch();
  };

  Live.prototype.scheduleRefetch = function () {
    var self = this;
    if (this.refetchTimer !== null) return;
    this.refetchTimer = window.setTimeout(function () {
      self.refetchTimer = null;
      self.refetch();
    }, REFETCH_DELAY_MS);
  };

  // Re-reads this page and swaps in its live parts (not the search form,
  // so typing is never interrupted).
  Live.prototype.refetch = function () {
    var self = this;
    if (this.refetching) { this.again = true; return; }
    this.refetching = true;
    window.fetch(this.page, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.redirected && /\/login$/.test(new URL(response.url).pathname)) {
          window.location.assign("/login");
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (text) {
        if (text) self.swap(new DOMParser().parseFromString(text, "text/html"));
      })
      .catch(function () { /* the next event or reconnect tries again */ })
      .then(function () {
        self.refetching = false;
        if (self.again) { self.again = false; self.scheduleRefetch(); }
      });
  };

  Live.prototype.swap = function (doc) {
    var parts = doc.querySelectorAll("[data-live-part]");
    for (var i = 0; i < parts.length; i++) {
      var name = parts[i].getAttribute("data-live-part");
      var current = this.section.querySelector('[data-live-part="' + name + '"]');
      if (current) current.parentNode.replaceChild(document.importNode(parts[i], true), current);
    }
    var now = Date.now();
    for (var slc in this.recent) {
      if (now - this.recent[slc] > HIGHLIGHT_MS) { delete this.recent[slc]; continue; }
      var row = document.getElementById("row-" + slc);
      if (row) this.highlight(row);
    }
  };

  // ----- a form's answer: /channels, /tokens, /team, /maintenance ------------
  // The answer to a form is shown at the form's address; put the page's own
  // in its place, so that a reload reads the page instead of sending the
  // form again (a second channel or token).
  function keepPageAddress() {
    var page = document.body && document.body.getAttribute("data-page");
    if (page && window.history && window.history.replaceState) {
      window.history.replaceState(null, "", page);
    }
  }

  function start() {
    takeInvitationCode();
    keepPageAddress();
    var section = document.querySelector("[data-live][data-events]");
    if (section && window.EventSource && window.fetch && window.DOMParser) new Live(section);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
