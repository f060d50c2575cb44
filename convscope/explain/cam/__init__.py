"""Class activation maps: which regions of a conv layer's maps the target class uses."""
