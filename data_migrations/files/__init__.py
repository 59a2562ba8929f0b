"""Step 0003: the uploads folder into the object store: the scan, the upload engine, the
manifest ledger, the retries, the presync record, the output, the rollback, its preflight
checks (prune's guards among them), and fetching the files back by URL (verify)."""
