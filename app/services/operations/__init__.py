"""Operations: ``flask doctor``'s checks and the demo data for ``scripts/serve``.

doctor.py  the Python stack, the database and the content, checked
demo.py    a demo school, class and simulated students
"""
