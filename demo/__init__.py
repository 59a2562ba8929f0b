"""The cutover, shown end to end on sample data: ``make demo``."""
