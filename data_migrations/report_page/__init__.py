"""Each run's report page: the cutover day on one page, beside its JSON report in
REPORTS_DIR (record.py writes both; page.py, sections.py and timeline.py draw the page;
words.py holds its English and Chinese; troubleshooting.py finds the entries of
docs/troubleshooting.md that the run's FAILED lines point to)."""
