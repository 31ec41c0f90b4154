"""The content validator against broken content: every problem names its file and item."""

from pathlib import Path

import pytest

from app.domain.errors import ContentError
from app.services.tutoring.content_files import read_content

SKILLS = """
[[skill]]
id = "count"
name = "Counting"
prerequisites = []
bkt = { prior = 0.2, learn = 0.2, guess = 0.2, slip = 0.1 }

[[skill]]
id = "add"
name = "Adding"
prerequisites = ["count"]

[[skill]]
id = "multiply"
name = "Multiplying"
prerequisites = ["add"]
"""

EXERCISES = """
[[exercise]]
id = "count-1"
skills = ["count"]
prompt = "How many fingers on one hand?"
answer_kind = "numeric"
answers = ["5"]
difficulty = 0.1
hints = ["Count them."]
solution = ["Count the fingers one by one: 1, 2, 3, 4, 5.", "One hand has 5 fingers."]

[[exercise]]
id = "add-1"
skills = ["add"]
prompt = "Which is 2 + 2?"
answer_kind = "multiple_choice"
choices = ["3", "4", "5"]
answers = ["4"]
difficulty = 0.2
solution = ["2 + 2 = 4."]

[[exercise]]
id = "multiply-1"
skills = ["multiply", "add"]
prompt = "Write 3 x 4 in words."
answer_kind = "short_text"
answers = ["twelve"]
difficulty = 0.4
solution = ["3 × 4 = 12.", "In words, 12 is twelve."]
"""


def write_content(root: Path, skills: str = SKILLS, exercises: str = EXERCISES) -> Path:
    (root / "exercises").mkdir(parents=True, exist_ok=True)
    (root / "skills.toml").write_text(skills, encoding="utf-8")
    (root / "exercises" / "basics.toml").write_text(exercises, encoding="utf-8")
    return root


def problems(root: Path) -> list[str]:
    with pytest.raises(ContentError) as caught:
        read_content(root)
    return caught.value.problems


def test_valid_content_loads_in_prerequisite_order(tmp_path: Path) -> None:
    graph = read_content(write_content(tmp_path / "content"))
    assert graph.skill_order == ("count", "add", "multiply")
    assert graph.skills["count"].bkt is not None and graph.skills["add"].bkt is None
    assert graph.exercises_by_skill["add"] == ("add-1", "multiply-1")
    assert graph.exercises["add-1"].choices == ("3", "4", "5")
    assert graph.exercises["multiply-1"].solution == ("3 × 4 = 12.", "In words, 12 is twelve.")


def test_unknown_skill_reference(tmp_path: Path) -> None:
    root = write_content(tmp_path / "c", exercises=EXERCISES.replace('["count"]', '["cuont"]'))
    found = problems(root)
    assert "c/exercises/basics.toml: exercise 'count-1': unknown skill 'cuont'" in found
    assert "c/skills.toml: skill 'count': has no exercises" in found


def test_unknown_prerequisite(tmp_path: Path) -> None:
    root = write_content(tmp_path / "c", skills=SKILLS.replace('["add"]', '["addition"]'))
    assert problems(root) == ["c/skills.toml: skill 'multiply': unknown prerequisite 'addition'"]


def test_duplicate_ids(tmp_path: Path) -> None:
    root = write_content(tmp_path / "c")
    (root / "exercises" / "more.toml").write_text(
        EXERCISES.split("[[exercise]]")[1].join(["[[exercise]]", ""]), encoding="utf-8"
    )
    found = problems(root)
    assert found == [
        "c/exercises/more.toml: exercise 'count-1': duplicate id (first defined in c/exercises/basics.toml)"
    ]


def test_prerequisite_cycle_is_printed(tmp_path: Path) -> None:
    cyclic = SKILLS.replace(
        'id = "count"\nname = "Counting"\nprerequisites = []',
        'id = "count"\nname = "Counting"\nprerequisites = ["multiply"]',
    )
    found = problems(write_content(tmp_path / "c", skills=cyclic))
    assert len(found) == 1
    assert "prerequisite cycle:" in found[0]
    cycle = found[0].split("prerequisite cycle: ")[1].split(" -> ")
    assert cycle[0] == cycle[-1] and set(cycle) == {"count", "add", "multiply"}


def test_bad_difficulty_and_degenerate_parameters(tmp_path: Path) -> None:
    root = write_content(
        tmp_path / "c",
        skills=SKILLS.replace("guess = 0.2, slip = 0.1", "guess = 0.6, slip = 0.1"),
        exercises=EXERCISES.replace("difficulty = 0.1", "difficulty = 1.5"),
    )
    found = problems(root)
    assert any(p.startswith("c/skills.toml: skill 'count': bkt: guess must be below 0.5") for p in found)
    assert "c/exercises/basics.toml: exercise 'count-1': difficulty: must be in [0, 1]" in found


def test_probability_out_of_range(tmp_path: Path) -> None:
    root = write_content(tmp_path / "c", skills=SKILLS.replace("prior = 0.2", "prior = 2"))
    assert problems(root) == ["c/skills.toml: skill 'count': bkt.prior: must be a probability in [0, 1]"]


