// kplane review page: follows a rollout's steps live over the deploy's
// server-sent events until it ends.
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("rollout");
    if (!box || !window.EventSource) return;
    var url = box.getAttribute("data-events");
    if (!url) return;
    var list = document.getElementById("rollout-steps");
    var state = document.getElementById("rollout-state");
    var done = document.getElementById("rollout-done");
    var es = new EventSource(url);
    es.addEventListener("step", function (e) {
      var s = JSON.parse(e.data);
      var li = document.createElement("li");
      li.className = "hw-step hw-step-" + (s.error ? "error" : "ok");
      li.textContent = s.action + (s.instance ? " " + s.instance : "") +
        (s.version ? " " + s.version : "") + ": " + s.outcome + (s.error ? " — " + s.error : "");
      list.appendChild(li);
    });
    es.addEventListener("done", function (e) {
      es.close();
      var d = JSON.parse(e.data);
      state.textContent = d.state;
      state.className = "hw-badge hw-state-" + d.state;
      box.setAttribute("data-state", d.state);
      box.setAttribute("data-done", "true");
      done.textContent = "Rollout " + d.state + (d.error ? ": " + d.error : "") + ".";
      done.hidden = false;
    });
    es.addEventListener("error", function () {
      if (es.readyState === EventSource.CLOSED && box.getAttribute("data-done") !== "true") {
        done.textContent = "Lost the rollout stream: reload to see where it is.";
        done.hidden = false;
      }
    });
  });
})();
