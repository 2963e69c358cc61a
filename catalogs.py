"""The translation catalogs' toolchain: extract, update, compile, check (`flask translate`).

Polish (``translations/pl/``) is the source: a key's text is written there first. Then
  extract  finds every key the code and templates name (Babel's Python and Jinja2
           extractors) and fails on one Polish lacks; writes ``translations/<domain>.pot``,
           each key with its Polish text as the translator's comment;
  update   brings the English and Ukrainian catalogs in line with that template (Babel's
           Catalog.update): new keys appear untranslated, removed ones go, and a key whose
           Polish text changed is marked fuzzy, so a translator sees what to look at again;
  compile  writes the ``.mo`` files the service reads (untranslated and fuzzy entries are
           left out, so those keys show Polish);
  check    lists every problem: a key missing in a language that must have it, a fuzzy
           one, a placeholder that differs from Polish, a key Polish does not have, a key in
           both domains, a ``.mo`` older than its ``.po``.
`make translations` runs all four. i18n.py reads the compiled catalogs.
"""

from __future__ import annotations

import contextlib
import io
import re
import string
import sys
from collections.abc import Iterable
from pathlib import Path

import click
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

from i18n import CATALOG_DIR, DOMAINS, STAFF_LANGUAGES
from municipality import LANGUAGES

ROOT = Path(__file__).resolve().parent
# The functions whose first argument is a key (i18n.py); `_` is `t` in templates.
KEYWORDS: dict[str, tuple[int, ...] | None] = {
    **{name: None for name in ("_", "t", "translate", "lookup", "t_marked", "translate_marked")},
    "_saved": (2,),  # admin/messages.py: flash(t(key)) after a save
}
METHODS = [("tests/**", "ignore"), ("bench/**", "ignore"), (".venv/**", "ignore"),
           ("migrations/**", "ignore"), ("**.py", "python"), ("templates/**.html", "jinja2")]
POLISH_PREFIX = "pl: "
KEY = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")


def languages_of(domain: str) -> tuple[str, ...]:
    """The languages `domain` must exist in: staff pages are Polish and English only."""
    return STAFF_LANGUAGES if domain == "admin" else tuple(LANGUAGES)


def po_path(root: Path, lang: str, domain: str) -> Path:
    return root / lang / "LC_MESSAGES" / f"{domain}.po"


def read(root: Path, lang: str, domain: str) -> Catalog | None:
    path = po_path(root, lang, domain)
    if not path.exists():
        return None
    with path.open("rb") as fh:
        return read_po(fh, locale=lang, domain=domain)


def _save(path: Path, data: bytes) -> bool:
    """Write `data` unless the file already holds it (no churn for translators' diffs)."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def write(catalog: Catalog, path: Path) -> bool:
    """The catalog as a .po at `path`; False when the file already said exactly this."""
    out = io.BytesIO()
    # No wrapping and no obsolete (#~) entries: a removed key's text is in git's history.
    write_po(out, catalog, width=0, ignore_obsolete=True, include_previous=False, include_lineno=False)
    return _save(path, out.getvalue())


def key_of(message_id: str | tuple[str, ...]) -> str:
    """A message's key: its id, or for a counted text (id, id_plural) the first."""
    return message_id if isinstance(message_id, str) else message_id[0]


def texts(message: Message) -> tuple[str, ...]:
    return tuple(message.string) if isinstance(message.string, (list, tuple)) else (message.string,)


def placeholders(message: Message) -> set[str] | None:
    """The {names} in every form of the message; None when one is malformed (a stray brace)."""
    try:
        return {name for text in texts(message) for _, name, _, _ in string.Formatter().parse(text or "")
                if name is not None}
    except ValueError:
        return None


def code_keys(source: Path = ROOT) -> dict[str, list[tuple[str, int]]]:
    """Every key named literally in the code and templates, with where (file, line).
    Keys built at run time (f"error.{code}") are not seen; the catalogs name those."""
    found: dict[str, list[tuple[str, int]]] = {}
    # Babel warns on stderr of each f-string key (f"error.{code}"); those are known and many.
    with contextlib.redirect_stderr(io.StringIO()):
        extracted = list(extract_from_dir(str(source), METHODS, keywords=KEYWORDS, comment_tags=()))
    for filename, lineno, message, _comments, _context in extracted:
        key = message[0] if isinstance(message, tuple) else message
        if key and KEY.fullmatch(key):
            found.setdefault(key, []).append((filename, lineno))
    return found


