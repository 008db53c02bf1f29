# The two commands of the README:  make book  (build the course book)  and  make test  (every test).
# Both create the virtual environment .venv on first use and reuse it afterwards.
#
#   PYTHON  the interpreter that creates the environment (default python3, 3.10 or newer)
#   VENV    where the environment lives (default .venv; an existing environment is reused)
#   TORCH   the PyTorch pair to install first; set it to the CPU or CUDA wheel index of your
#           machine, or to nothing when torch is already installed (see the README)

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
STAMP := $(VENV)/.convlab-installed
export PATH := $(abspath $(BIN)):$(PATH)

MATHJAX := book/_static/mathjax/tex-chtml.js

.PHONY: book test install stamp publish clean

book: $(STAMP) $(MATHJAX)
	$(BIN)/python tools/execute_book.py
	$(BIN)/jupyter-book build . --builder html -W -n --keep-going
	@echo "The book is in _build/html/index.html"

test: $(STAMP) $(MATHJAX)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n 2

install: $(STAMP)

# The repository address of _config.yml, copied into every notebook's install cell.
stamp: $(STAMP)
	$(BIN)/python tools/stamp_notebooks.py

# The students' copy (book sources, released labs, convlab; no solutions or tests) into DEST,
# usually a clone of the course's public repository: make publish DEST=../convlab-public
publish: $(STAMP)
	$(if $(DEST),,$(error set DEST, the folder of the students' repository))
	$(BIN)/python tools/publish.py $(DEST)

$(MATHJAX): tools/fetch_mathjax.py
	$(BIN)/python tools/fetch_mathjax.py

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(strip $(TORCH)),$(BIN)/python -m pip install $(TORCH))
	$(BIN)/python -m pip install -e ".[book,grading,dev]"
	# d2l is an independent reference for the tests; its own pins (numpy 1.23) would break numpy 2.
	$(BIN)/python -m pip install --no-deps d2l==1.0.3
	# Headless Chromium for the tests that read the built book as a browser does (Debian's
	# package; installed when this runs as root, otherwise those tests say how to install it).
	# PostgreSQL likewise, for the test that grades a class into a PostgreSQL gradebook.
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { ! command -v chromium >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }; then \
	  apt-get install -y --no-install-recommends chromium postgresql || \
	  (apt-get update && apt-get install -y --no-install-recommends chromium postgresql); fi
	touch $@

clean:
	rm -rf _build .pytest_cache .ruff_cache test-artifacts
