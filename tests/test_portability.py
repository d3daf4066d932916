"""The checked outputs are the same on any CPU and thread count.

The committed notebooks were executed with the default kernels (AVX-512 here) on two torch threads (`make refresh`).
`make test` runs every chapter under nbval on one thread, so every chapter's checked outputs are compared across
thread counts. This test runs the chapters whose checked values come from training or sampling (1: sine fits and
sampled regions, 2: the attention + MLP toy, 5: in-context regression) with AVX2 kernels forced as well (one thread;
the thread count alone where the CPU is not x86-64): kernels and threads both moved from the committed run, in one
run per chapter. When this test is collected, nbval's plain run of these three chapters is deselected
(conftest.py), so each chapter runs once. Chapters 0, 3 and 4 (traces of a bundled LLM) were measured in these
variants too: their checked values did not move (see the README's Reproducibility).

Each case runs nbval in a subprocess (the kernel inherits the environment, which is how the kernel set and the
thread count reach torch), with results in a temporary folder, and shows nbval's diff when it fails.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = ("01_partition_geometry.ipynb", "02_attention_graphs.ipynb", "05_icl_linear_regression.ipynb")
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
X86 = platform.machine().lower() in ("x86_64", "amd64")
# vectorised kernels one size down from AVX-512 (torch's ATen, MKL's BLAS, oneDNN) and one thread, in one run
VARIANTS = {"avx2_one_thread": {**AVX2, **ONE_THREAD}} if X86 else {"one_thread": ONE_THREAD}
# what torch reports in a process started with the variant's environment: proof that the variant took effect
PROBE = "import torch; print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())"
EXPECTED = {"avx2_one_thread": lambda cap, threads: cap == "AVX2" and threads == 1,
            "one_thread": lambda cap, threads: threads == 1}


def _env(variant: str, results: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {k for vs in VARIANTS.values() for k in vs}}
    env.update(VARIANTS[variant])
    env.update({"ICL_GEOMETRY_RESULTS": str(results), "ICL_GEOMETRY_STATIC": "1", "PYTHONHASHSEED": "0",
                "TOKENIZERS_PARALLELISM": "false"})
    return env


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("notebook", CHAPTERS)
def test_checked_outputs_do_not_depend_on_kernels_or_threads(notebook, variant, tmp_path):
    env = _env(variant, tmp_path / "results")
    probe = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    cap, threads = probe.stdout.split()
    if variant == "avx2_one_thread" and cap not in ("AVX2", "AVX512"):
        pytest.skip(f"this CPU has no AVX2 (torch reports {cap})")
    assert EXPECTED[variant](cap, int(threads)), f"{variant}: torch reports {cap}, {threads} threads"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--nbval-lax", "-m", "slow or not slow",
           notebook]
    run = subprocess.run(cmd, cwd=BOOK, env=env, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, (f"{notebook} under {variant} ({cap}, {threads} torch threads): nbval failed; "
                                 f"its report:\n{run.stdout[-12000:]}\n{run.stderr[-3000:]}")


def test_the_plain_nbval_run_leaves_out_exactly_these_chapters():
    import ast

    tree = ast.parse((BOOK.parent / "conftest.py").read_text())
    names = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
             if isinstance(t, ast.Name)}
    assert ast.literal_eval(names["PORTABILITY_CHAPTERS"]) == CHAPTERS
