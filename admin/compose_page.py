"""The compose page of a staff message: new, edit, correction (update) and withdrawal
(cancel), with the live SMS counter's data for each language.
"""

from __future__ import annotations

import json

from flask import current_app, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from admin.message_helpers import Errors, LEVELS, local_input, municipality, offered_templates
from alerts.models import CHANNELS, KIND_ALERT, KIND_CANCEL, KIND_UPDATE, Alert
from alerts.publish import TEXT_MAX_CHARS
from alerts.sms_text import browser_rules
from i18n import current_language, plural_forms, t, translate
from municipality import CATEGORIES, LANGUAGES


def new_form() -> MultiDict:
    form = MultiDict([("target", "all"), ("when", "now"), *(("channels", c) for c in CHANNELS)])
    code = request.args.get("template")
    tpl = next((x for x in offered_templates() if x.code == code), None)
    if tpl is not None:
        form["template"] = tpl.code
        form["category"] = tpl.category
        form["title_pl"] = tpl.title
        form["text_pl"] = tpl.text
    return form


def form_from_alert(alert: Alert, *, titles: bool = True) -> MultiDict:
    form: MultiDict = MultiDict()
    form["category"] = alert.category
    form["level"] = str(alert.level or "")
    if titles:
        for lang in LANGUAGES:
            form[f"title_{lang}"] = alert.titles.get(lang, "")
            form[f"text_{lang}"] = alert.texts.get(lang, "")
        form["spoken_pl"] = (alert.spoken or {}).get("pl", "")
    form["target"] = "all" if alert.areas is None else "areas"
    for code in alert.areas or []:
        form.add("areas", code)
    form["audience"] = "groups" if alert.groups else "everyone"
    for code in alert.groups or []:
        form.add("groups", code)
    for channel in alert.channels:
        form.add("channels", channel)
    form["when"] = "later" if alert.send_at else "now"
    form["send_at"] = local_input(alert.send_at)
    form["expires_at"] = local_input(alert.expires_at)
    if alert.keep_diacritics:
        form["keep_diacritics"] = "1"
    if alert.exercise:
        form["exercise"] = "1"
    return form


def compose_page(mode: str, form: MultiDict, errors: Errors, *, alert: Alert | None = None,
                  parent: Alert | None = None, status: int = 200):  # noqa: ANN202
    """mode: new, edit, update (a correction of `parent`), cancel (its withdrawal)."""
    if alert is not None:
        kind = alert.kind
    else:
        kind = {"update": KIND_UPDATE, "cancel": KIND_CANCEL}.get(mode, KIND_ALERT)
    if mode == "new":
        action = url_for("admin.compose")
    elif mode == "edit":
        action = url_for("admin.edit", alert_id=alert.id)
    elif mode == "update":
        action = url_for("admin.follow_up_update", alert_id=parent.id)
    else:
        action = url_for("admin.follow_up_cancel", alert_id=parent.id)
    category = CATEGORIES.get(parent.category if parent is not None else form.get("category", ""))
    page = render_template(
        "admin/messages/compose.html", mode=mode, kind=kind, form=form, errors=errors, alert=alert,
        parent=parent, action=action, fixed_category=category if parent is not None else None,
        templates=offered_templates() if mode == "new" else [], offered=municipality().offered_categories(),
        levels=LEVELS, languages=LANGUAGES, text_max=TEXT_MAX_CHARS,
        counters={code: counter(code, parent, kind) for code in LANGUAGES},
        gsm_rules=json.dumps(browser_rules(), ensure_ascii=False),
        max_segments=current_app.config.get("SMS_MAX_SEGMENTS", 2),
        push_on=current_app.extensions.get("webpush") is not None,
        voice_on=current_app.extensions.get("voice") is not None)
    return page, status


def posted_form(alert: Alert | None, parent: Alert | None = None) -> MultiDict:
    """The posted form; a cancellation's form has only its words, so what it cannot change
    (target, groups, channels, level, exercise) comes from the message it withdraws."""
    form = MultiDict(request.form)
    source = parent if parent is not None else (alert.parent if alert is not None else None)
    kind = KIND_CANCEL if parent is not None else (alert.kind if alert is not None else KIND_ALERT)
    if kind == KIND_CANCEL and source is not None:
        fixed = form_from_alert(alert if alert is not None else source, titles=False)
        for key in ("category", "level", "target", "areas", "audience", "groups", "channels", "exercise"):
            form.setlist(key, fixed.getlist(key))
        form["when"] = "now"
        form["expires_at"] = ""
    elif alert is not None and alert.parent_id is not None:
        form.setlist("exercise", ["1"] if alert.exercise else [])
    return form


def counter(code: str, parent: Alert | None, kind: str) -> dict[str, str]:
    """What the live SMS counter under the `code` text needs (static/admin-messages.js): how
    that language's SMS starts (a follow-up is an exercise when its parent is; other messages
    say so with the exercise checkbox), its segment cap, and its texts in the page's language,
    the counted one as plural forms for the script to choose from as it counts."""
    prefix = translate("alert.prefix_exercise", code) + " " if parent is not None and parent.exercise else ""
    if kind in (KIND_UPDATE, KIND_CANCEL):
        prefix += translate(f"alert.prefix_{kind}", code) + " "
    name = language_name(code)
    gsm_cap = current_app.config.get("SMS_MAX_SEGMENTS", 2)
    script_cap = current_app.config.get("SMS_MAX_SEGMENTS_UNICODE", 5)
    forms = {category: text.replace("{language}", name)
             for category, text in plural_forms("admin.msg.compose.counter", current_language()).items()}
    return {"prefix": prefix, "exercise_prefix": translate("alert.prefix_exercise", code) + " ",
            "forms": json.dumps(forms, ensure_ascii=False), "cap": gsm_cap, "script_cap": script_cap,
            "cut": t("admin.msg.compose.counter_cut", max=gsm_cap),
            "script_cut": t("admin.msg.compose.counter_cut", max=script_cap),
            "script": t("admin.msg.compose.counter_script", max=script_cap),
            "fallback": t("admin.msg.compose.counter_fallback", language=name)}


def language_name(code: str) -> str:
    return t(f"admin.msg.lang.{code}") if code in LANGUAGES else code