def _joined(key: str, known: set[str]) -> bool:
    """`t("a.on" if x else "a.off")` reaches Babel as one literal "a.ona.off" (every string
    in the call, joined): it starts with a known key and ends with another."""
    return any(key[:i] in known and any(k and key.endswith(k) for k in known if len(k) <= len(key) - i)
               for i in range(1, len(key)))


def template(root: Path, domain: str, locations: dict[str, list[tuple[str, int]]]) -> Catalog:
    """The domain's template: every Polish key, untranslated, its Polish text as a comment."""
    polish = read(root, "pl", domain) or Catalog(locale="pl", domain=domain)
    pot = Catalog(domain=domain, project="Syrena", version="1", fuzzy=False,
                  copyright_holder="the Syrena authors")
    for message in polish:
        if not message.id:
            continue
        empty: str | tuple[str, ...] = ("",) * 2 if message.pluralizable else ""
        pot.add(message.id, empty, locations=locations.get(key_of(message.id), []),
                auto_comments=[POLISH_PREFIX + " | ".join(texts(message))],
                flags=message.flags - {"fuzzy"})
    return pot


def extract(root: Path = CATALOG_DIR, source: Path = ROOT) -> tuple[dict[str, Catalog], list[str]]:
    """The templates by domain, and every key the code names that no Polish catalog has."""
    used = code_keys(source)
    known: set[str] = set()
    for domain in DOMAINS:
        known |= {key_of(m.id) for m in read(root, "pl", domain) or [] if m.id}
    missing = [f"{key} ({', '.join(f'{f}:{n}' for f, n in where)})" for key, where in sorted(used.items())
               if key not in known and not _joined(key, known)]
    return {domain: template(root, domain, used) for domain in DOMAINS}, missing


def _polish(message: Message) -> str:
    """The Polish text a translation was made from (its comment; written wrapped, read back
    as several lines, hence compared without the line breaks)."""
    return " ".join(" ".join(message.auto_comments).split())


def update(root: Path, templates: dict[str, Catalog]) -> list[Path]:
    """Every non-Polish catalog brought in line with its template; the files that changed."""
    written = []
    for domain, pot in templates.items():
        for lang in languages_of(domain):
            if lang == "pl":
                continue
            catalog = read(root, lang, domain) or Catalog(locale=lang, domain=domain, project="Syrena",
                                                          version="1", fuzzy=False)
            before = {m.id: _polish(m) for m in catalog if m.id}
            catalog.update(pot, no_fuzzy_matching=True, update_header_comment=False, update_creation_date=False)
            for message in catalog:
                # The Polish text changed since this was translated: a translator looks again.
                # (No comment before: written by hand alongside the Polish, nothing to compare.)
                if message.id and any(texts(message)) and before.get(message.id) not in (None, "", _polish(message)):
                    message.flags.add("fuzzy")
            path = po_path(root, lang, domain)
            if write(catalog, path):
                written.append(path)
    return written


def compile_all(root: Path = CATALOG_DIR) -> list[Path]:
    """Every .po compiled to its .mo (untranslated, partly translated and fuzzy entries left
    out, so those keys show Polish); the .mo files that changed."""
    written = []
    for path in sorted(root.glob("*/LC_MESSAGES/*.po")):
        lang, domain = path.parts[-3], path.stem
        catalog = read(root, lang, domain)
        for message in list(catalog):
            if message.id and not all(texts(message)):
                catalog.delete(message.id)
        out = io.BytesIO()
        write_mo(out, catalog, use_fuzzy=False)
        if _save(path.with_suffix(".mo"), out.getvalue()):
            written.append(path.with_suffix(".mo"))
    return written


