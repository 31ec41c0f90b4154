"""Algebraic expressions: read a student's text safely, and decide whether two expressions are equivalent.

Reading never evaluates the raw text. The text is first split into tokens by a whitelist (numbers, names,
``+ - * / ^ ( )``); every name must be one of the exercise's variables, an allowed function or constant, or a
run of single-letter variables (``xy`` is ``x*y``). Only the rebuilt token string reaches SymPy's
``parse_expr``, with a namespace holding nothing but the constructors it needs (no builtins), implicit
multiplication (``2x``, ``x(x+1)``) and ``^`` as power. The tree is built unevaluated, and its size is bounded
before anything is computed: a huge exponent (``2^10^10``) or an expression that would expand beyond the
cap is refused, so no answer can make the worker compute for long. There is no factorial.

Equivalence (docs/ARCHITECTURE.md "Expression answers"): a small rational expression (no functions) is
decided exactly, ``cancel(a - b) == 0``; anything else by the value of ``a - b`` at seeded random points.
``simplify`` is not used: its running time has no bound and a thread cannot be interrupted.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

import mpmath
import sympy
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication,
    parse_expr,
    standard_transformations,
)

MAX_LENGTH = 200  # characters of an answer
MAX_EXPONENT = 100  # |numeric exponent|
MAX_SIZE = 2000  # estimated digits/degree of the whole expression (see _size)
MAX_DEPTH = 20  # nested parentheses
EXACT_SIZE = 60  # rational expressions up to this size are compared exactly
POINTS = 12  # random points for the numeric comparison
MIN_POINTS = 6  # ... of which at least this many must be defined
WORKING_DIGITS = 60  # mpmath precision of the numeric comparison
NUMERIC_TOLERANCE = mpmath.mpf(10) ** -30  # relative to the larger value

FUNCTIONS: dict[str, object] = {
    "sqrt": sympy.sqrt,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "log": sympy.log,
    "ln": sympy.log,
    "exp": sympy.exp,
    "abs": sympy.Abs,
}
CONSTANTS: dict[str, object] = {"pi": sympy.pi, "e": sympy.E}
_VARIABLE = re.compile(r"^[A-Za-z]\w{0,19}$")
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|([A-Za-z]+)|(\*\*|[-+*/^()])|(\S))")
# parse_expr's generated code calls these; nothing else is reachable (no builtins).
_GLOBALS: dict[str, object] = {
    "__builtins__": {},
    "Integer": sympy.Integer,
    "Float": sympy.Float,
    "Rational": sympy.Rational,
    "Symbol": sympy.Symbol,
    "Add": sympy.Add,
    "Mul": sympy.Mul,
    "Pow": sympy.Pow,
}
_TRANSFORMATIONS = (*standard_transformations, implicit_multiplication, convert_xor)
_SEED = 20_261_202


class ExpressionError(ValueError):
    """The text is not an expression this exercise can read; ``str()`` is a sentence for the student."""


def variable_problem(name: str) -> str | None:
    """Why ``name`` cannot be an exercise variable, or None when it can."""
    if not _VARIABLE.match(name):
        return f"variable {name!r} must be a letter followed by at most 19 letters, digits or '_'"
    if name in FUNCTIONS or name in CONSTANTS:
        return f"variable {name!r} is the name of a function or constant"
    return None


def _tokens(text: str, variables: frozenset[str]) -> list[str]:
    out: list[str] = []
    depth = 0
    position = 0
    after_number = False
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None:  # only trailing spaces are left, and those were stripped
            break
        position = match.end()
        number, name, operator, other = match.groups()
        if other is not None:
            raise ExpressionError(f"could not read this expression: {other!r} is not allowed")
        if number is not None and after_number:
            raise ExpressionError("could not read this expression: two numbers in a row")
        after_number = number is not None
        if number is not None:
            if len(number) > 15:
                raise ExpressionError("could not read this expression: a number is too long")
            if "." in number:  # a decimal as typed: 0.1 is 1/10, not the nearest binary float
                whole, _, decimals = number.partition(".")
                out.extend(["(", (whole + decimals).lstrip("0") or "0", "/", "1" + "0" * len(decimals), ")"])
            else:
                out.append(number)
        elif name is not None:
            if name in variables or name in FUNCTIONS or name in CONSTANTS:
                out.append(name)
            elif all(letter in variables for letter in name):
                out.extend(name)  # "xy" is x times y
            else:
                raise ExpressionError(f"could not read this expression: unknown name {name!r}")
        else:
            if operator == "(":
                depth += 1
                if depth > MAX_DEPTH:
                    raise ExpressionError("could not read this expression: too many nested brackets")
            elif operator == ")":
                if out and out[-1] == "(":
                    raise ExpressionError("could not read this expression: empty brackets")
                depth -= 1
                if depth < 0:
                    raise ExpressionError("could not read this expression: a ')' has no '('")
            out.append(operator)
    if depth:
        raise ExpressionError("could not read this expression: a '(' is not closed")
    if not out:
        raise ExpressionError("could not read this expression: it is empty")
    return out


def _size(node: sympy.Basic) -> int:
    """A bound on the work of evaluating ``node``: digits of numbers, times exponents, summed over terms.

    Raises ``ExpressionError`` for a numeric exponent over ``MAX_EXPONENT`` (checked bottom-up, so the
    exponent is only evaluated once it is known to be small)."""
    if isinstance(node, sympy.Integer):
        return max(1, len(str(abs(int(node)))))
    if isinstance(node, sympy.Rational):
        return len(str(abs(node.p))) + len(str(node.q))
    if node.is_Atom:
        return 1
    if isinstance(node, sympy.Pow):
        base, exponent = node.args
        size = _size(base) + _size(exponent)
        if not exponent.free_symbols:
            value = complex(sympy.N(exponent, 15))
            if value.imag or abs(value.real) > MAX_EXPONENT:
                raise ExpressionError(f"the exponent is too large (at most {MAX_EXPONENT})")
            size = _size(base) * max(1, int(abs(value.real)) + 1)
        return _checked(size)
    return _checked(sum(_size(arg) for arg in node.args) + 1)


def _checked(size: int) -> int:
    if size > MAX_SIZE:
        raise ExpressionError("this expression is too large to check")
    return size


def parse_expression(text: str, variables: Iterable[str]) -> sympy.Expr:
    """The expression ``text`` in ``variables``; raises ``ExpressionError`` with a reason for the student."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"could not read this expression: it is over {MAX_LENGTH} characters")
    names = frozenset(variables)
    tokens = _tokens(text.replace("\u2212", "-").replace("\u00d7", "*").replace("\u00b7", "*"), names)
    local: dict[str, object] = {**FUNCTIONS, **CONSTANTS, **{n: sympy.Symbol(n) for n in names}}
    try:
        tree = parse_expr(
            " ".join(tokens),
            local_dict=local,
            global_dict=dict(_GLOBALS),
            transformations=_TRANSFORMATIONS,
            evaluate=False,
        )
    except (SyntaxError, TypeError, ValueError, AttributeError, sympy.SympifyError) as error:
        raise ExpressionError("could not read this expression") from error
    if not all(isinstance(node, sympy.Expr) for node in sympy.preorder_traversal(tree)):
        raise ExpressionError("could not read this expression")
    _size(tree)
    # Bounded now: evaluating the tree (numbers multiplied out, like terms collected) is cheap.
    try:
        value = sympy.sympify(tree, evaluate=True).doit()
    except (TypeError, ValueError, ZeroDivisionError) as error:  # pragma: no cover - defensive
        raise ExpressionError("could not read this expression") from error
    if not isinstance(value, sympy.Expr):  # pragma: no cover - defensive
        raise ExpressionError("could not read this expression")
    if value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise ExpressionError("this expression divides by zero")
    return value


