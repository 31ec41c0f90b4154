"""`flask simulate --world forgetting`: the forgetting world from the shell, small."""

from __future__ import annotations

from statistics import fmean
from typing import Any

from app.extensions import db
from app.services.tutoring.content import current_snapshot

SMALL = [
    "simulate",
    "--world",
    "forgetting",
    "--students",
    "3",
    "--weeks",
    "1",
    "--answers-per-session",
    "4",
    "--policies",
    "adaptive",
    "--policies",
    "random",
    "--policy",
    "spaced_repetition",
    "--jobs",
    "1",
]


def test_the_forgetting_world_prints_tables_and_targets(app: Any, runner: Any) -> None:
    result = runner.invoke(args=SMALL)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = {
        tuple(line.split()[:2])
        for line in lines
        if line.split()[:1] and line.split()[0] in ("adaptive", "random", "spaced_repetition")
    }
    assert {
        (p, t) for p in ("adaptive", "random", "spaced_repetition") for t in ("slow", "middle", "fast")
    } <= rows
    assert "43 skills" in result.output and "3 students; 1 school weeks of 4 answers a day" in result.output
    # The service's current parameters by default (the shipped content defaults here).
    with app.app_context():
        params = current_snapshot(db.session()).params
    means = [fmean(getattr(params[s], name) for s in params) for name in ("prior", "guess", "learn")]
    assert (
        f"Tutor: each skill's own parameters, as given (means: prior {means[0]:.3g}, "
        f"guess {means[1]:.3g}, learn {means[2]:.3g})"
    ) in result.output
    assert means[0] > 0.1  # not the pooled prior 0
    assert "Targets (issue 17 item 7):" in result.output
    verdicts = [line for line in lines if any(v in f" {line} " for v in (" met ", "NOT met", "not measured"))]
    assert len(verdicts) == 6
    again = runner.invoke(args=SMALL)
    assert again.output == result.output  # seeded: the same run twice


def test_the_truth_and_the_tutors_parameters_are_options(app: Any, runner: Any) -> None:
    result = runner.invoke(
        args=[
            *SMALL,
            "--truth-prior",
            "0.4",
            "--truth-guess",
            "0.05",
            "--truth-slip",
            "0.2",
            "--truth-learn",
            "0.3",
            "--speed-spread",
            "0",
            "--forgetting-curve",
            "power",
            "--memory-strength",
            "5",
            "--post-test-days",
            "7",
            "--pooled-params",
            "--seed",
            "other",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "Hidden truth: prior 0.4, guess 0.05, slip 0.2, learn 0.3 x speed (log sd 0)" in result.output
    assert "forgetting power, initial strength 5 d" in result.output
    assert "post-test 7 days after the last session; seed other." in result.output
    assert "Tutor: every skill prior 0, learn 0.11, guess 0.2, slip 0.2 (means: prior 0," in result.output
    assert result.output != runner.invoke(args=SMALL).output


def test_bad_options_are_one_line_errors(app: Any, runner: Any) -> None:
    cases = [
        (["simulate", "--weeks", "2"], "--weeks only apply to --world forgetting"),
        (
            ["simulate", "--truth-prior", "0.2", "--memory-strength", "4"],
            "--truth-prior, --memory-strength only apply to --world forgetting",
        ),
        (
            ["simulate", "--world", "forgetting", "--strict-baselines", "0.98"],
            "--strict-baselines only applies to --world issue-4",
        ),
        (["simulate", "--strict-baselines", "0.3"], "--strict-baselines must be 0 (skip) or in [0.5, 0.999]"),
        (["simulate", "--world", "forgetting", "--truth-guess", "1.5"], "Invalid value for '--truth-guess'"),
        (["simulate", "--world", "forgetting", "--weeks", "0"], "Invalid value for '--weeks'"),
        (["simulate", "--world", "forgetting", "--policy", "nope"], "Invalid value for '--policy'"),
        (["simulate", "--world", "nowhere"], "Invalid value for '--world'"),
    ]
    for args, message in cases:
        result = runner.invoke(args=args)
        assert result.exit_code in (1, 2) and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, result.output
