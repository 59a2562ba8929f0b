"""Step 0003: the uploads folder into the object store: the scan, the upload engine, the
manifest ledger, the presync record, the output, the rollback, and fetching the files
back by URL (verify)."""
