"""People and access: schools, staff, classes and enrollment, sign-in and its throttle, learning apps and
their keys, group attributes, rosters; who may see which student (read-only checks) and the access log.

    accounts.py   schools, staff users, classes, enrollment, signing in
    access.py     the scoped queries that decide who sees which student or class; ``record_access`` writes
                  the access log (in the caller's transaction)
    apps.py       learning apps and their API keys
    groups.py     consented group attributes for bias checks
    rosters.py    classes as their teachers, admins and apps see them
    throttle.py   sign-in throttling shared by every worker, and the per-host cap on password hashing
"""
