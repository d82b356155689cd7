"""The pipeline files (*.toml) that ship with Pearlpoint; `pearl pipelines` lists them."""