def problems(root: Path = CATALOG_DIR) -> list[str]:
    """Every problem in the catalogs, one line each ("uk/messages: error.code_missing missing")."""
    found: list[str] = []
    owner: dict[str, str] = {}
    for domain in DOMAINS:
        polish = {m.id: m for m in read(root, "pl", domain) or [] if m.id}
        for message_id in polish:
            key = key_of(message_id)
            if key in owner:
                found.append(f"pl/{domain}: {key} is also in pl/{owner[key]}")
            owner[key] = domain
        for message_id, message in polish.items():
            key = key_of(message_id)
            if not all(texts(message)):
                found.append(f"pl/{domain}: {key} has no Polish text")
            elif placeholders(message) is None:
                found.append(f"pl/{domain}: {key} has a malformed placeholder (a lone brace)")
        for lang in LANGUAGES:
            if lang == "pl":
                continue
            other = {m.id: m for m in read(root, lang, domain) or [] if m.id}
            name = {message_id: key_of(message_id)
                    for message_id in polish.keys() | other.keys()}
            required = lang in languages_of(domain)
            for message_id, message in polish.items():
                theirs = other.get(message_id)
                if theirs is None or not all(texts(theirs)):
                    if required:
                        found.append(f"{lang}/{domain}: {name[message_id]} missing")
                    continue
                if any(text == name[message_id] for text in texts(theirs)):
                    found.append(f"{lang}/{domain}: {name[message_id]} is untranslated (its text is its key)")
                if "fuzzy" in theirs.flags and required:
                    found.append(f"{lang}/{domain}: {name[message_id]} is fuzzy (its Polish text changed)")
                if placeholders(theirs) is None:
                    found.append(f"{lang}/{domain}: {name[message_id]} has a malformed placeholder (a lone brace)")
                elif placeholders(theirs) != placeholders(message):
                    found.append(f"{lang}/{domain}: {name[message_id]} has placeholders "
                                 f"{sorted(placeholders(theirs))}, Polish {sorted(placeholders(message) or ())}")
            for message_id in other.keys() - polish.keys():
                found.append(f"{lang}/{domain}: {name[message_id]} is not in pl/{domain}.po")
    for path in sorted(root.glob("*/LC_MESSAGES/*.po")):
        mo = path.with_suffix(".mo")
        if not mo.exists() or _compiled(path) != _read_mo(mo):
            found.append(f"{path.relative_to(root)}: its .mo is missing or out of date (make translations)")
    return found


def _entries(messages: Iterable[Message]) -> dict:
    return {(m.id if isinstance(m.id, str) else tuple(m.id)): texts(m) for m in messages if m.id}


def _compiled(path: Path) -> dict:
    """What the .po's .mo must hold: its complete, reviewed entries and its plural rule."""
    catalog = read(path.parents[2], path.parts[-3], path.stem)
    return {**_entries(m for m in catalog if all(texts(m)) and not m.fuzzy), "": catalog.plural_forms}


def _read_mo(path: Path) -> dict:
    with path.open("rb") as fh:
        catalog = read_mo(fh)
    return {**_entries(catalog), "": catalog.plural_forms}


# A plain click group: `flask translate ...` in the app's CLI, and `python -m catalogs ...`
# (what `make translations` runs), which needs no configured app.
translate_cli = click.Group("translate", help="Extract, update, compile and check the translation catalogs.")


def _report(lines: Iterable[str], what: str) -> None:
    lines = list(lines)
    for line in lines:
        click.echo(f"  {line}", err=True)
    if lines:
        click.echo(f"{len(lines)} {what}", err=True)
        sys.exit(1)


@translate_cli.command("extract")
def extract_command() -> None:
    """Find the keys the code names; write translations/<domain>.pot."""
    templates, missing = extract()
    for domain, pot in templates.items():
        with (CATALOG_DIR / f"{domain}.pot").open("wb") as fh:
            write_po(fh, pot, width=0, include_lineno=False)
        click.echo(f"translations/{domain}.pot: {len(pot)} keys")
    _report(missing, "keys named in the code have no Polish text in translations/pl/")


@translate_cli.command("update")
def update_command() -> None:
    """Bring the English and Ukrainian catalogs in line with Polish."""
    templates, _ = extract()
    for path in update(CATALOG_DIR, templates):
        click.echo(f"updated {path.relative_to(ROOT)}")


@translate_cli.command("compile")
def compile_command() -> None:
    """Compile every catalog to the .mo the service reads."""
    for path in compile_all():
        click.echo(f"compiled {path.relative_to(ROOT)}")


@translate_cli.command("check")
def check_command() -> None:
    """List every missing, fuzzy or mismatched text; fail if there is one."""
    _report(problems(), "translation problems")
    click.echo("translations complete")


if __name__ == "__main__":
    translate_cli()
