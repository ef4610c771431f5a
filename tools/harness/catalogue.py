"""Every section, in the order ``tools/bench.py`` runs them (``features`` first: its feature file feeds the
posters' sections), and the groups several sections answer to.

A module listed here has ``SECTIONS = [Section(...), ...]``; every section of docs/benchmarks.md is
declared by one of them (``tests/tools/test_catalogue.py``), the chaos runs of ``tools/chaos_train.py``
and ``tools/chaos_serve.py`` (``make chaos-train``, ``make chaos-serve``) included.
"""
import importlib

MODULES = (
    "bench_features",
    "bench_bpr_flickr",
    "bench_scann",
    "bench_serving_load",
    "bench_shards",
    "bench_curatornet",
    "bench_retrieval",
    "bench_hasc_flickr",
    "bench_cdl",
    "bench_cnn_permlp",
    "bench_new_items",
    "peers.bpr",
    "peers.bpr_posters",
    "peers.vbpr",
    "peers.ann",
    "peers.ann_real",
    "peers.serving",
    "chaos_train",
    "chaos_serve",
)

_SECTIONS = None


def sections():
    """``{name: Section}`` of every module of `MODULES`, in run order."""
    global _SECTIONS
    if _SECTIONS is None:
        found = {}
        for module in MODULES:
            for section in importlib.import_module(module).SECTIONS:
                if section.name in found:
                    raise ValueError(f"section {section.name} declared twice ({module})")
                found[section.name] = section
        _SECTIONS = found
    return dict(_SECTIONS)


def groups():
    """``{group: [section names]}``: every section's group and make target (e.g. ``peers``, ``bench-peers``)."""
    out = {}
    for section in sections().values():
        for key in {section.group, section.make} - {""}:
            out.setdefault(key, []).append(section.name)
    return out


def select(names):
    """The sections named (or in the groups named; ``all``: every one), in run order."""
    known, grouped = sections(), groups()
    wanted = set()
    for name in names:
        if name == "all":
            wanted.update(known)
        elif name in known:
            wanted.add(name)
        elif name in grouped:
            wanted.update(grouped[name])
        else:
            raise KeyError(f"no section or group {name!r}; python tools/bench.py --list shows them")
    return [s for n, s in known.items() if n in wanted]
