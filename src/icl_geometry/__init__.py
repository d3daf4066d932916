"""icl_geometry: the package behind the book on the geometry of in-context learning.

Layers, each a subpackage; an import only points down (tests/test_architecture.py asserts it):

- `bookkit`: the book machinery (claims and verdict records, recorded runs, report, chapter specs,
  profiles, runner and CLI, course kit, plotting, widgets). Only it imports `experiments`.
- `experiments`: one module per chapter (`run`, `CLAIMS`, `claim_values`) on a shared `base`.
- `toys`: small models trained from scratch (one training loop) and their theory.
- `tasks`: the task families, prompts, controls, noise and answer scoring.
- `llm`: real LLMs: loading and hooks (`lm`), the engine, the packed pass, a layer's attention block.
- `core`: the geometry and statistics (partition, attention graphs, intrinsic dimension, stats,
  verdicts): numpy and torch only, nothing from the package.
"""

__version__ = "0.1.0"
