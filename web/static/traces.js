// kplane trace search: choosing a service loads its operations, so the
// operation list always belongs to the chosen service. Plain JavaScript.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var svc = document.getElementById("f-service");
    var op = document.getElementById("f-operation");
    if (!svc || !op) return;
    svc.addEventListener("change", function () {
      op.textContent = "";
      op.appendChild(new Option("All operations", ""));
      op.disabled = !svc.value;
      if (!svc.value) return;
      var chosen = svc.value;
      fetch(svc.dataset.operations + encodeURIComponent(chosen) + "/operations", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { operations: [] }; })
        .then(function (body) {
          if (svc.value !== chosen) return; // the choice changed meanwhile
          (body.operations || []).forEach(function (name) { op.appendChild(new Option(name, name)); });
        })
        .catch(function () { /* the list stays "All operations"; search still works */ });
    });
  });
})();
