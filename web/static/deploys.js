// kplane deploy page: appends a running deploy's steps as they happen,
// from the deploy's server-sent events, until it ends.
(function () {
  "use strict";

  function ms(nanos) {
    var s = (nanos || 0) / 1e9;
    return s < 1 ? Math.floor(s * 1000) + "ms" : s.toFixed(s < 10 ? 2 : 1) + "s";
  }

  function cell(tr, text) {
    var td = document.createElement("td");
    td.textContent = text || "";
    tr.appendChild(td);
    return td;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("deploy");
    if (!box || !window.EventSource) return;
    var url = box.getAttribute("data-events");
    if (!url) return;
    var body = document.getElementById("deploy-steps");
    var count = document.getElementById("step-count");
    var state = document.getElementById("deploy-state");
    var done = document.getElementById("deploy-done");
    var note = document.getElementById("live-note");
    // The page already shows the steps it was rendered with.
    var shown = parseInt(box.getAttribute("data-steps"), 10) || 0;
    var es = new EventSource(url);
    es.addEventListener("step", function (e) {
      if (parseInt(e.lastEventId, 10) < shown) return;
      var s = JSON.parse(e.data);
      var tr = document.createElement("tr");
      if (s.error) tr.className = "hw-step-error";
      cell(tr, new Date(s.time).toISOString().substr(11, 12)); // UTC, as the server renders it
      cell(tr, s.action);
      cell(tr, s.instance);
      cell(tr, s.version);
      cell(tr, s.outcome);
      cell(tr, ms(s.tookNanos)).className = "num";
      cell(tr, s.error).className = "muted";
      body.appendChild(tr);
      shown++;
      count.textContent = String(body.children.length);
    });
    es.addEventListener("done", function (e) {
      es.close();
      var d = JSON.parse(e.data);
      state.textContent = d.state;
      state.className = "hw-badge hw-state-" + d.state;
      box.setAttribute("data-state", d.state);
      done.setAttribute("data-done", "true");
      done.textContent = "Deploy " + d.state + (d.error ? ": " + d.error : "") + ".";
      done.hidden = false;
      if (note) note.textContent = "ended";
    });
    es.addEventListener("error", function () {
      if (es.readyState === EventSource.CLOSED && done.getAttribute("data-done") !== "true") {
        done.textContent = "Lost the live stream: reload to see where the deploy is.";
        done.hidden = false;
      }
    });
  });
})();
