"""The newer answer kinds: expression, numeric with tolerance and units, fraction, multiple_select, ordered.

Properties (Hypothesis) for what must hold of every answer, examples for the wording a student sees, and
adversarial input (huge exponents, deep nesting, code, very long text) graded within a time bound.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

from app.domain.content import Exercise
from app.domain.errors import ContentError
from app.domain.expressions import ExpressionError, equivalent, parse_expression
from app.domain.grading import (
    InvalidAnswer,
    answer_of,
    correct_answer_text,
    grade,
    grade_answer,
    readable_answer,
    stored_answer,
)
from app.services.tutoring.content_files import read_content

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "answer_kinds"


def exercise(kind: str, answers: tuple[str, ...], **options: Any) -> Exercise:
    return Exercise("e-1", ("s",), "?", kind, answers, 0.5, **options)  # type: ignore[arg-type]


def expression_exercise(answer: str, variables: tuple[str, ...] = ("x",)) -> Exercise:
    return exercise("expression", (answer,), variables=variables)


# --- expressions ------------------------------------------------------------------------------------

small = st.integers(min_value=-9, max_value=9)
linear = st.tuples(st.integers(min_value=1, max_value=5), small)  # a x + b, a != 0


def factored(factors: list[tuple[int, int]]) -> str:
    return "".join(f"({a}x{b:+d})" for a, b in factors)


def as_typed(expr: sympy.Expr) -> str:
    """SymPy's own printing, in the notation a student types (^ for powers)."""
    return str(expr).replace("**", "^")


@given(st.lists(linear, min_size=1, max_size=3), st.integers(min_value=1, max_value=6))
def test_a_factored_form_and_its_expansion_are_equivalent(factors: list[tuple[int, int]], k: int) -> None:
    x = sympy.Symbol("x")
    text = f"{k}{factored(factors)}"
    expanded = sympy.expand(k * sympy.Mul(*[a * x + b for a, b in factors]))
    assert grade_answer(expression_exercise(text), as_typed(expanded))
    assert grade_answer(expression_exercise(as_typed(expanded)), text)


polynomial_terms = st.lists(st.tuples(small, st.integers(min_value=0, max_value=4)), min_size=1, max_size=5)


def polynomial(terms: list[tuple[int, int]], variable: str = "x") -> str:
    return " + ".join(f"({c})*{variable}^{p}" for c, p in terms)


@given(polynomial_terms, st.sampled_from(["", "sin(x)", "sqrt(x^2+1)", "exp(x)/3", "1/(x^2+1)"]))
def test_a_plus_one_is_never_equivalent_to_a(terms: list[tuple[int, int]], extra: str) -> None:
    a = polynomial(terms) + (f" + {extra}" if extra else "")
    ex = expression_exercise(a)
    assert grade_answer(ex, a)
    assert not grade_answer(ex, f"({a}) + 1")
    assert not grade_answer(ex, f"{a} - 1/1000")


@given(st.permutations(["x", "2y", "3x^2", "y^2", "7"]))
def test_the_order_of_terms_does_not_matter(terms: list[str]) -> None:
    ex = expression_exercise("x + 2y + 3x^2 + y^2 + 7", ("x", "y"))
    assert grade_answer(ex, " + ".join(terms))


@pytest.mark.parametrize(
    ("typed", "accepted", "right"),
    [
        ("2x+6", "2(x + 3)", True),
        ("x(x+1)", "x^2 + x", True),
        ("x**2 + x", "x^2 + x", True),
        ("(x-1)(x+1)", "x^2 - 1", True),
        ("0.5x", "x/2", True),
        ("sin(x)^2 + cos(x)^2", "1", True),
        ("sqrt(x)sqrt(x)", "x", True),
        ("2x−1", "2x - 1", True),  # a typographic minus
        ("x^2", "x^2 + 1", False),
        ("sqrt(x^2)", "x", False),  # |x|, not x
        ("0.1x", "x/10", True),  # decimals as typed, not binary floats
    ],
)
def test_expression_examples(typed: str, accepted: str, right: bool) -> None:
    assert grade_answer(expression_exercise(accepted), typed) is right


