"""Reading the human-editable content files (TOML) into a validated ``ContentGraph``.

Layout (see content/README.md):
    <dir>/skills.toml            [[skill]] tables
    <dir>/exercises/*.toml       [[exercise]] tables

Every item is validated with marshmallow; every problem is reported with the file
and the item it is in, and all problems are reported at once.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.domain.bkt import BktParams, parameter_problems
from app.domain.content import ANSWER_KINDS, ContentGraph, Exercise, Skill, build_graph
from app.domain.errors import ContentError
from app.domain.grading import normalize_text, parse_fraction, parse_quantity

_ID = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$", error="must be 1-100 letters, digits, '-', '_' or '.'"
)
_PROBABILITY = validate.Range(0.0, 1.0, error="must be a probability in [0, 1]")
_TEXT = validate.Length(min=1, max=5000)


def _check_step(step: str) -> None:
    """A worked-solution step: short enough to read on a phone, no stray spaces."""
    if not step.strip():
        raise ValidationError("must not be empty")
    if step != step.strip():
        raise ValidationError("must not start or end with spaces")
    if len(step) > 240:
        raise ValidationError(f"must be at most 240 characters (this one has {len(step)})")


class BktSchema(Schema):
    prior = fields.Float(required=True, validate=_PROBABILITY)
    learn = fields.Float(required=True, validate=_PROBABILITY)
    guess = fields.Float(required=True, validate=_PROBABILITY)
    slip = fields.Float(required=True, validate=_PROBABILITY)
    forget = fields.Float(load_default=0.0, validate=_PROBABILITY)

    @validates_schema
    def non_degenerate(self, data: dict[str, Any], **kwargs: Any) -> None:
        if problems := parameter_problems(data):
            raise ValidationError(problems)


class SkillSchema(Schema):
    id = fields.String(required=True, validate=_ID)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    prerequisites = fields.List(fields.String(validate=_ID), load_default=list)
    bkt = fields.Nested(BktSchema, load_default=None)
    unit = fields.String(load_default="", validate=validate.Length(max=100))


class ExerciseSchema(Schema):
    id = fields.String(required=True, validate=_ID)
    skills = fields.List(fields.String(validate=_ID), required=True, validate=validate.Length(min=1))
    prompt = fields.String(required=True, validate=_TEXT)
    answer_kind = fields.String(required=True, validate=validate.OneOf(ANSWER_KINDS))
    choices = fields.List(fields.String(validate=_TEXT), load_default=list)
    answers = fields.List(fields.String(validate=_TEXT), required=True, validate=validate.Length(min=1))
    difficulty = fields.Float(required=True, validate=validate.Range(0.0, 1.0, error="must be in [0, 1]"))
    hints = fields.List(fields.String(validate=_TEXT), load_default=list)
    # Required: every exercise ships a worked solution that the student sees after answering.
    solution = fields.List(
        fields.String(validate=_check_step),
        required=True,
        validate=validate.Length(min=1, max=6, error="must have 1 to 6 steps"),
    )

    # Grading options of some kinds (content/README.md); None when absent, so a stray one is named.
    tolerance = fields.Float(
        load_default=None, validate=validate.Range(min=0.0, error="must be 0 or more"), allow_nan=False
    )
    tolerance_kind = fields.String(load_default=None, validate=validate.OneOf(("absolute", "relative")))
    units = fields.List(fields.String(validate=validate.Length(min=1, max=40)), load_default=None)
    variables = fields.List(fields.String(), load_default=None)
    simplest_form_required = fields.Boolean(load_default=None)

    @validates_schema
    def answers_fit_kind(self, data: dict[str, Any], **kwargs: Any) -> None:
        if problems := answer_problems(data):
            raise ValidationError(problems)


_OPTION_KINDS = {
    "tolerance": ("numeric",),
    "tolerance_kind": ("numeric",),
    "units": ("numeric",),
    "variables": ("expression",),
    "simplest_form_required": ("fraction",),
    "choices": ("multiple_choice", "multiple_select"),
}


def answer_problems(data: dict[str, Any]) -> dict[str, list[str]]:
    """Each field's problems with the answers and grading options of an exercise's kind."""
    problems: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        problems.setdefault(name, []).append(message)

    kind, answers, choices = data.get("answer_kind"), data.get("answers", []), data.get("choices", [])
    if kind is None:
        return problems
    for name, kinds in _OPTION_KINDS.items():
        if data.get(name) not in (None, []) and kind not in kinds:
            add(name, f"only allowed for {' or '.join(kinds)}, not {kind}")
    if kind in ("multiple_choice", "multiple_select"):
        if len(choices) < 2:
            add("choices", f"{kind} needs at least 2 choices")
        if len(set(choices)) != len(choices):
            add("choices", "choices must be distinct")
        if missing := [a for a in answers if a not in choices]:
            add("answers", f"answers not among the choices: {missing}")
    if kind in ("multiple_select", "ordered") and len(set(map(normalize_text, answers))) != len(answers):
        add("answers", "answers must be distinct")
    if kind == "ordered" and len(answers) < 2:
        add("answers", "ordered needs at least 2 items to put in order")
    if kind == "numeric":
        units = data.get("units") or []
        if len({normalize_text(u) for u in units}) != len(units):
            add("units", "units must be distinct")
        if bad := [u for u in units if any(c.isdigit() for c in u)]:
            add("units", f"a unit must not contain digits: {bad}")
        if bad := [a for a in answers if parse_quantity(a, units)[0] is None]:
            with_units = f" with one of the units {units}" if units else ""
            add("answers", f"not a number{with_units}: {bad}")
    if kind == "fraction":
        for answer in answers:
            parsed = parse_fraction(answer)
            if parsed is None:
                add("answers", f"not a fraction, mixed number or whole number: {answer!r}")
            elif data.get("simplest_form_required") and not parsed[1]:
                add("answers", f"not in simplest form, which this exercise requires: {answer!r}")
    if kind == "expression":
        # SymPy takes over a second to import: only content with expressions pays for it.
        from app.domain.expressions import ExpressionError, parse_expression, variable_problem

        variables = data.get("variables")
        if variables is None:
            add("variables", 'expression needs its variables (e.g. variables = ["x"]; [] for none)')
            variables = []
        for name in variables:
            if problem := variable_problem(name):
                add("variables", problem)
        if len(set(variables)) != len(variables):
            add("variables", "variables must be distinct")
        if "variables" not in problems:
            for answer in answers:
                try:
                    parse_expression(answer, variables)
                except ExpressionError as error:
                    add("answers", f"{answer!r}: {error}")
    return problems


def _flatten(messages: Any, path: str = "") -> list[str]:
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            name = path if key == "_schema" else (f"{path}.{key}" if path else str(key))
            out.extend(_flatten(value, name))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{path}: {m}" if path else m for m in messages]
    if isinstance(messages, list):
        return [line for m in messages for line in _flatten(m, path)]
    return [f"{path}: {messages}" if path else str(messages)]


def _read_tables(path: Path, table: str, label: str, problems: list[str]) -> list[tuple[str, Any]] | None:
    """(where, item) for each [[table]] in the file; None when the file cannot be parsed."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        problems.append(f"{label}: cannot read: {error}")
        return None
    except tomllib.TOMLDecodeError as error:
        problems.append(f"{label}: invalid TOML: {error}")
        return None
    unexpected = sorted(set(document) - {table})
    if unexpected:
        problems.append(f"{label}: unexpected top-level keys {unexpected} (expected [[{table}]] tables)")
    items = document.get(table, [])
    if not isinstance(items, list):
        problems.append(f"{label}: {table} must be an array of tables ([[{table}]])")
        return []
    out = []
    for index, item in enumerate(items, start=1):
        name = item.get("id") if isinstance(item, dict) else None
        where = f"{label}: {table} {name!r}" if isinstance(name, str) else f"{label}: {table} #{index}"
        out.append((where, item))
    return out


