"""The optional `unit` of a skill in the content files: read, trimmed, checked."""

from pathlib import Path

import pytest

from app.domain.errors import ContentError
from app.services.tutoring.content_files import read_content
from tests.unit.test_content_files import EXERCISES, SKILLS, write_content


def test_a_unit_is_optional_and_read_as_written(tmp_path: Path) -> None:
    skills = SKILLS.replace('name = "Counting"', 'name = "Counting"\nunit = "  Number sense "')
    graph = read_content(write_content(tmp_path, skills, EXERCISES))
    assert graph.skills["count"].unit == "Number sense"
    assert graph.skills["add"].unit == ""  # none given


@pytest.mark.parametrize(
    ("unit", "problem"),
    [
        ('"' + "u" * 101 + '"', "unit: Longer than maximum length 100."),
        ("7", "unit: Not a valid string."),
    ],
)
def test_a_bad_unit_is_refused_naming_the_skill(tmp_path: Path, unit: str, problem: str) -> None:
    skills = SKILLS.replace('name = "Adding"', f'name = "Adding"\nunit = {unit}')
    with pytest.raises(ContentError) as raised:
        read_content(write_content(tmp_path, skills, EXERCISES))
    assert any(p.endswith(f"skill 'add': {problem}") for p in raised.value.problems), raised.value.problems