def test_several_variables_and_implicit_products() -> None:
    ex = expression_exercise("x^2 - y^2", ("x", "y"))
    assert grade_answer(ex, "(x - y)(x + y)") and grade_answer(ex, "xx - yy")
    assert not grade_answer(ex, "(x - y)^2")


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("2x +", "could not read this expression"),
        ("2 * a", "could not read this expression: unknown name 'a'"),
        ("x = 2", "could not read this expression: '=' is not allowed"),
        ("(x + 1", "could not read this expression: a '(' is not closed"),
        ("x)", "could not read this expression: a ')' has no '('"),
        ("x()", "could not read this expression: empty brackets"),
        ("1/(x-x)", "this expression divides by zero"),
        ("2 3", "could not read this expression: two numbers in a row"),
    ],
)
def test_an_unreadable_expression_is_wrong_with_a_reason(typed: str, reason: str) -> None:
    result = grade(expression_exercise("2x"), typed)
    assert result.correct is False and result.reason == reason


ADVERSARIAL = [
    "2^10^10",
    "9^9^9^9",
    "x^(10^100)",
    "(x+1)^99^99",
    "((x+1)^100)^100",
    "10^100 * 10^100 * 10^100 * 10^100 ^ 100",
    "(x+x+x+x+x+x+x+x+x+x)^100 * (x+x+x+x+x+x+x+x+x+x)^100",
    "(" * 50 + "x" + ")" * 50,
    "sin(" * 30 + "x" + ")" * 30,
    "__import__('os').system('true')",
    "x.__class__.__bases__",
    "lambda: 1",
    "exec('1')",
    "factorial(100000)",
    "100000!",
    "x" * 5000,
    "1" * 150,
    "9" * 15 + "^" + "9" * 15,
    "x^-1000",
    "sqrt(-1)",  # fine: a number (i), not an error
]


# Bounded work takes well under a second here; unbounded work (a huge power expanded, simplify on a tower of
# exponents) takes minutes. The margin is for CI's 2 shared, loaded cores, not for the code.
BOUNDED_SECONDS = 10.0


@pytest.mark.parametrize("typed", ADVERSARIAL)
def test_adversarial_input_is_graded_quickly_and_never_raises(typed: str) -> None:
    started = time.monotonic()
    result = grade(expression_exercise("x^2 + 1"), typed)
    assert time.monotonic() - started < BOUNDED_SECONDS
    assert result.correct is False
    if typed != "sqrt(-1)":
        assert result.reason is not None


@pytest.mark.parametrize(
    "typed",
    ["exp(exp(exp(exp(x))))", "2^(2^(2^(2^(2^x))))", "x^(x^(x^(x^x)))", "sin(10^100 x)", "exp(10^15)"],
)
def test_readable_but_explosive_expressions_are_compared_quickly(typed: str) -> None:
    """Symbolic exponents pass the size check; they are only ever evaluated at the sample points."""
    started = time.monotonic()
    assert not grade_answer(expression_exercise("x^2 + 1"), typed)
    assert grade_answer(expression_exercise(typed), typed)
    assert time.monotonic() - started < BOUNDED_SECONDS


def test_code_is_never_evaluated() -> None:
    for typed in ("__import__('os')", "open('/etc/passwd')", "eval('1')", "Symbol('x')", "Integer(2)"):
        with pytest.raises(ExpressionError):
            parse_expression(typed, ["x"])


def test_equivalence_at_random_points_is_deterministic() -> None:
    x = parse_expression("sin(x)^2", ["x"])
    y = parse_expression("1 - cos(x)^2", ["x"])
    assert all(equivalent(x, y) for _ in range(3))


# --- numeric: tolerance and units -------------------------------------------------------------------

decimals = st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False, allow_infinity=False)
tolerances = st.decimals(min_value="0.001", max_value=10, places=3)


@given(decimals, tolerances)
def test_absolute_tolerance_includes_its_boundary_and_nothing_beyond(accepted: Any, tol: Any) -> None:
    ex = exercise("numeric", (str(accepted),), tolerance=float(tol))
    step = Decimal("0.001")
    assert grade_answer(ex, str(accepted + tol)) and grade_answer(ex, str(accepted - tol))
    assert not grade_answer(ex, str(accepted + tol + step))
    assert not grade_answer(ex, str(accepted - tol - step))


