# Every target creates the virtual environment on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.miziha-installed

.PHONY: test demo tour cifar10 segmentation leaderboard bench bench-networks bench-models bench-inference export clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[cpu,examples,onnx,test]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

# The quick comparison: SwinResNet vs ResNet50 at 32x32 on digits, plus the 224x224 speed pair.
demo: $(STAMP)
	$(PY) examples/cifar10_compare.py --quick --overwrite

# The full reference protocol on CIFAR-10 (hours on a GPU). DATA=path/to/cifar-10-python.tar.gz
cifar10: $(STAMP)
	$(PY) examples/cifar10_compare.py $(if $(DATA),--data-file $(DATA)) $(ARGS)

# ResNet50 and every <mixer>_resnet50 in MIXERS, 3 seeds, digits and photo tiles (about an
# hour on 2 idle cores; run it again to resume): docs/leaderboard.md, docs/leaderboard.png,
# benchmarks/results/leaderboard.json. ARGS=--render-only re-renders from finished cells.
leaderboard: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) examples/leaderboard.py $(ARGS)

segmentation: $(STAMP)
	$(PY) examples/swin_unet_segmentation.py $(ARGS)

tour: $(STAMP)
	$(PY) examples/swint_tour.py

bench: $(STAMP)
	$(PY) benchmarks/bench_layers.py

bench-networks: $(STAMP)
	$(PY) benchmarks/bench_networks.py

# Each family's smallest network against PaddleClas's (installed without its pinned
# dependencies, which the backbones do not need).
bench-models: $(STAMP)
	$(PY) -m pip install -q --no-deps paddleclas==2.6.0
	$(PY) -m pip install -q tqdm easydict prettytable ujson pyyaml
	$(PY) benchmarks/bench_models.py $(ARGS)

bench-inference: $(STAMP)
	$(PY) benchmarks/bench_inference.py $(ARGS)

# Both deployment formats of a registered network, and their parity: make export MODEL=swin_tiny_patch4_window7_224
export: $(STAMP)
	@test -n "$(MODEL)" || { echo "usage: make export MODEL=name (see miziha.list_models())"; exit 2; }
	$(PY) examples/export_model.py $(MODEL) --out exported $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache exported
