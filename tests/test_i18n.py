"""Translation catalogs: Polish is complete, and no two files disagree on a key."""

from __future__ import annotations

import tomllib

from i18n import CATALOG_DIR


def flat(path) -> dict[str, str]:  # noqa: ANN001
    out: dict[str, str] = {}

    def walk(prefix: str, node: dict) -> None:
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else k
            walk(key, v) if isinstance(v, dict) else out.__setitem__(key, v)

    walk("", tomllib.loads(path.read_text(encoding="utf-8")))
    return out


def test_no_two_catalog_files_give_one_key_different_texts():
    for lang in ("pl", "en", "uk"):
        seen: dict[str, tuple[str, str]] = {}
        for path in sorted(CATALOG_DIR.glob(f"*.{lang}.toml")):
            for key, text in flat(path).items():
                if key in seen:
                    assert seen[key][1] == text, f"{key} differs in {seen[key][0]} and {path.name}"
                seen[key] = (path.name, text)


def test_every_english_key_exists_in_polish():
    for path in sorted(CATALOG_DIR.glob("*.en.toml")):
        polish = set(flat(path.with_name(path.name.replace(".en.", ".pl."))))
        missing = set(flat(path)) - polish
        assert not missing, f"{path.name}: {sorted(missing)} missing in Polish"
