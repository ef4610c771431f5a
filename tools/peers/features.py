"""Section ``features`` — point 6: EfficientNet-Lite0 feature extraction on the 3,872 MovieLens posters.

``tools/bench_features.py``'s benchmark, called as it is (fresh extraction with the same code as
``tfvrec features``, throughput, CPU time, the genre sanity check), so that one bench-peers run records it
in its usual section. Its output file is the feature file ``peers_vbpr`` feeds both VBPRs.
``--quick`` runs it unchanged (about a minute on the 2 cores; there is no smaller real poster set).
"""
SECTION = "features"
TITLE = "Visual features: `tfvrec features` on the MovieLens posters"


def run(args):
    import bench_features
    text, _ = bench_features.measure(["--no-report"])
    return text.replace("Command: `python tools/bench_features.py`",
                        "Command: `.venv/bin/python tools/bench_peers.py --sections features` "
                        "(= `python tools/bench_features.py`)", 1)
