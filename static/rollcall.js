// A roll-call's page refreshes its tally and lists every few seconds without a reload
// (the forms below keep what staff typed); the printout's button prints.
(function () {
  "use strict";
  var EVERY_MS = 5000;

  function refresh(box) {
    if (document.hidden) { return; }
    fetch(box.getAttribute("data-url"), {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) { box.innerHTML = html; box.removeAttribute("data-stale"); })
      .catch(function () { box.setAttribute("data-stale", "1"); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("rollcall-live");
    if (box && box.getAttribute("data-url")) {
      window.setInterval(function () { refresh(box); }, EVERY_MS);
    }
    var button = document.getElementById("print-button");
    if (button) { button.addEventListener("click", function () { window.print(); }); }
  });
})();
