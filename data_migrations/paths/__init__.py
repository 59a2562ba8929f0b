"""Step 0004: the file paths in the rows rewritten to object keys, and back; and its
preflight check that UPLOAD_EXCLUDE leaves out no file the rows reference."""
