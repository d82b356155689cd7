"""The pipeline files (*.toml) that ship with Pearlpoint; `pearl pipelines` lists them.

`DEFAULT_PIPELINE` is the one `pearl run`, `pearl eval` and `pearl optimize` use when
none is named.
"""

DEFAULT_PIPELINE = "csa"
