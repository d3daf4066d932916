"""One look for every figure in the book: a seaborn style, a palette and a colour map."""

from __future__ import annotations

import matplotlib

PALETTE = "colorblind"
CMAP = "viridis"
DIVERGING = "vlag"


def use_style(context: str = "notebook") -> None:
    """Apply the book's seaborn theme (call once at the top of a chapter)."""
    import seaborn as sns

    sns.set_theme(context=context, style="whitegrid", palette=PALETTE)
    matplotlib.rcParams.update({
        # drawn at 2x the pixel density: staging shows each PNG at half its pixel width (figsize x 100 CSS px),
        # so figures stay sharp at the column width (the notebook's inline backend saves at figure.dpi)
        "figure.dpi": 200, "savefig.dpi": 200, "figure.figsize": (7.0, 4.2),
        "axes.titlesize": "medium", "axes.titleweight": "bold", "figure.autolayout": False,
        "image.cmap": CMAP,
    })


def colors(n: int) -> list:
    """`n` colours from the book's palette."""
    import seaborn as sns

    return sns.color_palette(PALETTE, n)
