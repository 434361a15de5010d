# The two set-up commands of the README: `make demo` and `make test`.
# Each creates the virtual environment and installs what it needs by itself.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# ONNX Runtime Web for the exported web page, pinned by export/web/package-lock.json.
WEB    := export/web
ORT    := $(WEB)/node_modules/.installed

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test benchmark clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(ORT): $(WEB)/package.json $(WEB)/package-lock.json
	npm ci --prefix $(WEB) --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(ORT)

demo: $(STAMP) $(ORT)
	$(BIN)/keras-vae demo

test: $(STAMP) $(ORT)
	$(BIN)/python -m pytest -q

benchmark: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info $(WEB)/node_modules
