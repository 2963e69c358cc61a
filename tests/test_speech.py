"""The spoken text of a voice call (alerts/speech.py): what an SMS abbreviates, read out as
a person would say it in Polish; links left out."""

from __future__ import annotations

import pytest

from alerts.speech import cardinal_genitive, duration_seconds, ordinal, spoken


@pytest.mark.parametrize(("written", "said"), [
    ("od 14:00", "od czternastej"),
    ("do 22:30", "do dwudziestej drugiej trzydzieści"),
    ("o 7:05", "o siódmej zero pięć"),
    ("przed 16:00", "przed szesnastą"),
    ("od 0:00", "od północy"),
    ("od 21:00 do 1:00", "od dwudziestej pierwszej do pierwszej"),
    ("3.12.2026.", "trzeciego grudnia dwa tysiące dwudziestego szóstego roku."),
    ("do 15.01", "do piętnastego stycznia"),
    ("2. stopnia", "drugiego stopnia"),
    ("stopień 3", "stopień trzeci"),
    ("st. 1", "pierwszego stopnia"),
    ("-5°C", "minus pięć stopni Celsjusza"),
    ("1°C", "jeden stopień Celsjusza"),
    ("34,5°C", "trzydzieści cztery przecinek pięć stopnia Celsjusza"),
    ("22 mm", "dwadzieścia dwa milimetry"),
    ("12 mm", "dwanaście milimetrów"),
    ("20-30 mm", "od dwudziestu do trzydziestu milimetrów"),
    ("do 90 km/h", "do dziewięćdziesięciu kilometrów na godzinę"),
    ("do 1 m", "do jednego metra"),
    ("ok. 2 km", "około dwóch kilometrów"),
    ("IMGW-PIB ostrzega", "Instytut Meteorologii i Gospodarki Wodnej ostrzega"),
    ("Więcej: https://alerty.gminakozy.pl/a/12", ""),
    ("Szczegóły na www.gminakozy.pl/alerty i w urzędzie.", "Szczegóły na i w urzędzie."),
])
def test_what_an_sms_abbreviates_is_spoken(written: str, said: str) -> None:
    assert spoken(written) == said


def test_a_whole_warning_reads_as_polish_sentences() -> None:
    sms = ("Gmina Kozy: IMGW-PIB: burze z gradem 2. stopnia od 14:00 do 22:00 3.12.2026. "
           "Opady 20-30 mm, wiatr do 90 km/h. Więcej: https://alerty.gminakozy.pl/a/12")
    assert spoken(sms) == (
        "Gmina Kozy: Instytut Meteorologii i Gospodarki Wodnej: burze z gradem drugiego stopnia od "
        "czternastej do dwudziestej drugiej trzeciego grudnia dwa tysiące dwudziestego szóstego roku. "
        "Opady od dwudziestu do trzydziestu milimetrów, wiatr do dziewięćdziesięciu kilometrów na godzinę.")


def test_what_it_does_not_know_stays_as_written() -> None:
    assert spoken("Zebranie w remizie OSP, sala nr 2.") == "Zebranie w remizie OSP, sala numer 2."
    assert spoken("Kod 123456, 25:99, 32.13") == "Kod 123456, 25:99, 32.13"  # no such time or date


def test_the_number_tables() -> None:
    assert [ordinal(n, "f_gen") for n in (1, 2, 3, 12, 20, 23)] == [
        "pierwszej", "drugiej", "trzeciej", "dwunastej", "dwudziestej", "dwudziestej trzeciej"]
    assert [ordinal(n, "m_gen") for n in (1, 2, 31)] == ["pierwszego", "drugiego", "trzydziestego pierwszego"]
    assert [ordinal(n, "f_ins") for n in (2, 3, 16)] == ["drugą", "trzecią", "szesnastą"]
    assert [ordinal(n, "m_nom") for n in (1, 2, 3, 4)] == ["pierwszy", "drugi", "trzeci", "czwarty"]
    assert [ordinal(n, "f_nom") for n in (2, 3)] == ["druga", "trzecia"]
    assert [cardinal_genitive(n) for n in (0, 1, 25, 100, 145, 500)] == [
        "zera", "jednego", "dwudziestu pięciu", "stu", "stu czterdziestu pięciu", "pięciuset"]


def test_duration_is_estimated_from_the_words() -> None:
    assert duration_seconds("słowo " * 130) == 60
    assert duration_seconds("") == 1
