"""The admin's inline SVG charts: whole labels, and a short send drawn as a column."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from admin.charts import bar_chart, column_chart

SVG = "{http://www.w3.org/2000/svg}"


def test_a_bar_label_is_written_whole_and_the_svg_is_well_formed():
    label = "Awarie i utrudnienia (woda, prąd, drogi)"
    svg = str(bar_chart([(label, 120), ("Pogoda", 30), ("Puste", 0)], title="Mieszkańcy według kategorii"))
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert label in texts and "120" in texts and "0" in texts
    widths = [float(r.get("width")) for r in root.iter(f"{SVG}rect")]
    assert widths[0] > widths[1] > widths[2] == 0


def test_a_send_within_one_minute_is_one_column_not_a_triangle():
    svg = str(column_chart([("21:06", 1200)], title="Wysłane na minutę"))
    root = ET.fromstring(svg)
    bars = [r for r in root.iter(f"{SVG}rect") if float(r.get("height")) > 0]
    assert len(bars) == 1 and root.find(f"{SVG}polyline") is None
    assert re.search(r">21:06<", svg) and svg.count(">21:06<") == 1  # one time label, not two
    longer = ET.fromstring(str(column_chart([("21:06", 400), ("21:07", 0), ("21:08", 800)], title="x")))
    heights = [float(r.get("height")) for r in longer.iter(f"{SVG}rect")]
    assert heights[0] > 0 and heights[1] == 0 and heights[2] == 2 * heights[0]


def test_no_points_is_a_dash_not_an_empty_chart():
    assert "—" in str(column_chart([], title="Wysłane na minutę"))