@given(st.integers(min_value=1, max_value=10_000), st.sampled_from(["0.01", "0.05", "0.1"]))
def test_relative_tolerance_scales_with_the_answer(accepted: int, tol: str) -> None:
    ex = exercise("numeric", (str(accepted),), tolerance=float(tol), tolerance_kind="relative")
    bound = accepted * Fraction(tol)

    def typed(value: Fraction) -> str:
        return f"{value.numerator}/{value.denominator}"

    assert grade_answer(ex, typed(accepted + bound)) and grade_answer(ex, typed(accepted - bound))
    assert not grade_answer(ex, typed(accepted + bound + Fraction(1, 10_000)))
    assert not grade_answer(ex, typed(accepted - bound - Fraction(1, 10_000)))


def test_without_tolerance_numeric_stays_exact() -> None:
    ex = exercise("numeric", ("0.75",))
    assert grade_answer(ex, "3/4") and not grade_answer(ex, "0.7500001")


@pytest.mark.parametrize(
    ("typed", "right", "reason"),
    [
        ("14", True, None),
        ("14 cm", True, None),
        ("14cm", True, None),
        ("14 CM", True, None),
        ("14 centimetres", True, None),
        ("14 m", False, "'m' is not the right unit here"),
        ("14 inches", False, "'inches' is not the right unit here"),
        ("15 cm", False, None),
        ("fourteen", False, None),
    ],
)
def test_units(typed: str, right: bool, reason: str | None) -> None:
    ex = exercise("numeric", ("14 cm",), units=("cm", "centimetres"))
    assert grade(ex, typed).correct is right and grade(ex, typed).reason == reason


# --- fractions --------------------------------------------------------------------------------------

nonzero = st.integers(min_value=1, max_value=500)


@given(st.integers(min_value=-500, max_value=500), nonzero, st.integers(min_value=1, max_value=50))
def test_any_fraction_equals_its_scaled_form(n: int, d: int, k: int) -> None:
    ex = exercise("fraction", (f"{n}/{d}",))
    assert grade_answer(ex, f"{n * k}/{d * k}")
    assert not grade_answer(ex, f"{n * k + 1}/{d * k}")


@given(st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=30), nonzero)
def test_an_improper_fraction_equals_its_mixed_number(whole: int, n: int, d: int) -> None:
    n = (n % d or 1) if d > 1 else 0  # a proper fraction part (none when d is 1)
    value = whole + Fraction(n, d)
    mixed = f"{whole} {n}/{d}" if n else str(whole)
    for sign, signed in (("", value), ("-", -value)):
        ex = exercise("fraction", (f"{signed.numerator}/{signed.denominator}",))
        assert grade_answer(ex, sign + mixed)


@pytest.mark.parametrize(
    ("typed", "right", "reason"),
    [
        ("3/4", True, None),
        ("6/8", False, "the value is right, but write it in simplest form"),
        ("0.75", False, "write it as a fraction (like 3/4) or a mixed number (like 1 1/2)"),
        ("-3/4", False, None),
        ("3/-4", False, None),
    ],
)
def test_simplest_form_required(typed: str, right: bool, reason: str | None) -> None:
    ex = exercise("fraction", ("3/4",), simplest_form_required=True)
    assert grade(ex, typed).correct is right and grade(ex, typed).reason == reason


def test_simplest_form_of_mixed_and_whole_numbers() -> None:
    ex = exercise("fraction", ("3/2",), simplest_form_required=True)
    assert grade_answer(ex, "1 1/2") and grade_answer(ex, "3/2")
    assert not grade_answer(ex, "1 2/4") and not grade_answer(ex, "6/4")
    whole = exercise("fraction", ("2",), simplest_form_required=True)
    assert grade_answer(whole, "2") and not grade_answer(whole, "4/2") and not grade_answer(whole, "2/1")
    assert grade_answer(exercise("fraction", ("-2 3/5",)), "-13/5")


# --- multiple_select and ordered --------------------------------------------------------------------

CHOICES = ("2/4", "2/3", "3/6", "5/10", "4/6")
RIGHT = ("2/4", "3/6", "5/10")


@given(st.permutations(RIGHT))
def test_every_order_of_a_selection_is_graded_the_same(chosen: list[str]) -> None:
    ex = exercise("multiple_select", RIGHT, choices=CHOICES)
    assert grade_answer(ex, chosen)


