"""icl_geometry: the shared package behind the book on the geometry of in-context learning.

Modules, one concern each: `lm` (load real LLMs, hook their layers), `engine` and `packing` (prompts
through an LLM: traces, greedy answers, scored choices, the packed pass), `tasks` (offline task suites),
`partition`, `attention_graph`, `intrinsic_dim` (the geometry), `toys` (small models trained
from scratch), `claims` (the replication registry), `profiles` and `runner` (parameters and
execution), `plotting` and `widgets` (figures and explorers).
"""

__version__ = "0.1.0"
