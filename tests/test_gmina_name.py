"""The gmina's name in its grammatical forms: "od Gminy Kozy", not "od Gmina Kozy"."""

from __future__ import annotations

from dataclasses import replace

import pytest

from profiles import load_municipality
from subscribers.consent import consent_text, push_consent_text
from tests.test_fail_closed import profile


@pytest.mark.parametrize(("name", "genitive"), [
    ("Gmina Kozy", "Gminy Kozy"),
    ("Miasto i Gmina Wilamowice", "Miasta i Gminy Wilamowice"),
    ("Gmina Miejska Ustroń", "Gminy Miejskiej Ustroń"),
    ("Miasto Bielsko-Biała", "Miasta Bielsko-Biała"),
    ("Urząd Gminy Czernichów", "Urząd Gminy Czernichów"),  # no known form: as written
])
def test_the_usual_forms_are_derived_from_the_name(name, genitive):
    kozy = load_municipality("kozy")
    assert replace(kozy, name=name, name_genitive="").genitive == genitive


def test_a_profile_may_give_the_form_itself(tmp_path):
    path = profile(tmp_path, 'name = "Gmina Kozy"', 'name = "Gmina Kozy"\nname_genitive = "Gminy Kozy (powiat bielski)"')
    assert load_municipality(str(path)).genitive == "Gminy Kozy (powiat bielski)"


def test_the_consent_and_the_farewell_say_od_gminy(client, app):
    m = app.extensions["municipality"]
    assert "od Gminy Kozy w wybranych kategoriach" in consent_text("pl", m)
    assert "od Gminy Kozy" in push_consent_text("pl", m) and "od Gmina" not in push_consent_text("pl", m)
    assert "from Gmina Kozy" in consent_text("en", m)  # English keeps the official Polish name
    page = client.get("/").get_data(as_text=True)
    assert 'od <span lang="pl">Gminy Kozy</span>' in page or "od Gminy Kozy" in page
