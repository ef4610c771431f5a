# Every target sets up (or reuses) the virtual environment inside the repo first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat setup.py | sha1sum | cut -c1-10)

.PHONY: setup demo test bench bench-list bench-stale bench-bpr bench-hasc bench-peers bench-retrieval bench-shards \
	bench-features bench-scann bench-serving bench-curatornet bench-cdl bench-cnn-permlp bench-new-items chaos-train chaos-serve clean

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
	$(PY) -m pytest -q -rs -p no:cacheprovider tests

# Benchmarks: every section of docs/benchmarks.md is a section of tools/bench.py (tools/harness/: stamp, stale
# check, quick modes). `make bench SECTIONS="scann peers_ann"` runs any of them, QUICK=1 at toy sizes (prints,
# writes nothing); `make bench-list` lists them, `make bench-stale` names the figures older than their code.
# Run them with the machine otherwise idle: each section records the commit, date and load averages it ran at.
bench: setup
	$(PY) tools/bench.py --sections $(SECTIONS) $(if $(QUICK),--quick)

bench-list: setup
	$(PY) tools/bench.py --list

bench-stale: setup
	$(PY) tools/bench.py --stale

bench-bpr: setup
	$(PY) tools/bench.py --sections bpr_flickr_fs

# Hours on 2 CPU cores; reuses finished runs (same measured code) and resumes killed ones from runs/bench_hasc_flickr/.
bench-hasc: setup
	$(PY) tools/bench.py --sections hasc_flickr_fs hasc_flickr_fs_shipped

# tfrs' retrieval objective vs the pairwise one (CuratorNet on UGallery and posters, BPR-MF on F.S).
bench-retrieval: setup
	$(PY) tools/bench.py --sections retrieval_objective

# Issue 16's and 30's chaos runs (loopback only, bounded): sections chaos_train, chaos_serve and chaos_serve_hostile;
# ~35 and ~10 min on 2 busy cores. A run whose checks fail exits non-zero.
chaos-train: setup
	$(PY) tools/bench.py --sections chaos_train

chaos-serve: setup
	$(PY) tools/bench.py --sections chaos_serve chaos_serve_hostile

# tfvrec against its peers (cornac, implicit, faiss, hnswlib), side by side: sections features, peers_bpr,
# peers_bpr_posters, peers_vbpr, peers_ann, peers_ann_real, peers_serving (installs the bench extra into .venv).
bench-peers: setup
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) tools/bench.py --sections peers

bench-features: setup
	$(PY) tools/bench.py --sections features

bench-scann: setup
	$(PY) tools/bench.py --sections scann

bench-serving: setup
	$(PY) tools/bench.py --sections serving_load

bench-curatornet: setup
	$(PY) tools/bench.py --sections curatornet_ugallery curatornet_posters curatornet_throughput

# Sharded retrieval on one machine: latency and recall of S = 1, 2, 4 shards.
bench-shards: setup
	$(PY) tools/bench.py --sections sharded_retrieval

# CDL on MovieLens posters (the paper's 20-of-100 protocol) against its baselines; ~40 min on 2 busy cores.
bench-cdl: setup
	$(PY) tools/bench.py --sections cdl-posters

# CNN-PerMLP and its baselines on MovieLens posters and Last.fm-2k (F1/P/R@K, repeats, paired t):
# about 40 min on 2 busy cores; reuses finished runs from runs/bench_cnn_permlp/.
bench-cnn-permlp: setup
	$(PY) tools/bench.py --sections cnn_permlp

# New items (issue 27): CuratorNet, CDL, VBPR vs baselines on items nobody interacted with in training, on
# MovieLens posters and UGallery (validation grids, 3 seeds, paired t-tests); hours on 2 CPU cores; reuses
# finished runs from runs/bench_new_items/.
bench-new-items: setup
	$(PY) tools/bench.py --sections new-items-posters new-items-ugallery

clean:
	rm -rf runs data_cache
