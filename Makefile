# cribo-mm: the two commands of the README are `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export CRIBO_VENV := $(abspath $(VENV))
# The real-data tests read the CamVid copy named here (skipped when it is
# absent): `make test CRIBO_CAMVID=/path/to/camvid` for another one.
CRIBO_CAMVID ?= $(abspath ../shared/data/camvid)
export CRIBO_CAMVID

.PHONY: env test test-fast demo clean-demo orl-demo readme-figures

env:
	@bash tools/setup_env.sh

# Test processes (pytest-xdist; a test file stays in one process, so its
# module fixtures are built once). TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2

test: env
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

test-fast: env
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow" tests

# `make demo`: the CPU recipe on the embedded demo scenes. CrIBo and its
# DINO twin train at equal budget side by side, one core each
# (configs/cribo/vit-t16_demo.py, configs/dino/dino_vit-t16_demo.py), then
# dense nearest-neighbour retrieval evaluates random init, DINO and CrIBo
# (teachers and students) on the demo validation split, two at a time.
# One thread per process: on a busy machine two threads per process spend
# most of their time waiting for each other (measured 10x slower).
# DEMO_SEED=1 make demo for another seed (own folder).
DEMO_SEED ?= 0
DEMO_DIR := work_dirs/demo/seed$(DEMO_SEED)
DEMO_CFG := configs/cribo/vit-t16_demo.py
DEMO_DINO_CFG := configs/dino/dino_vit-t16_demo.py
DEMO_RUN := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY)
DEMO_TRAIN := --cfg-options randomness.seed=$(DEMO_SEED)
DEMO_EVAL := --dataset configs/_base_/datasets/demo_seg.py --img-size 128 \
	--fraction 1 --seed 0 --aug-epochs 1 --no-aug --no-progress
DEMO_EVALS := demo-eval-random demo-eval-dino demo-eval-cribo \
	demo-eval-dino-student demo-eval-cribo-student
DEMO_SUMMARY := tools/analysis/summarize_dense_nn.py --baseline random-init \
	random-init=$(DEMO_DIR)/dense_nn_random \
	dino-teacher=$(DEMO_DIR)/dense_nn_dino \
	cribo-teacher=$(DEMO_DIR)/dense_nn_cribo \
	dino-student=$(DEMO_DIR)/dense_nn_dino_student \
	cribo-student=$(DEMO_DIR)/dense_nn_cribo_student \
	--describe \
	'random-init=the same ViT as training starts (reference init, seed $(DEMO_SEED)), no training' \
	'dino-teacher=EMA teacher after DINO (global term only)' \
	'cribo-teacher=EMA teacher after CrIBo, same budget as DINO' \
	'dino-student=DINO student (the weights trained by gradients)' \
	'cribo-student=CrIBo student'

demo: env
	@mkdir -p $(DEMO_DIR)
	@date +%s > $(DEMO_DIR)/.start
	@echo "training CrIBo and DINO side by side (logs: $(DEMO_DIR)/{cribo,dino}.log)"
	@$(MAKE) --no-print-directory -j2 demo-train-cribo demo-train-dino
	@echo "dense NN retrieval on the demo validation split (logs: $(DEMO_DIR)/dense_nn_*.log)"
	@$(MAKE) --no-print-directory -j2 $(DEMO_EVALS)
	@$(DEMO_RUN) tools/analysis/plot_training_curves.py $(DEMO_DIR)/cribo
	@$(DEMO_RUN) tools/analysis/plot_training_curves.py $(DEMO_DIR)/dino
	@echo; echo 'Dense nearest-neighbour retrieval on the demo validation split (seed $(DEMO_SEED)):'
	@$(DEMO_RUN) $(DEMO_SUMMARY)
	@echo; echo "make demo took $$(( $$(date +%s) - $$(cat $(DEMO_DIR)/.start) )) s"
	@echo "checkpoints: $(DEMO_DIR)/{cribo,dino}/ (TensorBoard: tensorboard --logdir $(DEMO_DIR))"
	@echo "curves:      $(DEMO_DIR)/{cribo,dino}/training_curves.png"
	@echo "results:     $(DEMO_DIR)/dense_nn_*/*.json, pictures in $(DEMO_DIR)/dense_nn_cribo/show"

.PHONY: demo-train-cribo demo-train-dino $(DEMO_EVALS)
# $(call demo_step,LOG,COMMAND): run quietly into LOG, show its end on failure
demo_step = $(2) > $(DEMO_DIR)/$(1).log 2>&1 || { tail -40 $(DEMO_DIR)/$(1).log; exit 1; }

demo-train-cribo:
	@$(call demo_step,cribo,$(DEMO_RUN) tools/train.py $(DEMO_CFG) --work-dir $(DEMO_DIR)/cribo $(DEMO_TRAIN))
	@echo "  CrIBo trained: $$(grep -o 'loss_global: [0-9.]*' $(DEMO_DIR)/cribo.log | tail -1)"