@given(st.sets(st.sampled_from(CHOICES), min_size=1))
def test_a_selection_is_right_only_with_all_and_only_the_right_choices(chosen: set[str]) -> None:
    ex = exercise("multiple_select", RIGHT, choices=CHOICES)
    graded = {grade_answer(ex, list(order)) for order in itertools.permutations(sorted(chosen))}
    assert graded == {chosen == set(RIGHT)}


def test_a_selection_outside_the_choices_is_refused() -> None:
    ex = exercise("multiple_select", RIGHT, choices=CHOICES)
    with pytest.raises(InvalidAnswer, match="among the choices"):
        grade(ex, ["2/4", "7/8"])
    with pytest.raises(InvalidAnswer, match="empty"):
        grade(ex, [])
    assert grade_answer(exercise("multiple_select", ("2/4",), choices=CHOICES), "2/4")


ITEMS = ("1/8", "1/3", "1/2", "3/4")


@given(st.permutations(ITEMS))
def test_an_ordered_answer_is_right_only_in_order(order: list[str]) -> None:
    ex = exercise("ordered", ITEMS)
    assert grade_answer(ex, order) is (tuple(order) == ITEMS)


@given(st.text(min_size=1, max_size=20).filter(lambda s: s.strip()), st.integers(min_value=2, max_value=8))
def test_ordered_items_are_shown_shuffled_but_complete(seed: str, n: int) -> None:
    items = tuple(f"item {i}" for i in range(n))
    ex = Exercise(seed, ("s",), "?", "ordered", items, 0.5)
    assert ex.items != items and sorted(ex.items) == sorted(items)
    assert ex.items == Exercise(seed, ("s",), "?", "ordered", items, 0.5).items  # the same every time


def test_an_ordered_answer_must_list_each_item_once() -> None:
    ex = exercise("ordered", ITEMS)
    for bad in (["1/8", "1/3", "1/2"], ["1/8", "1/8", "1/2", "3/4"], "1/8"):
        with pytest.raises(InvalidAnswer):
            grade(ex, bad)


def test_a_list_is_refused_for_a_single_answer_kind() -> None:
    with pytest.raises(InvalidAnswer, match="not a list"):
        grade(exercise("numeric", ("1",)), ["1"])


def test_stored_and_readable_answers() -> None:
    ordered = exercise("ordered", ITEMS)
    assert answer_of(ordered, stored_answer(list(ITEMS))) == list(ITEMS)
    assert readable_answer(ordered, list(ITEMS)) == "1. 1/8; 2. 1/3; 3. 1/2; 4. 3/4"
    assert correct_answer_text(exercise("multiple_select", RIGHT, choices=CHOICES)) == "2/4, 3/6, 5/10"
    assert answer_of(exercise("numeric", ("1",)), '["1"]') == '["1"]'  # only list kinds decode


# --- the content format -----------------------------------------------------------------------------


def test_the_fixture_has_one_exercise_of_each_new_kind() -> None:
    graph = read_content(FIXTURE)
    kinds = {e.answer_kind for e in graph.exercises.values()}
    assert kinds == {"expression", "numeric", "fraction", "multiple_select", "ordered"}
    ex = graph.exercises
    assert ex["kinds-expression"].variables == ("x",) and grade_answer(ex["kinds-expression"], "2(x+3)")
    assert ex["kinds-length"].units == ("cm", "centimetres", "centimeters")
    assert grade_answer(ex["kinds-length"], "14 centimeters")
    assert ex["kinds-estimate"].tolerance == 0.005 and grade_answer(ex["kinds-estimate"], "1.414")
    assert ex["kinds-fraction"].simplest_form_required and not grade_answer(ex["kinds-fraction"], "6/8")
    assert grade_answer(ex["kinds-select"], ["5/10", "2/4", "3/6"])
    assert grade_answer(ex["kinds-ordered"], ["1/8", "1/3", "1/2", "3/4"])


BASE = """
[[skill]]
id = "s"
name = "S"
"""


