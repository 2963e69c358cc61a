/* A form sent back with errors: move to its error summary and focus it, so a screen reader
   reads it and a phone shows it (a break-glass error had been 2,100 px down the page). */
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var summary = document.querySelector(".error-summary");
  if (!summary) { return; }
  summary.setAttribute("tabindex", "-1");
  summary.scrollIntoView({ block: "start" });
  summary.focus({ preventScroll: true });
});