def _load_items(
    schema: Schema, items: list[tuple[str, Any]], problems: list[str]
) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, dict[str, Any]]]]:
    """(valid items, invalid items that still have a usable id)."""
    loaded, invalid = [], []
    for where, item in items:
        try:
            loaded.append((where, schema.load(item)))
        except ValidationError as error:
            problems.extend(f"{where}: {line}" for line in _flatten(error.messages))
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                invalid.append((where, item))
    return loaded, invalid


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def read_content(directory: str | Path) -> ContentGraph:
    """Read and validate a content directory; raise ``ContentError`` listing every problem."""
    root = Path(directory)
    problems: list[str] = []
    skills_file = root / "skills.toml"
    exercise_files = sorted((root / "exercises").glob("*.toml"))
    if not root.is_dir():
        raise ContentError([f"{root}: not a directory"])
    if not skills_file.is_file():
        problems.append(f"{skills_file}: missing (skills are defined there)")
    if not exercise_files:
        problems.append(f"{root / 'exercises'}: no *.toml exercise files")

    def label(path: Path) -> str:
        # "content/exercises/fractions.toml": short, and names the directory given.
        return str(path.relative_to(root.parent))

    skill_table = (
        _read_tables(skills_file, "skill", label(skills_file), problems) if skills_file.is_file() else []
    )
    exercise_tables = [_read_tables(path, "exercise", label(path), problems) for path in exercise_files]
    unreadable = skill_table is None or any(t is None for t in exercise_tables)
    raw_skills = skill_table or []
    raw_exercises = [entry for table in exercise_tables for entry in table or []]
    # An empty curriculum is a mistake (a truncated file), never content to load over the real one.
    if skill_table == []:
        problems.append(f"{label(skills_file)}: defines no skills ([[skill]] tables)")
    if exercise_files and not unreadable and not raw_exercises:
        problems.append(f"{root / 'exercises'}: the files define no exercises ([[exercise]] tables)")
    valid_skills, invalid_skills = _load_items(SkillSchema(), raw_skills, problems)
    valid_exercises, invalid_exercises = _load_items(ExerciseSchema(), raw_exercises, problems)
    skills = [
        Skill(
            id=data["id"],
            name=data["name"],
            description=data["description"],
            prerequisites=tuple(data["prerequisites"]),
            bkt=BktParams(**data["bkt"]) if data["bkt"] else None,
            unit=data["unit"].strip(),
            origin=where.split(": ")[0],
        )
        for where, data in valid_skills
    ]
    exercises = [
        Exercise(
            id=data["id"],
            skill_ids=tuple(data["skills"]),
            prompt=data["prompt"],
            answer_kind=data["answer_kind"],
            answers=tuple(data["answers"]),
            difficulty=data["difficulty"],
            choices=tuple(data["choices"]),
            hints=tuple(data["hints"]),
            solution=tuple(data["solution"]),
            tolerance=data["tolerance"] or 0.0,
            tolerance_kind=data["tolerance_kind"] or "absolute",
            units=tuple(data["units"] or ()),
            variables=tuple(data["variables"] or ()),
            simplest_form_required=bool(data["simplest_form_required"]),
            origin=where.split(": ")[0],
        )
        for where, data in valid_exercises
    ]
    # Invalid items still take part in the graph checks under their id, so one
    # bad field does not also report every reference to that item as unknown.
    skills += [
        Skill(
            id=raw["id"],
            name=raw["id"],
            prerequisites=_strings(raw.get("prerequisites")),
            origin=where.split(": ")[0],
        )
        for where, raw in invalid_skills
    ]
    exercises += [
        Exercise(
            id=raw["id"],
            skill_ids=_strings(raw.get("skills")),
            prompt="",
            answer_kind="numeric",
            answers=(),
            difficulty=0.0,
            origin=where.split(": ")[0],
        )
        for where, raw in invalid_exercises
    ]
    if unreadable:
        # Cross-file checks would only echo the unreadable file's absence.
        raise ContentError(problems)
    try:
        graph = build_graph(skills, exercises)
    except ContentError as error:
        problems.extend(error.problems)
    if problems:
        raise ContentError(problems)
    return graph
