// kplane console: live updates over server-sent events and a ticking
// uptime column. Plain JavaScript, no dependencies.
(function () {
  "use strict";

  // formatUptime mirrors formatUptime in web/pages.go.
  function formatUptime(sec) {
    sec = Math.max(0, Math.floor(sec));
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    if (sec < 60) return sec + "s";
    if (sec < 3600) return Math.floor(sec / 60) + "m" + pad(sec % 60) + "s";
    if (sec < 86400) return Math.floor(sec / 3600) + "h" + pad(Math.floor(sec % 3600 / 60)) + "m";
    return Math.floor(sec / 86400) + "d" + Math.floor(sec % 86400 / 3600) + "h";
  }

  function tickUptimes() {
    var now = Date.now();
    document.querySelectorAll("[data-started]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("data-started"));
      if (!isNaN(t)) el.textContent = formatUptime((now - t) / 1000);
    });
  }

  function setLive(state, text) {
    var el = document.getElementById("live");
    if (!el) return;
    el.setAttribute("data-state", state);
    el.querySelector(".live-text").textContent = text;
  }

  function connect(target) {
    var es = new EventSource(target.getAttribute("data-events"));
    es.addEventListener("open", function () { setLive("live", "Live"); });
    // The server sends HTML it rendered and escaped itself.
    es.addEventListener("services", function (e) {
      target.innerHTML = e.data;
      tickUptimes();
      setLive("live", "Live");
    });
    es.addEventListener("error", function () {
      // EventSource reconnects by itself unless the server refused the
      // stream (for example after the session ended).
      if (es.readyState === EventSource.CLOSED) {
        setLive("closed", "Disconnected — reload to sign in");
      } else {
        setLive("reconnecting", "Reconnecting…");
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var target = document.querySelector("[data-events]");
    if (target && window.EventSource) connect(target);
    tickUptimes();
    setInterval(tickUptimes, 1000);
  });
})();
