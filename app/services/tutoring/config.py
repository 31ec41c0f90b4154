"""The tutor's settings as the domain takes them: when a skill is mastered, and the policy."""

from __future__ import annotations

from app.domain.selection import PolicyConfig
from app.domain.tracking import MasteryRules
from app.settings import current_settings


def mastery_rules() -> MasteryRules:
    """When a skill is mastered: MASTERY_THRESHOLD, then any MASTERY_RULES mapping (checked at start)."""
    return current_settings().mastery


def policy_config() -> PolicyConfig:
    """The policy settings: the mastery rules, then any POLICY mapping (checked at start)."""
    return current_settings().policy
