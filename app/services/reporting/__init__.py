"""Reporting: student and class reports, bias checks, a student's data rights (export, deletion, retention).

reports.py          the student's own report, the class view, mastery over time
bias.py             running and storing a bias check
privacy.py          export, deletion and retention (``EXPORT_MAP``)
export_download.py  a student's export as a file to download, for the API and the pages
"""
