"""The tutor inside other systems: LTI 1.3 launches from an LMS (``lti``)."""
