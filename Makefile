# cribo-mm: the two commands of the README are `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export CRIBO_VENV := $(abspath $(VENV))

.PHONY: env test test-fast demo clean-demo

env:
	@bash tools/setup_env.sh

test: env
	$(PY) -m pytest -q tests

test-fast: env
	$(PY) -m pytest -q -m "not slow" tests

demo: env
	$(PY) tools/train.py configs/cribo/vit-t16_demo.py --work-dir work_dirs/demo

clean-demo:
	rm -rf work_dirs/demo
