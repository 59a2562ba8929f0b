"""Row, file and path logic of the data-migration revisions."""
