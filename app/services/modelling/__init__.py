"""Modelling: log imports, fitting BKT (the only pyBKT users) and the memory model, evaluation, replays.

imports.py       importing public response logs into the response log
fitting.py       fitting BKT parameters with pyBKT; storing and adopting fitted parameters
pybkt_engine.py  the EM loop every pyBKT fit runs through (installed in joblib workers too)
evaluation.py    held-out evaluation of the tracker
mastery.py       replaying the log: rebuild and consistency checks of the mastery table
memory_fit.py    fitting the memory model (FSRS) to a school's own log
"""
