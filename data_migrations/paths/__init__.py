"""Step 0004: the file paths in the rows rewritten to object keys, and back."""
