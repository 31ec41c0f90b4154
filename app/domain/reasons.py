"""Why an exercise was recommended: the one list of reasons and policies that the service serves.

``selection.choose_next_exercise`` and ``selection.fixed_sequence`` produce them, recommendations store
them, and the API schemas (``app/api/schemas.py``) publish them as the OpenAPI enums. Members are ``str``
(``Reason.LEARN == "learn"``), so stored rows, JSON and comparisons with plain strings are unchanged.
The baselines of the simulation harness give reasons of their own (their names), which are never served.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    LEARN = "learn"  # a ready skill where one more exercise should raise mastery most
    CONTINUE = "continue"  # keep going with the skill just practised
    REVIEW = "review"  # a mastered skill whose predicted recall has fallen: due for review
    EXPLORE = "explore"  # a ready skill not started yet, chosen now and then to learn about the student
    REMEDIATE_PREREQUISITE = "remediate_prerequisite"  # wheel-spinning or a decayed prerequisite
    FIXED_ORDER = "fixed_order"  # personalization off: the fixed curriculum order
    ALL_MASTERED = "all_mastered"  # nothing left to practise (no exercise)
    NOTHING_READY = "nothing_ready"  # no unmastered skill has its prerequisites (no exercise)


class ServedPolicy(StrEnum):
    """The policy behind a served recommendation."""

    ADAPTIVE = "adaptive"  # choose_next_exercise
    FIXED_SEQUENCE = "fixed_sequence"  # personalization off
