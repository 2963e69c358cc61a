"""Tests for alerts.sms_text: numbers from research/delivery.md section 2 (3GPP TS 23.038)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # no pytest config yet puts the repo root on sys.path
    sys.path.insert(0, str(ROOT))

from alerts.sms_text import (  # noqa: E402
    GSM7_BASIC,
    GSM7_EXTENSION,
    SegmentInfo,
    count_segments,
    fit_sms,
    is_gsm7,
    transliterate,
)

IMGW_SAMPLE = Path(__file__).resolve().parent / "fixtures" / "feeds" / "imgw_warningsmeteo_sample.json"
LINK = "https://syrena.example.pl/a/Gd20260814094159060"
POLISH_LOWER = "aąbcćdeęfghijklłmnńoóprsśtuwyzźż"
POLISH_UPPER = "AĄBCĆDEĘFGHIJKLŁMNŃOÓPRSŚTUWYZŹŻ"


def imgw_warning(warning_id: str) -> dict:
    records = json.loads(IMGW_SAMPLE.read_text(encoding="utf-8"))
    return next(r for r in records if r["id"] == warning_id)


# --- alphabet -------------------------------------------------------------------------------


def test_the_basic_table_is_the_127_characters_of_gsm_03_38_in_code_order():
    rows = [  # re-typed row by row from the research table (0x1B ESC is not a character)
        "@£$¥èéùìòÇ\nØø\rÅå", "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ", " !\"#¤%&'()*+,-./", "0123456789:;<=>?",
        "¡ABCDEFGHIJKLMNO", "PQRSTUVWXYZÄÖÑÜ§", "¿abcdefghijklmno", "pqrstuvwxyzäöñüà",
    ]
    assert [len(r) for r in rows] == [16, 15, 16, 16, 16, 16, 16, 16]
    assert GSM7_BASIC == frozenset("".join(rows))
    assert len(GSM7_BASIC) == 127
    assert "\x1b" not in GSM7_BASIC and "ç" not in GSM7_BASIC and "`" not in GSM7_BASIC


def test_the_extension_table_is_form_feed_and_nine_symbols_and_disjoint_from_basic():
    assert GSM7_EXTENSION == frozenset(["\f", "^", "{", "}", "\\", "[", "~", "]", "|", "€"])
    assert not GSM7_BASIC & GSM7_EXTENSION


def test_polish_letters_and_typography_are_not_gsm7():
    for ch in POLISH_LOWER + POLISH_UPPER + "°–—„”“’…\u00a0`":
        if ch not in "abcdefghijklmnoprstuwyzABCDEFGHIJKLMNOPRSTUWYZ":
            assert not is_gsm7(ch), ch
    assert is_gsm7("Zażółć"[:2]) and not is_gsm7("Zażółć")
    assert is_gsm7("") and is_gsm7("a€[]\n\r")


# --- counting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "segments", "per_segment"),
    [(1, 1, 160), (160, 1, 160), (161, 2, 153), (306, 2, 153), (307, 3, 153), (459, 3, 153)],
)
def test_gsm7_text_is_160_per_single_segment_and_153_per_part(length, segments, per_segment):
    info = count_segments("a" * length)
    assert info == SegmentInfo("GSM-7", length, segments, per_segment, ())


def test_161_gsm_characters_are_two_parts_of_153_and_8():
    # 153 + 8: dropping 8 characters brings it back to exactly one full part.
    assert count_segments("x" * 161).segments == 2
    assert count_segments("x" * 153).segments == 1


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_a_single_polish_letter_forces_ucs2_at_70_then_67_per_part(length, segments):
    info = count_segments("ą" * length)
    assert (info.encoding, info.units, info.segments) == ("UCS-2", length, segments)
    assert info.per_segment == (70 if length <= 70 else 67)
    assert info.non_gsm == ("ą",)


def test_euro_sign_costs_two_septets_so_80_fit_in_one_segment():
    info = count_segments("€" * 80)
    assert (info.encoding, info.units, info.segments, info.per_segment) == ("GSM-7", 160, 1, 160)


def test_81_euro_signs_are_two_parts_and_no_euro_is_split_across_them():
    # 162 septets; 76 € fill 152 of 153 septets, the 77th would need the last septet plus one of
    # the next part, so it moves whole: parts of 76 and 5 € (as smsutil reports).
    assert count_segments("€" * 81) == SegmentInfo("GSM-7", 162, 2, 153, ())
    # 152 plain + 1 € = 154 septets > 153: the € cannot straddle, it opens part 3.
    text = "a" * 152 + "€" + "a" * 152
    info = count_segments(text)
    assert info.units == 306 and info.segments == 3


def test_an_emoji_counts_two_utf16_units_and_is_not_split_across_parts():
    assert count_segments("🚨").units == 2
    assert count_segments("🚨" * 35) == SegmentInfo("UCS-2", 70, 1, 70, ("🚨",))
    assert count_segments("🚨" * 36).segments == 2  # 72 units: parts of 33 + 3 emoji
    # 66 units + emoji (2) would be 68 > 67, so the emoji starts part 2; 66 + 2 + 66 = 134 would
    # fit in two parts if the pair could be split, but it cannot.
    text = "ą" * 66 + "🚨" + "ą" * 66
    info = count_segments(text)
    assert info.units == 134 and info.segments == 3


def test_empty_text_is_zero_segments():
    assert count_segments("") == SegmentInfo("GSM-7", 0, 0, 160, ())


def test_non_gsm_lists_distinct_offenders_in_order_of_first_appearance():
    info = count_segments("Upał 30°C, upał!")
    assert info.encoding == "UCS-2"
    assert info.non_gsm == ("ł", "°")


def test_lf_and_cr_are_one_septet_and_form_feed_is_two():
    assert count_segments("a\r\nb").units == 4
    assert count_segments("a\fb").units == 4


# --- transliteration -------------------------------------------------------------------------


def test_l_with_stroke_becomes_l_and_is_not_dropped_like_with_nfd():
    assert transliterate("Główny Inspektorat") == "Glowny Inspektorat"
    assert transliterate("ŁÓDŹ") == "LODZ"


def test_the_full_polish_alphabet_upper_and_lower():
    assert transliterate(POLISH_LOWER) == "aabccdeefghijkllmnnooprsstuwyzzz"
    assert transliterate(POLISH_UPPER) == "AABCCDEEFGHIJKLLMNNOOPRSSTUWYZZZ"
    assert transliterate("Zażółć gęślą jaźń") == "Zazolc gesla jazn"


def test_polish_and_typographic_quotes_become_ascii_quotes():
    assert transliterate("„cudzysłów”") == '"cudzyslow"'
    assert transliterate("“a” «b» ‘c’ ‚d’ `e`") == "\"a\" \"b\" 'c' 'd' 'e'"


def test_dashes_become_hyphen_minus():
    assert transliterate("od 10–12, potem — nic; −5 ‐ x") == "od 10-12, potem - nic; -5 - x"


def test_odd_spaces_become_space_and_invisible_characters_are_removed():
    assert transliterate("ul.\u00a0Polna\u202f3\u2009a\tb") == "ul. Polna 3 a b"
    assert transliterate("a\u200bb\u200cc\u200dd\ufeffe\u00adf") == "abcdef"


def test_crlf_becomes_lf():
    assert transliterate("a\r\nb\rc\nd") == "a\nb\nc\nd"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30°C", "30 st.C"),
        ("30 °C", "30 st.C"),
        ("od 30°C do 34°C", "od 30 st.C do 34 st.C"),
        ("30℃", "30 st.C"),
        ("30ºC", "30 st.C"),
        ("kąt 45°", "kat 45 st."),
    ],
)
def test_degrees_are_written_as_st_because_the_degree_sign_is_not_gsm(text, expected):
    assert transliterate(text) == expected


def test_ellipsis_becomes_three_dots():
    assert transliterate("Uwaga…") == "Uwaga..."


def test_other_latin_diacritics_fall_back_to_the_base_letter_and_gsm_letters_stay():
    assert transliterate("Dvořák čšž á ő ç") == "Dvorak csz a o c"
    assert transliterate("é É ü Ü ä ö ñ à è ù ì ò Ç ß") == "é É ü Ü ä ö ñ à è ù ì ò Ç ß"


def test_gsm_text_is_unchanged_including_extension_characters():
    text = "Koszt: 5 € [info] {x} ~ ^ | \\ @ £ $ ¥ ¤ § ¡ ¿ Δ Ω\n\f"
    assert transliterate(text) == text


def test_non_latin_scripts_and_emoji_become_question_marks():
    assert transliterate("Увага 🚨") == "????? ?"


def test_transliteration_is_always_gsm7_for_random_unicode():
    rng = random.Random(20260814)
    pools = [
        (0x20, 0x7F), (0xA0, 0x250), (0x370, 0x530), (0x2000, 0x2070),
        (0x2100, 0x2200), (0xFB00, 0xFB07), (0xFE00, 0xFF00), (0x1F300, 0x1F680),
    ]
    for _ in range(2000):
        chars = []
        for _ in range(rng.randint(0, 40)):
            lo, hi = rng.choice(pools)
            chars.append(chr(rng.randrange(lo, hi)))
        text = "".join(chars) + rng.choice(["", "\r\n", "°C", "\t", "ł"])
        out = transliterate(text)
        assert is_gsm7(out), (text, out)
        assert count_segments(out).encoding == "GSM-7"


def test_the_whole_polish_range_of_unicode_is_handled():
    for code in range(0x0000, 0x3000):
        ch = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        assert is_gsm7(transliterate(ch)), hex(code)


# --- cost ------------------------------------------------------------------------------------


def test_a_166_char_polish_alert_is_3_ucs2_segments_but_2_gsm7_segments_transliterated():
    alert = (
        "Gmina Łąka: silny wiatr do 90 km/h, możliwe przerwy w dostawie prądu. "
        "Zabezpiecz rzeczy na balkonie, nie parkuj pod drzewami. "
        "Więcej: urząd gminy, tel. 81 123 45 678."
    )
    assert len(alert) == 166
    # UCS-2: 67 + 67 + 32 units = 3 segments; GSM-7: 153 + 13 septets = 2 segments.
    assert count_segments(alert) == SegmentInfo("UCS-2", 166, 3, 67, ("Ł", "ą", "ż", "ę"))
    assert count_segments(transliterate(alert)) == SegmentInfo("GSM-7", 166, 2, 153, ())


def test_one_polish_letter_in_a_160_char_text_triples_the_cost():
    text = "ą" + "a" * 159
    assert count_segments(text).segments == 3
    assert count_segments(transliterate(text)).segments == 1


# --- fit_sms ---------------------------------------------------------------------------------


def test_a_short_text_is_returned_transliterated_but_otherwise_unchanged_without_link():
    assert fit_sms("Upał 30°C", link=LINK) == "Upal 30 st.C"
    assert fit_sms("Burza", link=LINK, keep_diacritics=True) == "Burza"
    assert fit_sms("") == ""


def test_the_imgw_heat_warning_fits_one_gsm_segment_once_transliterated():
    tresc = imgw_warning("Gd20260814094159060")["tresc"]
    assert count_segments(tresc).encoding == "UCS-2" and count_segments(tresc).segments == 2
    body = fit_sms(tresc, link=LINK)
    assert body == transliterate(tresc)
    assert count_segments(body) == SegmentInfo("GSM-7", len(body), 1, 160, ())


def test_a_full_imgw_alert_is_shortened_to_two_gsm7_segments_with_the_link_at_the_end():
    w = imgw_warning("Gd20260814094159060")
    alert = (
        f"{w['nazwa_zdarzenia']} - ostrzeżenie {w['stopien']}. stopnia IMGW "
        f"(prawdopodobieństwo {w['prawdopodobienstwo']}%), od {w['obowiazuje_od'][:16]} "
        f"do {w['obowiazuje_do'][:16]}. {w['tresc']} {w['komentarz']} Wydał: {w['biuro']}."
    )
    assert count_segments(transliterate(alert)).segments == 3  # so it really has to be cut
    body = fit_sms(alert, link=LINK)
    assert_cut_properly(transliterate(alert), body, LINK, max_segments=2)
    assert "Temperatura minimalna w nocy od 17 st.C do 20 st.C." in body


def assert_cut_properly(full: str, body: str, link: str, *, max_segments: int) -> None:
    info = count_segments(body)
    assert info.encoding == "GSM-7" and 1 <= info.segments <= max_segments
    assert body.endswith("... " + link)
    kept = body[: -len("... " + link)]
    assert full.startswith(kept)
    assert full[len(kept)] in " ,.;:"  # cut at a word boundary, never inside a word
    assert kept[-1] not in " ,;:-.("  # no dangling punctuation or space before the ellipsis
    # Greedy: one more word would not have fitted.
    next_word_end = full.find(" ", len(kept) + 1)
    longer = full[: next_word_end if next_word_end != -1 else len(full)] + "... " + link
    assert count_segments(longer).segments > max_segments


def test_keep_diacritics_keeps_l_with_stroke_and_counts_ucs2():
    text = "Główny Inspektorat Ochrony Środowiska ostrzega: zła jakość powietrza. " * 4
    body = fit_sms(text, keep_diacritics=True, link=LINK)
    info = count_segments(body)
    assert "ł" in body and info.encoding == "UCS-2" and info.segments <= 2
    assert body.endswith("… " + LINK)  # "…" is one unit and the message is UCS-2 anyway
    short = fit_sms("Główny", keep_diacritics=True)
    assert short == "Główny" and count_segments(short).encoding == "UCS-2"


def test_the_link_is_never_cut_and_a_link_that_cannot_fit_raises():
    with pytest.raises(ValueError):
        fit_sms("słowo " * 100, max_segments=1, link="https://x.pl/" + "a" * 200)
    with pytest.raises(ValueError):
        fit_sms("słowo", max_segments=0)


def test_a_single_overlong_word_is_hard_cut_as_a_last_resort():
    body = fit_sms("x" * 500, max_segments=1, link=LINK)
    assert body == "x" * (160 - len("... " + LINK)) + "... " + LINK
    assert count_segments(body).units == 160


@pytest.mark.parametrize("max_segments", [1, 2, 3])
def test_fitted_text_always_fits_exactly_for_random_polish_text(max_segments):
    rng = random.Random(max_segments)
    words = ["Upał", "burza", "z gradem,", "woda:", "ul. Łąkowa", "—", "30°C", "[pilne]", "€5"]
    for _ in range(200):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 120)))
        for keep in (False, True):
            link = rng.choice([None, LINK])
            body = fit_sms(text, max_segments=max_segments, link=link, keep_diacritics=keep)
            assert count_segments(body).segments <= max_segments
            if not keep:
                assert is_gsm7(body)
            if link and body != (text if keep else transliterate(text)):
                assert body.endswith(" " + link)
