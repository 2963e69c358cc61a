/* Staff message screens: a live SMS length counter under each language's text while typing, the level choice only for
   warning categories, and buttons that cannot be pressed twice. The server-side preview is
   the source of truth; this is an estimate. No inline script anywhere (CSP script-src 'self'). */
(function () {
  "use strict";

  // GSM 03.38 and the transliteration table come from alerts/sms_text.py (browser_rules, the
  // form's data-gsm), so this estimate transliterates and counts by the server's own rules.
  var BASIC = "", EXTENSION = "", TABLE = {};
  var DEGREE = /[ \t\u00a0\u202f\u2009]*(?:°|º(?=\s*[CF]\b))/g;

  function isGsm(ch) { return BASIC.indexOf(ch) >= 0 || EXTENSION.indexOf(ch) >= 0; }

  // alerts/sms_text.py transliterate: line ends, degrees, the table, then NFKD base letters.
  function transliterate(text) {
    text = text.replace(/\r\n?/g, "\n").replace(/℃/g, "°C").replace(/℉/g, "°F").replace(DEGREE, " st.");
    var out = "";
    Array.from(text).forEach(function (ch) {
      if (Object.prototype.hasOwnProperty.call(TABLE, ch)) { ch = TABLE[ch]; }
      if (ch === "" || isGsm(ch)) { out += ch; return; }
      var base = ch.normalize("NFKD").replace(/[\u0300-\u036f]/g, "");
      out += base && Array.prototype.every.call(base, isGsm) ? base : "?";
    });
    return out;
  }

  // alerts/sms_text.py count_segments: an ESC pair or a surrogate pair is never split.
  function segments(text) {
    var chars = Array.from(text);
    var gsm = chars.every(isGsm);
    var costs = chars.map(function (ch) {
      return gsm ? (EXTENSION.indexOf(ch) >= 0 ? 2 : 1) : ch.length; // UTF-16 units outside GSM-7
    });
    var units = costs.reduce(function (a, b) { return a + b; }, 0);
    var single = gsm ? 160 : 70, multi = gsm ? 153 : 67, parts = 0;
    if (units > 0 && units <= single) { parts = 1; }
    if (units > single) {
      var used = 0;
      parts = 1;
      costs.forEach(function (cost) {
        if (used + cost > multi) { parts += 1; used = 0; }
        used += cost;
      });
    }
    return { encoding: gsm ? "GSM-7" : "UCS-2", segments: parts, units: units };
  }

  // Python's str.split() whitespace (JS \\s also takes U+FEFF, which Python keeps in a word).
  var PY_WHITESPACE = /[\t\n\v\f\r \u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (m, key) { return key in values ? values[key] : m; });
  }

  // A letter transliteration cannot map onto GSM-7 (Cyrillic): the SMS goes as UCS-2 with the
  // larger cap (alerts/render.py needs_unicode, segment_cap).
  function needsUnicode(text) {
    return Array.from(text).some(function (ch) {
      return /\p{L}/u.test(ch) && !isGsm(ch) && transliterate(ch).indexOf("?") >= 0;
    });
  }

  function line(parent, text, className) {
    var span = document.createElement("span");
    if (className) { span.className = className; }
    span.textContent = text;
    if (parent.childNodes.length) { parent.appendChild(document.createElement("br")); }
    parent.appendChild(span);
  }

  // One counter under each language's text: that language's SMS as alerts/render.py sms_body
  // builds it (its prefixes, its title or the Polish one), or, with no text, the note that
  // those residents get the Polish SMS.
  function setupCounter(form, code) {
    var text = form.querySelector("#text_" + code), out = form.querySelector("#text_" + code + "-counter");
    var title = form.querySelector("#title_" + code), titlePl = form.querySelector("#title_pl");
    if (!text || !out || !titlePl) { return; }
    var keep = form.querySelector("#keep_diacritics"), exercise = form.querySelector("#exercise");
    var textMax = parseInt(form.dataset.textMax || "1500", 10);
    var forms = JSON.parse(text.dataset.counterForms);
    var rules = new Intl.PluralRules(document.documentElement.lang || "pl");

    function update() {
      out.textContent = "";
      var words = text.value.split(PY_WHITESPACE).filter(Boolean).join(" ");
      if (code !== "pl" && !words) { line(out, text.dataset.counterFallback); return; }
      var prefix = text.dataset.prefix || "";
      if (exercise && exercise.checked) { prefix = text.dataset.exercisePrefix + prefix; }
      var heading = (title && title.value.trim()) || titlePl.value.trim();
      var body = form.dataset.gmina + ": " + prefix + heading.replace(/\.+$/, "") + ". " + words;
      var script = code !== "pl" && needsUnicode(body);
      if (!script && !(keep && keep.checked)) { body = transliterate(body); }
      var info = segments(body);
      var length = text.value.trim().length;
      if (code === "pl" || length > textMax) {
        line(out, fill(form.dataset.chars, { count: length, max: textMax }), length > textMax ? "over" : "");
      }
      var counted = forms[rules.select(body.length)] || forms.many || forms.other;
      line(out, fill(counted, { count: body.length, segments: info.segments, encoding: info.encoding }));
      var cap = parseInt(script ? text.dataset.scriptCap : text.dataset.cap, 10);
      if (info.segments > cap) { line(out, script ? text.dataset.scriptCut : text.dataset.counterCut, "warn"); }
      if (script) {
        line(out, text.dataset.counterScript, "hint");
      } else if (info.encoding === "UCS-2") {
        line(out, form.dataset.counterUcs2, "warn");
      }
    }
    [titlePl, title, text, keep, exercise].forEach(function (el) {
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
      var rules = JSON.parse(form.dataset.gsm);
      BASIC = rules.basic;
      EXTENSION = rules.extension;
      TABLE = rules.table;
      ["pl", "en", "uk"].forEach(function (code) { setupCounter(form, code); });
      setupLevel(form);
      var picker = document.querySelector("form.template-picker");
      if (picker) { setupTemplatePicker(picker, form); }
    }
    setupOnce();
  });
})();
