// The Monitoring page's tiles refresh every 5 seconds through htmx, unless paused, and never
// while the tab is hidden (a hidden tab asks nothing; shown again, it refreshes at once).
(function () {
  "use strict";
  var PERIOD_MS = 5000;
  var paused = false;
  var timer = null;

  function tiles() { return document.getElementById("monitoring-tiles"); }

  function refresh() {
    var target = tiles();
    if (!target || paused || document.hidden || !window.htmx) { return; }
    window.htmx.ajax("GET", target.dataset.refreshUrl, { target: "#monitoring-tiles", swap: "outerHTML" });
  }

  function schedule() {
    if (timer) { window.clearInterval(timer); timer = null; }
    if (!paused && !document.hidden) { timer = window.setInterval(refresh, PERIOD_MS); }
  }

  function say(text) {
    var state = document.getElementById("monitoring-refresh-state");
    if (state) { state.textContent = text; }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("monitoring-pause");
    if (!button || !tiles()) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      paused = !paused;
      button.setAttribute("aria-pressed", paused ? "true" : "false");
      button.textContent = paused ? "Resume refresh" : "Pause refresh";
      say(paused ? "Refresh paused." : "Refreshed every 5 seconds while this tab is shown.");
      if (!paused) { refresh(); }
      schedule();
    });
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) { refresh(); }
      schedule();
    });
    schedule();
  });
})();
