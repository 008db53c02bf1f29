# The two commands of the README:  make book  (build the course book)  and  make test  (every test).
# Both create the virtual environment .venv on first use and reuse it afterwards.
#
#   PYTHON  the interpreter that creates the environment (default python3, 3.10 or newer)
#   VENV    where the environment lives (default .venv; an existing environment is reused)
#   TORCH   the PyTorch pair to install first; set it to the CPU or CUDA wheel index of your
#           machine, or to nothing when torch is already installed (see the README)
#   COMPAT  set to nothing (make test COMPAT=) to leave out the compatibility suite
#   FULL    FULL=1: the compatibility suite trains all seven labs, not one (before a release)

PYTHON ?= python3
COMPAT ?= 1
VENV ?= .venv
TORCH ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
STAMP := $(VENV)/.convlab-installed
export PATH := $(abspath $(BIN)):$(PATH)

MATHJAX := book/_static/mathjax/tex-chtml.js

.PHONY: book test test-compat compat-install install stamp publish clean system-data system-test

book: $(STAMP) $(MATHJAX)
	$(BIN)/python tools/execute_book.py
	$(BIN)/jupyter-book build . --builder html -W -n --keep-going
	@echo "The book is in _build/html/index.html"

test: $(STAMP) $(MATHJAX) system-test
	$(if $(strip $(COMPAT)),$(MAKE) --no-print-directory compat-install)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n 2
	$(if $(strip $(COMPAT)),$(MAKE) --no-print-directory test-compat)

# The compatibility suite (tools/compat.py) on the PyTorch pairs convlab supports besides the main
# one: the oldest it admits and the newest release, each in its own environment under .compat/
# (made on first use). FULL=1 trains all seven labs there, not one. A newer torch is a new piece
# of work: add its pair here and run the suite, never a silent upgrade. PIP_CONSTRAINT=/dev/null
# lifts a machine's pip cap (a constraints file) for the newest pair's install only.
COMPAT_OLDEST := torch==2.4.1 torchvision==0.19.1 numpy<2
COMPAT_NEWEST := torch==2.15.0 torchvision==0.29.2

test-compat: $(STAMP)
	$(BIN)/python tools/compat.py .compat/oldest --torch "$(COMPAT_OLDEST)" $(if $(FULL),--full)
	PIP_CONSTRAINT=/dev/null $(BIN)/python tools/compat.py .compat/newest --torch "$(COMPAT_NEWEST)" $(if $(FULL),--full)

# Both environments' installs (mostly downloads), started in the background so that they overlap
# the main tests; test-compat waits for each (a lock) and installs it itself if this one failed.
compat-install: $(STAMP)
	mkdir -p .compat
	( $(BIN)/python tools/compat.py .compat/oldest --torch "$(COMPAT_OLDEST)" --install-only; \
	  PIP_CONSTRAINT=/dev/null $(BIN)/python tools/compat.py .compat/newest --torch "$(COMPAT_NEWEST)" --install-only \
	) > .compat/install.log 2>&1 &
	@echo "Installing the compatibility suite's environments in the background (.compat/install.log)"

install: $(STAMP) system-data

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

# The Python environment. It depends on this Makefile too, so that an environment made before
# a change of the install steps is brought up to date.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(strip $(TORCH)),$(BIN)/python -m pip install $(TORCH))
	$(BIN)/python -m pip install -e ".[book,grading,dev]"
	# d2l is an independent reference for the tests; its own pins (numpy 1.23) would break numpy 2.
	$(BIN)/python -m pip install --no-deps d2l==1.0.3
	touch $@

# System packages, from Debian's or Ubuntu's archive when this runs as root where apt-get exists
# (elsewhere, the note says what to install by hand):
#   dataset-fashion-mnist  the real Fashion-MNIST, read by convlab.data.fashion_mnist() from
#                          /usr/share/datasets/fashion-mnist (the labs' full mode, the tests)
#   chromium               the tests that read the built book as a browser does
#   postgresql             the test that grades a class into a PostgreSQL gradebook
DATA_PACKAGES := dataset-fashion-mnist
TEST_PACKAGES := $(DATA_PACKAGES) chromium postgresql

define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "apt-get install $$missing"; \
	  apt-get install -y --no-install-recommends $$missing || \
	  { apt-get update && apt-get install -y --no-install-recommends $$missing; }; \
	else \
	  echo "Not installed: $$missing. On Debian or Ubuntu: sudo apt-get install $$missing"; \
	  echo "(Fashion-MNIST elsewhere: convlab.data.fashion_mnist() downloads it with internet access)"; \
	fi
endef

system-data:
	$(call apt_install,$(DATA_PACKAGES))

system-test:
	$(call apt_install,$(TEST_PACKAGES))

clean:
	rm -rf _build .pytest_cache .ruff_cache test-artifacts
