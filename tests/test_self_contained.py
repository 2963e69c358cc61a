"""The project carries everything its tests and benchmarks need.

A gmina's clone has no research folder beside it, so no test or benchmark may read a path
outside the repository. (.ci/run also runs the whole suite in a lone clone.)
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Reaching out of the project: the team's shared folder, an absolute /work path, or a
# Path walking more levels up than a file's depth inside the project.
OUTSIDE = re.compile(r"""(\.\./shared|["']/work/|/shared/feeds|\bshared["']\s*/)""")


def _sources() -> list[Path]:
    return [p for folder in ("tests", "bench") for p in (ROOT / folder).rglob("*.py")]


def test_no_test_or_benchmark_reads_a_path_outside_the_repository():
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in _sources() if p.name != "test_self_contained.py"
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if OUTSIDE.search(line)]
    assert offenders == []


def test_no_path_climbs_out_of_the_project():
    parents = re.compile(r"parents\[(\d+)\]")
    offenders = []
    for path in _sources():
        top = len(path.relative_to(ROOT).parts) - 1  # parents[top] is the project folder
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in parents.finditer(line):
                if int(match.group(1)) > top:
                    offenders.append(f"{path.relative_to(ROOT)}:{n}")
    assert offenders == []


def test_the_recorded_feed_payloads_are_in_the_repository_with_their_provenance():
    fixtures = ROOT / "tests" / "fixtures" / "feeds"
    readme = (fixtures / "README.md").read_text(encoding="utf-8")
    payloads = sorted(p.name for p in fixtures.iterdir() if p.suffix in (".json", ".xml"))
    assert len(payloads) >= 12
    for name in payloads:
        assert f"`{name}`" in readme, f"{name} has no provenance line in tests/fixtures/feeds/README.md"
