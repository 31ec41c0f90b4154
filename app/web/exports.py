"""The class report as CSV downloads (a student's data export is services/reporting/export_download.py).

Two tidy files: ``students.csv``, one row per student (a header row, then nothing else), and ``skills.csv``,
one row per skill. Every mastery figure is a whole percent, rounded as the pages round it
(``wording.percent``); counts are counts.
"""

from __future__ import annotations

import io

from app import csv_writer
from app.domain.reports import ClassReport
from app.domain.wording import percent


def class_report_csv(report: ClassReport) -> str:
    """One row per student: counts, then one column per skill (by id) with the mastery estimate in %,
    blank when the student has not started it or has fewer answers on it than an estimate needs."""
    out = io.StringIO()
    writer = csv_writer.writer(out)  # cells that would run as spreadsheet formulas are neutralised
    skills = [s.skill_id for s in report.skills]
    writer.writerow(
        [
            "student",
            "skills_mastered",
            "answers",
            "answers_in_window",
            "last_active_at",
            "needs_help",
            *skills,
        ]
    )
    for student in report.students:
        writer.writerow(
            [
                student.external_id,
                student.skills_mastered,
                student.answers,
                student.answers_in_window,
                student.last_active_at.isoformat() if student.last_active_at else "",
                "; ".join(r.detail for r in student.needs_help),
                *("" if c.p_mastery is None else percent(c.p_mastery) for c in student.cells),
            ]
        )
    return out.getvalue()


def class_skills_csv(report: ClassReport) -> str:
    """One row per skill (prerequisite order): how many students practise it, have mastered it (and the
    share of the class, in %), the median answers it took them, and how many wheel-spin on it."""
    out = io.StringIO()
    writer = csv_writer.writer(out)
    writer.writerow(
        [
            "skill",
            "name",
            "unit",
            "students",
            "practising",
            "mastered",
            "mastered_percent",
            "median_answers_to_mastery",
            "wheel_spinning",
            "stuck",
        ]
    )
    for skill in report.skills:
        writer.writerow(
            [
                skill.skill_id,
                skill.name,
                skill.unit,
                len(report.students),
                skill.practising,
                skill.mastered,
                percent(skill.share_mastered),
                "" if skill.median_attempts_to_mastery is None else f"{skill.median_attempts_to_mastery:g}",
                skill.wheel_spinning,
                "yes" if skill.stuck else "no",
            ]
        )
    return out.getvalue()
