"""The pipeline files (*.toml) that ship with Pearlpoint; `pearl pipelines` lists them.

`DEFAULT_PIPELINE` is the one `pearl run`, `pearl eval` and `pearl optimize` use when
none is named. A pipeline's `[compiled]` table names compiled folders (under
`compiled/`, one per model) that a run on that model loads; `NO_COMPILED` turns that off.
"""

DEFAULT_PIPELINE = "csa"
NO_COMPILED = "none"  # `--compiled none`: the steps' own programs, not the compiled ones a pipeline names for its model
