"""Tutoring: a student's answers, the next exercise, progress, and the content and student models they use.

Every function that reaches a student takes the caller (a principal) and goes through
``app.services.people.access``: a student the caller may not see is indistinguishable
from one that does not exist.

    config.py          the mastery rules and policy settings, as configured
    students.py        student rows: created (the one writer), looked up, personalization switched
    answers.py         recording an answer (responses, response skills, mastery rows) and its result
    next_exercise.py   choosing the next exercise (the one writer of recommendations), recommendation history
    progress.py        where the student stands per skill
    practice.py        the web practice loop (through answers and next_exercise)
    student_models.py  loading and storing the domain StudentModel (student row + mastery rows)
    content.py         content in the database: sync, snapshot cache, parameter rows of new skills
    content_files.py   reading the content files (TOML)
    catalog.py         read-only views of the content graph for the API
"""
