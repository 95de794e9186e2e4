# cribo-mm: the two commands of the README are `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export CRIBO_VENV := $(abspath $(VENV))

.PHONY: env test test-fast demo clean-demo orl-demo

env:
	@bash tools/setup_env.sh

test: env
	$(PY) -m pytest -q tests

test-fast: env
	$(PY) -m pytest -q -m "not slow" tests

DEMO_DIR := work_dirs/demo
DEMO_CFG := configs/cribo/vit-t16_demo.py
DEMO_EVAL := --dataset configs/_base_/datasets/demo_seg.py --img-size 256 \
	--fraction 1 --seed 0

demo: env
	$(PY) tools/train.py $(DEMO_CFG) --work-dir $(DEMO_DIR)
	$(PY) tools/analysis/dense_nn_retrieval.py $(DEMO_CFG) none $(DEMO_EVAL) \
		--work-dir $(DEMO_DIR)/dense_nn_random
	$(PY) tools/analysis/dense_nn_retrieval.py $(DEMO_CFG) $(DEMO_DIR) $(DEMO_EVAL) \
		--work-dir $(DEMO_DIR)/dense_nn_cribo --show-dir $(DEMO_DIR)/dense_nn_cribo/show
	@echo; echo 'Dense nearest-neighbour retrieval on the demo validation split:'
	@$(PY) tools/analysis/summarize_dense_nn.py \
		random-init=$(DEMO_DIR)/dense_nn_random cribo-teacher=$(DEMO_DIR)/dense_nn_cribo
	@echo; echo "checkpoint: $$(cat $(DEMO_DIR)/last_checkpoint)"
	@echo "logs:       $(DEMO_DIR)/<timestamp>/ (TensorBoard: tensorboard --logdir $(DEMO_DIR))"
	@echo "results:    $(DEMO_DIR)/dense_nn_{random,cribo}/*.json, pictures in $(DEMO_DIR)/dense_nn_cribo/show"

clean-demo:
	rm -rf work_dirs/demo work_dirs/orl_demo

# ORL stages 1-3 on the demo scenes (CPU, tiny ResNet-18; a few minutes)
orl-demo: env
	$(PY) tools/orl/run_pipeline.py --work-dir work_dirs/orl_demo
