/* Staff message screens: a live SMS length counter while typing, the level choice only for
   warning categories, and buttons that cannot be pressed twice. The server-side preview is
   the source of truth; this is an estimate. No inline script anywhere (CSP script-src 'self'). */
(function () {
  "use strict";

  // GSM 03.38 basic and extension tables (alerts/sms_text.py).
  var BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNO" +
    "PQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var EXTENSION = "\f^{}\\[~]|€";
  var TABLE = {
    "ą": "a", "ć": "c", "ę": "e", "ł": "l", "ń": "n", "ó": "o", "ś": "s", "ź": "z", "ż": "z",
    "Ą": "A", "Ć": "C", "Ę": "E", "Ł": "L", "Ń": "N", "Ó": "O", "Ś": "S", "Ź": "Z", "Ż": "Z",
    "„": "\"", "”": "\"", "“": "\"", "«": "\"", "»": "\"", "‘": "'", "’": "'", "‚": "'", "`": "'",
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-", "…": "...",
    "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\t": " ", "\u200b": "", "\u00ad": "", "\ufeff": ""
  };

  function isGsm(ch) { return BASIC.indexOf(ch) >= 0 || EXTENSION.indexOf(ch) >= 0; }

  function transliterate(text) {
    text = text.replace(/\r\n?/g, "\n").replace(/[ \t\u00a0]*°/g, " st.");
    var out = "";
    for (var i = 0; i < text.length; i++) {
      var ch = text[i];
      if (Object.prototype.hasOwnProperty.call(TABLE, ch)) { out += TABLE[ch]; continue; }
      if (isGsm(ch)) { out += ch; continue; }
      var base = ch.normalize("NFKD").replace(/[\u0300-\u036f]/g, "");
      out += base && Array.prototype.every.call(base, isGsm) ? base : "?";
    }
    return out;
  }

  function segments(text) {
    var gsm = Array.prototype.every.call(text, isGsm);
    var units = 0;
    if (gsm) {
      for (var i = 0; i < text.length; i++) { units += EXTENSION.indexOf(text[i]) >= 0 ? 2 : 1; }
    } else {
      units = text.length; // UTF-16 code units, as operators count UCS-2
    }
    var single = gsm ? 160 : 70, multi = gsm ? 153 : 67;
    var parts = units === 0 ? 0 : (units <= single ? 1 : Math.ceil(units / multi));
    return { encoding: gsm ? "GSM-7" : "UCS-2", segments: parts, units: units };
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (m, key) { return key in values ? values[key] : m; });
  }

  function setupCounter(form) {
    var title = form.querySelector("#title_pl"), text = form.querySelector("#text_pl");
    var out = form.querySelector("#text_pl-counter");
    if (!title || !text || !out) { return; }
    var keep = form.querySelector("#keep_diacritics"), exercise = form.querySelector("#exercise");
    var max = parseInt(form.dataset.maxSegments || "2", 10);
    var textMax = parseInt(form.dataset.textMax || "1500", 10);

    function update() {
      var prefix = form.dataset.prefix || "";
      if (exercise && exercise.checked) { prefix = form.dataset.exercisePrefix + prefix; }
      var body = form.dataset.gmina + ": " + prefix + title.value.trim().replace(/\.+$/, "") + ". " +
        text.value.split(/\s+/).filter(Boolean).join(" ");
      if (!(keep && keep.checked)) { body = transliterate(body); }
      var info = segments(body);
      out.textContent = "";
      var chars = document.createElement("span");
      var length = text.value.trim().length;
      chars.textContent = fill(form.dataset.chars, { count: length, max: textMax });
      if (length > textMax) { chars.className = "over"; }
      out.appendChild(chars);
      out.appendChild(document.createElement("br"));
      out.appendChild(document.createTextNode(fill(form.dataset.counter,
        { chars: body.length, segments: info.segments, encoding: info.encoding })));
      if (info.segments > max) {
        var cut = document.createElement("span");
        cut.className = "warn";
        cut.textContent = " " + form.dataset.counterCut;
        out.appendChild(document.createElement("br"));
        out.appendChild(cut);
      }
      if (info.encoding === "UCS-2") {
        var dear = document.createElement("span");
        dear.className = "warn";
        dear.textContent = form.dataset.counterUcs2;
        out.appendChild(document.createElement("br"));
        out.appendChild(dear);
      }
    }
    [title, text, keep, exercise].forEach(function (el) {
      if (el) { el.addEventListener(el.type === "checkbox" ? "change" : "input", update); }
    });
    update();
  }

  // The level belongs to warning categories only: hide it (and send nothing) for the others.
  function setupLevel(form) {
    var category = form.querySelector("select#category"), field = form.querySelector("#level-field");
    if (!category || !field) { return; }
    var level = field.querySelector("select");
    function update() {
      var option = category.options[category.selectedIndex];
      var hazard = !option || option.value === "" || option.dataset.hazard === "1";
      var hasError = field.classList.contains("has-error");
      field.hidden = !hazard && !hasError;
      level.disabled = !hazard && !hasError;
    }
    category.addEventListener("change", function () {
      field.classList.remove("has-error");
      update();
    });
    update();
  }

  // A second tap on a sending button while the first request runs does nothing.
  function setupOnce() {
    document.querySelectorAll("form").forEach(function (form) {
      form.addEventListener("submit", function () {
        form.querySelectorAll("button[data-once]").forEach(function (button) {
          window.setTimeout(function () { button.disabled = true; }, 0);
        });
      });
    });
  }

  // "Wstaw wzór" reloads the page with the template's text: ask before it replaces what was
  // typed (the question is the picker's data-confirm; nothing typed, nothing asked).
  function setupTemplatePicker(picker, compose) {
    picker.addEventListener("submit", function (event) {
      var typed = ["title_pl", "text_pl", "title_en", "text_en", "title_uk", "text_uk"].some(function (id) {
        var field = compose.querySelector("#" + id);
        return field && field.value.trim() !== "" && field.value !== field.defaultValue;
      });
      if (typed && !window.confirm(picker.dataset.confirm)) { event.preventDefault(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("compose-form");
    if (form) {
      setupCounter(form);
      setupLevel(form);
      var picker = document.querySelector("form.template-picker");
      if (picker) { setupTemplatePicker(picker, form); }
    }
    setupOnce();
  });
})();
