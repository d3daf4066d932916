"""The tasks the LLM chapters ask: one registry of families (question-answer and classification), their prompts
and controls, the noise put on demonstrations, and scoring without a judge model.

- `registry`: every family by name and kind; `check_family`, `parse_families`, `split`, `choose_examples`.
- `qa`, `classification`: the families themselves, generated in code from a seed.
- `prompts`: k-shot prompts (chat turns or plain text), random-token and shuffled controls, classification prompts.
- `noise`: flipped labels and replaced inputs on demonstrations.
- `noise_measures`: a model's answers under noisy demonstrations, statistics over queries (chapter 7).
- `context_contrasts`: one question asked in several contexts, compared prompt by prompt (chapter 4).
- `scoring`: answer extraction, admissible choices, label log-probabilities, token groups.
- `evaluation`: a model answering a family (greedy and packed passes, constrained choice, clean accuracy).

The names below are the package's public face: `from icl_geometry import tasks` then `tasks.split(...)`.
"""

from icl_geometry.tasks.classification import (BASE_FAMILIES, CLASSIFICATION_FAMILIES, GROUPS, UNRELATED,
                                               DemoFamily, Example)
from icl_geometry.tasks.evaluation import (Evaluation, answer, answer_prefix, choice_outcome, choice_scores,
                                           clean_accuracy, evaluate, few_shot_prompts, prompts_for, question_marker,
                                           trace_all)
from icl_geometry.tasks.noise import corrupt, n_corrupted
from icl_geometry.tasks.prompts import (CHAT_STYLES, CONTEXTS, DemoPrompt, build_prompt, chat_messages, context_block,
                                        format_classification_prompt, format_prompt, qa_block, random_token_text,
                                        shuffle_words)
from icl_geometry.tasks.qa import CAPITALS, QA_FAMILIES, Family, Item, make_items
from icl_geometry.tasks.registry import (FAMILIES, KINDS, check_family, choose_examples, families, kind_of,
                                         parse_families, split)
from icl_geometry.tasks.scoring import (OUTCOMES, choices, extract_answer, extract_number, first_line, fold,
                                        is_correct, label_logprobs, outcome, stop_at_newline, token_groups,
                                        two_option)

__all__ = [name for name in dir() if not name.startswith("_")]
