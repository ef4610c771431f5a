# Every target sets up (or reuses) the virtual environment inside the repo first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat setup.py | sha1sum | cut -c1-10)

.PHONY: setup demo test bench-bpr bench-hasc bench-peers bench-retrieval bench-shards chaos-train chaos-serve clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[test,beam]'
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

# The zoo's point on the embedded synthetic art store, where every work sells once: each collector's
# last basket holds works nobody bought before, ranked among the works without a training purchase;
# CuratorNet against VisRank, VBPR, BPR-MF, popularity and random (configs/demo.yaml), then what to try next.
demo: setup
	$(VENV)/bin/tfvrec train --config configs/demo.yaml
	@echo ""
	@echo "Next:"
	@echo "  $(VENV)/bin/tensorboard --logdir runs/demo/tensorboard          # training curves"
	@echo "  $(VENV)/bin/tfvrec recommend --run runs/demo --user u001 -k 5    # top-K for a known user"
	@echo "  $(VENV)/bin/tfvrec report --run runs/demo --out report.html       # history and top-K as images, offline page"
	@echo "  $(VENV)/bin/tfvrec export --run runs/demo --out export/models/demo"
	@echo "  $(VENV)/bin/tfvrec serve --model_config_file export/models.config --port 8500 --rest_port 8501"
	@echo "  docs/python_api.md: the same from Python; docs/models/: every model of the zoo"

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -p no:cacheprovider tests

bench-bpr: setup
	$(PY) tools/bench_bpr_flickr.py

# Hours on 2 CPU cores; reuses finished runs and resumes killed ones from runs/bench_hasc_flickr/.
bench-hasc: setup
	$(PY) tools/bench_hasc_flickr.py

# tfrs' retrieval objective vs the pairwise one (CuratorNet on UGallery and posters, BPR-MF on F.S).
bench-retrieval: setup
	$(PY) tools/bench_retrieval.py

# Issue 16's chaos runs (loopback only, bounded; figures into docs/benchmarks.md): ~35 and ~8 min on 2 busy cores.
chaos-train: setup
	$(PY) tools/chaos_train.py

chaos-serve: setup
	$(PY) tools/chaos_serve.py

# tfvrec against its peers (cornac, implicit, faiss, hnswlib), side by side in one run: sections peers_bpr,
# peers_vbpr, peers_ann, peers_serving and features (installs the bench extra into .venv). Run it with the
# machine otherwise idle; `.venv/bin/python tools/bench_peers.py --sections ann --quick --report /tmp/x.md`
# checks one section's code at toy sizes without touching docs/benchmarks.md.
bench-peers: setup
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) tools/bench_peers.py

# Sharded retrieval on one machine: latency and recall of S = 1, 2, 4 shards.
bench-shards: setup
	$(PY) tools/bench_shards.py

# CDL on MovieLens posters (the paper's 20-of-100 protocol) against its baselines; ~40 min on 2 busy cores.
.PHONY: bench-cdl
bench-cdl: setup
	$(PY) tools/bench_cdl.py

clean:
	rm -rf runs data_cache

# CNN-PerMLP and its baselines on MovieLens posters and Last.fm-2k (F1/P/R@K, repeats, paired t):
# about 40 min on 2 busy cores; reuses finished runs from runs/bench_cnn_permlp/.
.PHONY: bench-cnn-permlp
bench-cnn-permlp: setup
	$(PY) tools/bench_cnn_permlp.py
