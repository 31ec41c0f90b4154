"""Pure domain logic: no Flask, no SQLAlchemy, no I/O.

Plain dataclasses in, plain dataclasses out, so every rule here is unit-tested in
milliseconds (tests/unit) and reused unchanged by the web service, the CLI and the
simulations.
"""