def test_answers_must_fit_the_kind(tmp_path: Path) -> None:
    broken = EXERCISES.replace('answers = ["4"]', 'answers = ["four"]').replace(
        'answers = ["5"]', 'answers = ["five"]'
    )
    found = problems(write_content(tmp_path / "c", exercises=broken))
    where = "c/exercises/basics.toml: exercise"
    assert f"{where} 'add-1': answers: answers not among the choices: ['four']" in found
    assert f"{where} 'count-1': answers: not a number: ['five']" in found


def test_missing_fields_unknown_keys_and_wrong_types(tmp_path: Path) -> None:
    broken = (
        EXERCISES.replace('prompt = "How many fingers on one hand?"\n', "")
        .replace("difficulty = 0.2", "difficulty = 0.2\ndificulty = 0.3")
        .replace('answer_kind = "short_text"', 'answer_kind = "essay"')
    )
    found = problems(write_content(tmp_path / "c", exercises=broken))
    assert "c/exercises/basics.toml: exercise 'count-1': prompt: Missing data for required field." in found
    assert "c/exercises/basics.toml: exercise 'add-1': dificulty: Unknown field." in found
    assert any(p.startswith("c/exercises/basics.toml: exercise 'multiply-1': answer_kind:") for p in found)


def test_every_exercise_needs_a_worked_solution(tmp_path: Path) -> None:
    without = EXERCISES.replace('solution = ["2 + 2 = 4."]\n', "")
    assert problems(write_content(tmp_path / "c", exercises=without)) == [
        "c/exercises/basics.toml: exercise 'add-1': solution: Missing data for required field."
    ]


@pytest.mark.parametrize(
    ("solution", "problem"),
    [
        ("[]", "solution: must have 1 to 6 steps"),
        (str([f"Step {n}." for n in range(7)]), "solution: must have 1 to 6 steps"),
        ('["2 + 2 = 4.", ""]', "solution.1: must not be empty"),
        ('["   "]', "solution.0: must not be empty"),
        ('[" 2 + 2 = 4."]', "solution.0: must not start or end with spaces"),
        ('["2 + 2 = 4. "]', "solution.0: must not start or end with spaces"),
        (f'["{"x" * 241}"]', "solution.0: must be at most 240 characters (this one has 241)"),
        ('["2 + 2 = 4.", 4]', "solution.1: Not a valid string."),
        ('"2 + 2 = 4."', "solution: Not a valid list."),
    ],
)
def test_worked_solution_steps_are_checked(tmp_path: Path, solution: str, problem: str) -> None:
    broken = EXERCISES.replace('solution = ["2 + 2 = 4."]', f"solution = {solution}")
    assert problems(write_content(tmp_path / "c", exercises=broken)) == [
        f"c/exercises/basics.toml: exercise 'add-1': {problem}"
    ]


def test_worked_solution_limits_are_inclusive(tmp_path: Path) -> None:
    longest = ["x" * 240] + [f"Step {n}." for n in range(5)]
    graph = read_content(
        write_content(
            tmp_path / "c", exercises=EXERCISES.replace('solution = ["2 + 2 = 4."]', f"solution = {longest}")
        )
    )
    assert graph.exercises["add-1"].solution == tuple(longest)


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    root = write_content(tmp_path / "c", exercises=EXERCISES + "\n[[exercise]\nid = 'x'\n")
    found = problems(root)
    assert len(found) == 1 and found[0].startswith("c/exercises/basics.toml: invalid TOML:")
    assert "line" in found[0]


def test_items_that_are_not_tables(tmp_path: Path) -> None:
    root = write_content(tmp_path / "c", skills='skill = "count"\n')
    assert any("skill must be an array of tables" in p for p in problems(root))


def test_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    found = problems(tmp_path / "empty")
    assert any("skills.toml: missing" in p for p in found)
    assert any("no *.toml exercise files" in p for p in found)
    assert problems(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: not a directory"]


def test_empty_files_are_not_an_empty_curriculum(tmp_path: Path) -> None:
    """A truncated file must never load as content (it would retire every skill)."""
    assert problems(write_content(tmp_path / "c", skills="# nothing yet\n", exercises="")) == [
        "c/skills.toml: defines no skills ([[skill]] tables)",
        f"{tmp_path / 'c' / 'exercises'}: the files define no exercises ([[exercise]] tables)",
    ]


def test_shipped_content_is_valid_and_large_enough() -> None:
    graph = read_content(Path(__file__).resolve().parents[2] / "content")
    assert len(graph.skills) >= 25
    assert len(graph.exercises) >= 250
    assert all(graph.exercises_by_skill[s] for s in graph.skills)
    kinds = {e.answer_kind for e in graph.exercises.values()}
    assert kinds == {"numeric", "multiple_choice", "short_text"}
    # A real prerequisite graph, not a flat list.
    assert sum(bool(s.prerequisites) for s in graph.skills.values()) >= len(graph.skills) - 3
