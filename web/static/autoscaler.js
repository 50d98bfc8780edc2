// kplane autoscaler page: live charts and decisions over server-sent
// events. The policy forms are outside the live region, so an update never
// discards what a person is typing.
(function () {
  "use strict";

  function setLive(state, text) {
    var el = document.getElementById("live");
    if (!el) return;
    el.setAttribute("data-state", state);
    el.querySelector(".live-text").textContent = text;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var target = document.querySelector("[data-autoscaler-events]");
    if (!target || !window.EventSource) return;
    var es = new EventSource(target.getAttribute("data-autoscaler-events"));
    es.addEventListener("open", function () { setLive("live", "Live"); });
    // The server sends HTML it rendered and escaped itself.
    es.addEventListener("autoscaler", function (e) {
      target.innerHTML = e.data;
      setLive("live", "Live");
    });
    es.addEventListener("error", function () {
      if (es.readyState === EventSource.CLOSED) {
        setLive("closed", "Disconnected — reload to sign in");
      } else {
        setLive("reconnecting", "Reconnecting…");
      }
    });
  });
})();