def _points(symbols: list[sympy.Symbol]) -> list[list[sympy.Rational]]:
    """Seeded: the same answer always gets the same grade."""
    rng = random.Random(_SEED + len(symbols))
    # |value| in [0.3, 2.5]: away from 0 (poles of 1/x) and small enough that values stay moderate.
    return [
        [sympy.Rational(rng.choice((-1, 1)) * rng.randint(30, 250), 100) for _ in symbols]
        for _ in range(POINTS)
    ]


def _is_rational(expr: sympy.Expr) -> bool:
    return all(
        isinstance(node, (sympy.Add, sympy.Mul, sympy.Symbol, sympy.Rational))
        or (isinstance(node, sympy.Pow) and isinstance(node.exp, sympy.Integer))
        for node in sympy.preorder_traversal(expr)
    )


def equivalent(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Whether ``a`` and ``b`` are the same expression (both as returned by ``parse_expression``)."""
    difference = a - b
    if difference == 0:
        return True
    if _is_rational(difference) and _size(a) + _size(b) <= EXACT_SIZE:
        return bool(sympy.cancel(difference) == 0)
    symbols = sorted(difference.free_symbols, key=lambda s: s.name)
    # Code printed by SymPy from the parsed trees (never the student's text), evaluated by mpmath.
    f = sympy.lambdify(symbols, a, modules="mpmath")
    g = sympy.lambdify(symbols, b, modules="mpmath")
    checked = 0
    with mpmath.workdps(WORKING_DIGITS):
        for point in _points(symbols):
            args = [mpmath.mpf(v.p) / v.q for v in point]
            try:
                left, right = mpmath.mpmathify(f(*args)), mpmath.mpmathify(g(*args))
            except (TypeError, ValueError, ZeroDivisionError, OverflowError):
                continue  # undefined here (a pole, a log of 0): try the next point
            if not (mpmath.isfinite(left) and mpmath.isfinite(right)):
                continue
            scale = max(mpmath.mpf(1), abs(left), abs(right))
            if abs(left - right) > NUMERIC_TOLERANCE * scale:
                return False
            checked += 1
    return checked >= MIN_POINTS
