"""Names of the bookkeeping tables the data revisions create in the target.

They record what each step did, so its downgrade undoes exactly that and ``make verify``
can re-check it later. env.py keeps them out of autogenerate (they share the prefix).
"""

PREFIX = "cutover_"
COPIED_KEYS = f"{PREFIX}copied_keys"  # 0002: the copied rows' keys (integer ones in runs)
FILE_MANIFEST = f"{PREFIX}file_manifest"  # 0003: every uploaded file and its object
PATH_REWRITES = f"{PREFIX}path_rewrites"  # 0004: the original of every rewritten path