demo-train-dino:
	@$(call demo_step,dino,$(DEMO_RUN) tools/train.py $(DEMO_DINO_CFG) --work-dir $(DEMO_DIR)/dino $(DEMO_TRAIN))
	@echo "  DINO trained:  $$(grep -o 'loss_global: [0-9.]*' $(DEMO_DIR)/dino.log | tail -1)"
demo-eval-random:
	@$(call demo_step,dense_nn_random,$(DEMO_RUN) tools/analysis/dense_nn_retrieval.py $(DEMO_CFG) none $(DEMO_EVAL) --init-seed $(DEMO_SEED) --work-dir $(DEMO_DIR)/dense_nn_random)
	@echo "  random init:   $$(grep -o 'mIoU [0-9][0-9.]*' $(DEMO_DIR)/dense_nn_random.log | tail -1)"
demo-eval-dino:
	@$(call demo_step,dense_nn_dino,$(DEMO_RUN) tools/analysis/dense_nn_retrieval.py $(DEMO_DINO_CFG) $(DEMO_DIR)/dino $(DEMO_EVAL) --work-dir $(DEMO_DIR)/dense_nn_dino)
	@echo "  DINO teacher:  $$(grep -o 'mIoU [0-9][0-9.]*' $(DEMO_DIR)/dense_nn_dino.log | tail -1)"
demo-eval-cribo:
	@$(call demo_step,dense_nn_cribo,$(DEMO_RUN) tools/analysis/dense_nn_retrieval.py $(DEMO_CFG) $(DEMO_DIR)/cribo $(DEMO_EVAL) --work-dir $(DEMO_DIR)/dense_nn_cribo --show-dir $(DEMO_DIR)/dense_nn_cribo/show)
	@echo "  CrIBo teacher: $$(grep -o 'mIoU [0-9][0-9.]*' $(DEMO_DIR)/dense_nn_cribo.log | tail -1)"
demo-eval-dino-student:
	@$(call demo_step,dense_nn_dino_student,$(DEMO_RUN) tools/analysis/dense_nn_retrieval.py $(DEMO_DINO_CFG) $(DEMO_DIR)/dino $(DEMO_EVAL) --prefix backbone. --work-dir $(DEMO_DIR)/dense_nn_dino_student)
	@echo "  DINO student:  $$(grep -o 'mIoU [0-9][0-9.]*' $(DEMO_DIR)/dense_nn_dino_student.log | tail -1)"
demo-eval-cribo-student:
	@$(call demo_step,dense_nn_cribo_student,$(DEMO_RUN) tools/analysis/dense_nn_retrieval.py $(DEMO_CFG) $(DEMO_DIR)/cribo $(DEMO_EVAL) --prefix backbone. --work-dir $(DEMO_DIR)/dense_nn_cribo_student)
	@echo "  CrIBo student: $$(grep -o 'mIoU [0-9][0-9.]*' $(DEMO_DIR)/dense_nn_cribo_student.log | tail -1)"

clean-demo:
	rm -rf work_dirs/demo work_dirs/orl_demo

# ORL stages 1-3 on the demo scenes (CPU, tiny ResNet-18; a few minutes)
orl-demo: env
	$(PY) tools/orl/run_pipeline.py --work-dir work_dirs/orl_demo

# The README pictures in docs/images/ (the only target that writes there; the
# tools themselves write under work_dirs/). Needs `make demo` first; the ORL
# picture needs the CamVid pipeline run of the README (skipped without it).
FIGURES := docs/images
FIG_RUN := $(DEMO_DIR)/cribo
FIG_CKPT = $(shell cat $(FIG_RUN)/last_checkpoint 2>/dev/null)
ORL_CAMVID := work_dirs/camvid/orl/stage2/correspondence.json
readme-figures: env
	@test -f "$(FIG_CKPT)" || { echo "no checkpoint in $(FIG_RUN): run make demo first"; exit 1; }
	$(PY) tools/analysis/visualize_objects.py $(DEMO_CFG) $(FIG_CKPT) \
		--indices 2 5 --out-dir work_dirs/vis_objects --grid $(FIGURES)/cribo_objects.png --colors 256
	$(PY) tools/analysis/visualize_neighbours.py $(DEMO_CFG) $(FIG_CKPT) \
		--num-query-images 8 --bank-size 64 --num-pairs 6 --panel-size 128 --colors 256 \
		--out $(FIGURES)/cribo_neighbours.png --json work_dirs/vis_neighbours/pairs.json
	$(PY) tools/analysis/plot_training_curves.py $(FIG_RUN) --size 1000 600 --colors 256 \
		--title 'CrIBo demo (configs/cribo/vit-t16_demo.py)' --out $(FIGURES)/cribo_training_curves.png
	@if [ -f $(ORL_CAMVID) ]; then \
		$(PY) tools/orl/visualize_pairs.py $(ORL_CAMVID) --images 120 200 --neighbours 1 \
			--height 200 --colors 96 --out-dir work_dirs/orl_pairs --grid $(FIGURES)/orl_camvid_pairs.png; \
	else echo "skipped $(FIGURES)/orl_camvid_pairs.png: $(ORL_CAMVID) missing (README, ORL on CamVid)"; fi
