"""Services: the only code that touches both the domain and the database. They own transactions.

Grouped by area: ``tutoring`` (answers, next exercise, progress, content), ``people`` (accounts, access and
the access log, apps, rosters), ``reporting`` (reports, bias checks, data rights), ``modelling`` (imports,
fitting, evaluation, replays) and ``operations`` (doctor, demo). docs/ARCHITECTURE.md maps each table to its
one writer.
"""
