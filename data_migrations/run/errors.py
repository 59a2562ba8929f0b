"""The failure every data step raises for an expected problem."""


class DataMigrationError(Exception):
    """An expected failure of a data step; the message says what and where."""