def problems_of(tmp_path: Path, exercise_toml: str) -> list[str]:
    root = tmp_path / "c"
    (root / "exercises").mkdir(parents=True)
    (root / "skills.toml").write_text(BASE, encoding="utf-8")
    body = '[[exercise]]\nid = "e"\nskills = ["s"]\nprompt = "?"\ndifficulty = 0.5\nsolution = ["x"]\n'
    (root / "exercises" / "k.toml").write_text(body + exercise_toml, encoding="utf-8")
    with pytest.raises(ContentError) as caught:
        read_content(root)
    return caught.value.problems


WHERE = "c/exercises/k.toml: exercise 'e': "


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            'answer_kind = "expression"\nvariables = ["x"]\nanswers = ["2x +"]',
            "answers: '2x +': could not read",
        ),
        ('answer_kind = "expression"\nanswers = ["2x"]', "variables: expression needs its variables"),
        ('answer_kind = "expression"\nvariables = ["x"]\nanswers = ["2y"]', "unknown name 'y'"),
        ('answer_kind = "expression"\nvariables = ["sin"]\nanswers = ["1"]', "variables: variable 'sin'"),
        ('answer_kind = "expression"\nvariables = ["x"]\nanswers = ["2^10^10"]', "exponent is too large"),
        ('answer_kind = "numeric"\ntolerance = -0.1\nanswers = ["1"]', "tolerance: must be 0 or more"),
        (
            'answer_kind = "numeric"\ntolerance_kind = "percent"\nanswers = ["1"]',
            "tolerance_kind: Must be one",
        ),
        ('answer_kind = "numeric"\nunits = ["cm"]\nanswers = ["12 m"]', "answers: not a number with one of"),
        ('answer_kind = "numeric"\nunits = ["cm", "CM"]\nanswers = ["12"]', "units: units must be distinct"),
        ('answer_kind = "short_text"\ntolerance = 1\nanswers = ["a"]', "tolerance: only allowed for numeric"),
        (
            'answer_kind = "numeric"\nvariables = ["x"]\nanswers = ["1"]',
            "variables: only allowed for expression",
        ),
        ('answer_kind = "fraction"\nanswers = ["0.75"]', "answers: not a fraction, mixed number"),
        (
            'answer_kind = "fraction"\nsimplest_form_required = true\nanswers = ["6/8"]',
            "not in simplest form",
        ),
        (
            'answer_kind = "numeric"\nsimplest_form_required = true\nanswers = ["1"]',
            "only allowed for fraction",
        ),
        ('answer_kind = "ordered"\nanswers = ["only one"]', "answers: ordered needs at least 2 items"),
        ('answer_kind = "ordered"\nanswers = ["a", "A"]', "answers: answers must be distinct"),
        ('answer_kind = "ordered"\nchoices = ["a", "b"]\nanswers = ["a", "b"]', "choices: only allowed for"),
        (
            'answer_kind = "multiple_select"\nchoices = ["a"]\nanswers = ["a"]',
            "choices: multiple_select needs",
        ),
        (
            'answer_kind = "multiple_select"\nchoices = ["a", "b"]\nanswers = ["c"]',
            "answers: answers not among",
        ),
        ('answer_kind = "multiple_pick"\nanswers = ["a"]', "answer_kind: Must be one of"),
    ],
)
def test_the_validator_names_file_item_and_field(tmp_path: Path, fields: str, problem: str) -> None:
    found = problems_of(tmp_path, fields + "\n")
    assert any(p.startswith(WHERE) and problem in p for p in found), found


def test_existing_kinds_keep_loading_unchanged(tmp_path: Path) -> None:
    ex = read_content(Path(__file__).resolve().parents[2] / "content").exercises
    assert all(e.grading_options() == {} for e in ex.values())


def test_sympy_is_imported_only_to_grade_or_check_an_expression() -> None:
    """SymPy costs over a second per process (every gunicorn and job worker): the app, its grading and the
    shipped content load without it."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from app import create_app\n"
        "from app.domain.grading import grade_answer\n"
        "from app.services.tutoring.content_files import read_content\n"
        "create_app({'TESTING': True, 'SECRET_KEY': 'x', 'SQLALCHEMY_DATABASE_URI': 'sqlite://'})\n"
        "content = read_content(Path('content'))\n"
        "numeric = next(e for e in content.exercises.values() if e.answer_kind == 'numeric')\n"
        "grade_answer(numeric, numeric.answers[0])\n"
        "assert 'sympy' not in sys.modules, 'sympy imported'\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
