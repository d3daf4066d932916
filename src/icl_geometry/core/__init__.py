"""The geometry and the statistics the book measures with: pure numpy/torch, importing nothing from the package."""
