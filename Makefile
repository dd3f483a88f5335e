# Two commands do all the set-up on a fresh Debian/Ubuntu machine with Python 3.11:
#   make demo   -- build the virtual environment, then run the main job on the bundled samples
#   make test   -- build the virtual environment, then run the test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= out
QC_VENV := .venv-qc
QC_STAMP := $(QC_VENV)/.installed

.PHONY: demo test bench lint format system clean

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt-get install -y python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Open3D wheels need libusb-1.0; install it when root, otherwise print the command.
system:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing libusb-1.0-0 (needed by Open3D)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null; \
	  else \
	    echo "error: Open3D needs the system library libusb-1.0-0. Run: sudo apt-get install -y libusb-1.0-0"; exit 1; \
	  fi; \
	fi
	@if ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	  else \
	    echo "error: $(PYTHON) cannot create virtual environments. Run: sudo apt-get install -y python3-venv"; exit 1; \
	  fi; \
	fi

demo: $(STAMP)
	$(BIN)/hdmap demo --out $(OUT)/demo

# The ASAM OpenDRIVE checker and pyxodr pin numpy<2: they live in a venv of their own.
$(QC_STAMP):
	@test -x $(QC_VENV)/bin/python || $(PYTHON) -m venv $(QC_VENV)
	$(QC_VENV)/bin/python -m pip install --quiet asam-qc-opendrive pyxodr
	@touch $(QC_STAMP)

test: $(STAMP) $(QC_STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m tests.bench.run --out docs/BENCHMARKS.md

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(OUT) .pytest_cache
