# Two entry points for a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
# training/ and bench/ import from the repository root; the segzero_ros module lives in segzero_ros/.
export PYTHONPATH := $(CURDIR):$(CURDIR)/segzero_ros

.PHONY: venv vllm datumaro demo test lint clean

venv:
	@bash scripts/setup_venv.sh
	@bash scripts/build_interfaces.sh $(VENV)
	@bash scripts/register_ament.sh $(VENV)
	@bash scripts/install_ros_tools.sh $(VENV)

# vLLM's CPU build in its own venv (.venv-vllm), the server `segzero serve` starts; the tests use a real one.
vllm:
	@bash scripts/setup_vllm.sh

# datumaro (CVAT's import engine) in its own venv (.venv-datumaro): the tests read the COCO export with it.
datumaro:
	@bash scripts/setup_datumaro.sh

demo: venv
	$(PY) -m segzero_ros.cli demo --out demo_out

test: venv vllm datumaro lint
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .venv-vllm .venv-vllm.log .venv-datumaro .venv-datumaro.log demo_out .pytest_cache .ruff_cache .hypothesis
