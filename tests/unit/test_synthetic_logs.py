"""The synthetic log generator: seeded, sparse as asked, answers drawn from the stated parameters."""

from collections import Counter

from app.domain.synthetic_logs import draw_skill_params, sparse_log


def test_the_same_seed_gives_the_same_log_and_most_students_answer_a_skill_once_or_twice() -> None:
    truth = draw_skill_params(10, seed=1)
    first = sparse_log(truth, n_students=400, skills_per_student=5, seed=2)
    assert first.rows == sparse_log(truth, n_students=400, skills_per_student=5, seed=2).rows
    assert first.rows != sparse_log(truth, n_students=400, skills_per_student=5, seed=3).rows
    assert [r.order for r in first.rows] == list(range(1, len(first.rows) + 1))
    lengths = Counter(Counter((r.student, r.skill) for r in first.rows).values())
    sequences = sum(lengths.values())
    assert sequences == 400 * 5
    assert 0.55 < lengths[1] / sequences < 0.65 and 0.2 < lengths[2] / sequences < 0.3


def test_first_answers_are_right_as_often_as_prior_guess_and_slip_say() -> None:
    truth = draw_skill_params(1, seed=5)
    ((skill, params),) = truth.items()
    log = sparse_log(truth, n_students=20_000, skills_per_student=1, answers=(1,), seed=6)
    expected = params.prior * (1 - params.slip) + (1 - params.prior) * params.guess
    observed = sum(r.correct for r in log.rows) / len(log.rows)
    assert len(log.rows) == 20_000 and {r.skill for r in log.rows} == {skill}
    assert abs(observed - expected) < 0.015  # 4 standard errors
