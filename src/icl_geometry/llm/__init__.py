"""Real LLMs: loading and hooks (`lm`), prompts through a model (`engine`), the packed trace-and-generate pass
(`packing`) and a real layer's attention block as Theorem 2.1's objects (`attention_block`). Imports only `core`."""
