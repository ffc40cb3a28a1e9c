"""Collection settings for the doctests of the package (run from the root)."""

collect_ignore = []
