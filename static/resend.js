/* Syrena: count down the seconds until a new code may be asked for (templates/public/verify.html).
 *
 * Markup: [data-resend-wait] holds the sentence, its [data-resend-seconds] the seconds the
 * server rendered, data-ready the sentence for when the wait is over; [data-resend-button]
 * is the "send a new code" button. Without this script the page still says how long to wait
 * and the button still works: an early click gets the server's "wait N s" answer.
 * No inline script (CSP script-src 'self').
 */
(function () {
  var box = document.querySelector('[data-resend-wait]');
  var out = box && box.querySelector('[data-resend-seconds]');
  if (!out) return;
  var button = document.querySelector('[data-resend-button]');
  // Counted from a deadline, not by decrementing: timers in background tabs run late.
  var until = Date.now() + parseInt(out.textContent, 10) * 1000;
  if (button) button.disabled = true;
  function tick() {
    var left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    if (left > 0) {
      out.textContent = String(left);
      setTimeout(tick, 250);
      return;
    }
    box.textContent = box.getAttribute('data-ready');
    if (button) button.disabled = false;
  }
  tick();
})();
