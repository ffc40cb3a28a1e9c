"""What the validation scripts share: text tables and options."""

from pathlib import Path


def text_table(header, lines, markdown=False):
    """Right-aligned text columns, or a Markdown table.

    Parameters
    ----------
    header : list of str
    lines : list of list of str
        One list of cells per line, as many as ``header``.
    markdown : bool, default=False
    """
    if markdown:
        return "\n".join(
            "| " + " | ".join(cells) + " |"
            for cells in [header, ["---"] * len(header), *lines]
        )
    widths = [
        max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))
    ]
    return "\n".join(
        " ".join(f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True))
        for cells in [header, *lines]
    )


def add_run_arguments(parser, out, out_help, quick_help):
    """The options both scripts take: workers, seed, output, a quick run,
    and summaries of an existing CSV."""
    parser.add_argument("--n-jobs", type=int, default=-1, help="joblib workers")
    parser.add_argument("--seed", type=int, default=0, help="root seed")
    parser.add_argument("--out", type=Path, default=out, help=out_help)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--summarize",
        type=Path,
        metavar="CSV",
        help="print the summary of an existing CSV and exit",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the summary as Markdown"
    )
