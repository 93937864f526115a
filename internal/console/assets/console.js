// Shows every <time datetime="..."> in the viewer's own zone; the page
// carries UTC, which is what a reader without scripts sees. Runs on load
// and after each live refresh.
(function () {
  "use strict";
  var fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
  });
  function localise(root) {
    var times = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var t = times[i];
      if (t.dataset.utc) { continue; }
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) { continue; }
      t.dataset.utc = t.textContent;
      t.title = t.textContent;
      t.textContent = fmt.format(d);
    }
  }
  // The live region does not refresh while focus is inside it, so that a
  // keyboard user moving through its buttons keeps their place.
  document.addEventListener("htmx:beforeRequest", function (e) {
    var live = document.getElementById("live");
    var focus = document.activeElement;
    if (live && e.detail.elt === live && focus && focus !== live && live.contains(focus)) {
      e.preventDefault();
    }
  });
  // A page the browser brings back from its back-forward cache (Back,
  // Forward) is loaded again: as it was, it would show again what is
  // shown once (a new key's secret), and its start form would send the
  // idempotency key of a start already made, which the master answers
  // with that start instead of a new one.
  window.addEventListener("pageshow", function (e) {
    if (!e.persisted) { return; }
    var once = document.querySelectorAll("[data-once]");
    for (var i = 0; i < once.length; i++) { once[i].remove(); }
    location.reload();
  });
  // A live region that cannot refresh says so, and why, above it; it keeps
  // trying, and the notice goes with the next refresh that works.
  function stale(text) {
    var n = document.getElementById("stale");
    if (n) { n.textContent = text; n.hidden = !text; }
  }
  document.addEventListener("htmx:responseError", function (e) {
    var why = "the master answered " + e.detail.xhr.status;
    var page = new DOMParser().parseFromString(e.detail.xhr.responseText || "", "text/html");
    var msg = page.querySelector(".error p");
    if (msg) { why = msg.textContent.trim(); }
    stale("Not up to date: " + why + ". Trying again every two seconds.");
  });
  document.addEventListener("htmx:sendError", function () {
    stale("Not up to date: the master does not answer. Trying again every two seconds.");
  });
  // A step's output keeps its scroll across refreshes, and one scrolled to
  // its end stays at its end as it grows: a running step can be read, and
  // followed.
  var scrolls = {};
  function outputs() { return document.querySelectorAll("pre.output[data-attempt]"); }
  document.addEventListener("htmx:beforeSwap", function () {
    scrolls = {};
    var outs = outputs();
    for (var i = 0; i < outs.length; i++) {
      var p = outs[i];
      scrolls[p.dataset.attempt] = p.scrollTop + p.clientHeight >= p.scrollHeight - 2 ? -1 : p.scrollTop;
    }
  });
  document.addEventListener("htmx:afterSwap", function () {
    var outs = outputs();
    for (var i = 0; i < outs.length; i++) {
      var at = scrolls[outs[i].dataset.attempt];
      if (at !== undefined) { outs[i].scrollTop = at < 0 ? outs[i].scrollHeight : at; }
    }
  });
  // "Back to the form" on a refused form's page goes back in the history,
  // to the form; without scripts it goes to the fleet.
  document.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("[data-history-back]");
    if (a && history.length > 1) { e.preventDefault(); history.back(); }
  });
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:afterSettle", function (e) { stale(""); localise(e.target); });
})();
