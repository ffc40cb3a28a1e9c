"""Fixed-width text tables for the benchmark scripts."""


def header(columns):
    """The header line of ``columns``, a list of (title, width, format)."""
    return " ".join(f"{title:>{width}}" for title, width, _ in columns)


def row(values, columns):
    """One line of ``values`` formatted by ``columns``."""
    return " ".join(
        f"{value:>{width}{spec}}"
        for value, (_, width, spec) in zip(values, columns, strict=True)
    )
