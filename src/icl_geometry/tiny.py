"""Tiny randomly initialised causal LMs (Llama and Gemma-3 layouts) with a small word-level tokenizer, saved
as ordinary Hugging Face checkpoints, for fast exactness tests of the code that runs real models.

They are loaded through the same `lm.load(path)` code path as any local checkpoint. They are for tests of
hooks, traces, packing, generation and sharding only: every chapter runs real pretrained models.
"""

from __future__ import annotations

from pathlib import Path

import torch

ARCHITECTURES = ("llama", "gemma3")
WORDS = ("Q", "A", ":", "?", "+", "=", "is", "the", "what", "of", "a", "b", "c", "d", "yes", "no",
         *[str(i) for i in range(20)], "apple", "tree", "red", "blue", "cat", "dog", "<|im_start|>",
         "<|im_end|>", "user", "assistant", "\n")
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|> {{ m['role'] }} \n {{ m['content'] }} <|im_end|> \n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant \n {% endif %}")


def tiny_tokenizer(chat: bool = True):
    """A word-level tokenizer over `WORDS` (whitespace-split, unknown words -> <unk>), with BOS added."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    vocab = {w: i for i, w in enumerate(specials + [w for w in WORDS if w != "\n"] + ["\n"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit()])
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>")
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_config(architecture: str = "llama", vocab_size: int = 64, layers: int = 3):
    """A small config of the given layout: 4 query heads, 2 KV heads (grouped-query), d_model 32."""
    if architecture == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                           bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    if architecture == "gemma3":
        from transformers import Gemma3TextConfig

        return Gemma3TextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                                num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                head_dim=8, max_position_embeddings=256, sliding_window=16,
                                layer_types=["sliding_attention"] * (layers - 1) + ["full_attention"],
                                bos_token_id=1, eos_token_id=2, pad_token_id=0)
    raise ValueError(f"architecture = {architecture!r} is not allowed: expected one of {list(ARCHITECTURES)}")


def save_tiny_model(directory: str | Path, architecture: str = "llama", seed: int = 0, layers: int = 3,
                    chat: bool | None = None) -> Path:
    """Write a tiny random checkpoint (config, float32 weights, tokenizer) to `directory`; return it.

    Chat template: on for the Llama layout, off for Gemma-3 (as with the bundled models), unless `chat` says.
    """
    from transformers import AutoModelForCausalLM

    directory = Path(directory)
    tok = tiny_tokenizer(chat=(architecture == "llama") if chat is None else chat)
    cfg = tiny_config(architecture, vocab_size=len(tok), layers=layers)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    with torch.no_grad():  # larger random weights than the default init, so attention is far from uniform
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.3)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory
