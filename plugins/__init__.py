"""Built-in infrastructure plugins: LM backends, taxonomies, datasets, exporters."""
