"""Export (issue 6): SavedModel versions as TF Serving loads them, identical to the in-memory model."""
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfvrec.runs import Run
from tfvrec import cli
from tfvrec import config as config_lib
from tfvrec import registry
from tfvrec.serving import export, module, parts, versions
from tfvrec.serving.model_config import existing_versions, read_model_config
from tfvrec.training import trainer

from conftest import REPO
from planted import planted_dataset

K = 10


SYNTHETIC = ["data.source=synthetic", "data.synthetic.num_users=150", "data.synthetic.num_items=300",
             "data.synthetic.num_creators=30", "data.synthetic.num_artists=20", "trainer.epochs=1",
             "trainer.steps_per_epoch=10", "trainer.batch_size=128", "eval.protocols=[sampled:100]"]
RUNS = {  # model -> (experiment, overrides): tiny runs, trained once per test session
    "bpr": ("bpr", ["model.bpr.embedding_dim=8", "trainer.epochs=3", "trainer.batch_size=64",
                    "trainer.learning_rate=0.05", "eval.protocols=[full]"]),
    "curatornet": ("curatornet", SYNTHETIC + [
        "data.features=pixels", "model.curatornet.num_triplets=2000", "model.curatornet.sampler_chunk=1024",
        "model.curatornet.num_clusters=5", "model.curatornet.cluster_restarts=1", "model.curatornet.cluster_dims=16"]),
    "hasc": ("hasc", SYNTHETIC + ["model.hasc.init_from_bpr=false"]),
}
_LOADED, _EXPORTED = {}, {}


def tiny_run(tmp_path_factory, name="bpr"):
    """A trained tiny run of ``name`` (shared by the export and serving tests of one session)."""
    root = tmp_path_factory.getbasetemp() / "serving_runs"
    model_dir = root / name
    if not (model_dir / "metrics.json").exists():
        experiment, sets = RUNS[name]
        data = [f"data.path={planted_dataset(str(root / 'data'))}", "data.source=directory"] if name == "bpr" \
            else [f"data.cache_dir={root / 'cache'}"]
        trainer.train(config_lib.load_config(None, data + [
            f"runtime.model_dir={model_dir}", "runtime.distribution_strategy=default", "trainer.verbose=0",
            "eval.repeats=1", "eval.baselines=[]", "trainer.validation_split=", *sets], experiment=experiment))
    return str(model_dir)


def tiny_model(tmp_path_factory, name="bpr"):
    """``(config, dataset, model)`` of the tiny run (loaded once per session; do not mutate)."""
    if name not in _LOADED:
        _LOADED[name] = Run(tiny_run(tmp_path_factory, name)).load()
    return _LOADED[name]


def tiny_export(tmp_path_factory, name="bpr", index="brute_force"):
    """Path of version 1 of the tiny run's export (exported once per session); its models.config
    is ``serving_exports/models.config``."""
    key = name if index == "brute_force" else f"{name}_{index}"
    if key not in _EXPORTED:
        config, dataset, model = tiny_model(tmp_path_factory, name)
        config = copy.deepcopy(config)
        export.apply_export_overrides(config, index=index, sets=["export.scann_num_leaves=3",
                                                                 "export.scann_leaves_to_search=3"])
        base = tmp_path_factory.getbasetemp() / "serving_exports" / "models" / key
        # verify=False: every test using these exports loads and checks them itself (the verification
        # step is exercised by the CLI export and the failed-export tests).
        _EXPORTED[key] = export.export_model(config, dataset, model, str(base), verify=False,
                                             run_dir=tiny_run(tmp_path_factory, name))
    return _EXPORTED[key]


def reference_top_k(model, dataset, users, k, exclude_seen=True, config=None):
    """In-memory top-K (external ids, scores) with the user's training items removed.

    A two-stage model (its index vectors only approximate its score: HASC) is the reference written out
    here: the top ``export.rerank_candidates`` by index score, re-ranked by the exact score.
    """
    seen = dataset.train_items_by_user()
    item_ids = np.asarray(dataset.item_ids, str)
    if config is not None and hasattr(model, "query_vectors"):
        users = np.asarray(users)
        index = model.query_vectors(users).numpy() @ model.candidate_vectors().numpy().T
        rows, scores = [], []
        for n, user in enumerate(users):
            index[n, seen[user]] = -np.inf
            candidates = np.argsort(-index[n], kind="stable")[:config.export.rerank_candidates]
            exact = model.score(np.array([user]), candidates[None])[0]
            order = np.argsort(-exact, kind="stable")[:k]
            rows.append(candidates[order])
            scores.append(exact[order])
        return item_ids[np.array(rows)], np.array(scores)
    scores = model.score_all(np.asarray(users))
    if exclude_seen:
        for row, user in enumerate(users):
            scores[row, seen[user]] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return item_ids[order], np.take_along_axis(scores, order, axis=1)


def assert_same_top_k(ids, scores, ref_ids, ref_scores, tol=1e-5):
    """Equal rankings; positions may differ only between items whose scores tie within ``tol``."""
    ids = np.asarray(ids).astype(str)
    np.testing.assert_allclose(scores, ref_scores, rtol=tol, atol=tol)
    for row, col in zip(*np.nonzero(ids != ref_ids)):
        neighbours = [c for c in (col - 1, col + 1) if 0 <= c < ids.shape[1]]
        assert any(abs(ref_scores[row, col] - ref_scores[row, c]) < tol for c in neighbours), \
            f"row {row} position {col}: {ids[row, col]} vs {ref_ids[row, col]} (no tie)"
        assert set(ids[row]) == set(ref_ids[row])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return tiny_model(tmp_path_factory)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return {"root": tmp_path_factory.getbasetemp() / "serving_exports", "brute": tiny_export(tmp_path_factory),
            "scann": tiny_export(tmp_path_factory, index="scann")}


@pytest.fixture(scope="module")
def served(exports):
    return tf.saved_model.load(exports["brute"]["path"])


def _call(loaded_model, signature, **inputs):
    """A loaded signature with the SignatureDef defaults filled in (what TF Serving does)."""
    function = loaded_model.signatures[signature]
    args = {name: tf.zeros([0 if d is None else d for d in spec.shape.as_list()], spec.dtype)
            for name, spec in function.structured_input_signature[1].items()}
    args["k"] = tf.constant(K) if "k" in args else None
    args = {k: v for k, v in args.items() if v is not None}
    args.update({k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in function(**args).items()}


def test_version_layout_signatures_and_models_config(exports):
    brute = exports["brute"]
    assert brute["version"] == 1 and brute["path"].endswith(os.path.join("models", "bpr", "1"))
    for name in ("saved_model.pb", "variables", os.path.join("assets.extra", "tfvrec_export.json"),
                 os.path.join("assets.extra", "tf_serving_warmup_requests")):
        assert os.path.exists(os.path.join(brute["path"], name)), name
    assert os.listdir(os.path.dirname(brute["path"])) == ["1"]  # no temporary left behind
    config = read_model_config(str(exports["root"] / "models.config"))
    entries = {c.name: (c.base_path, c.model_platform) for c in config.config}
    assert entries["bpr"] == (str(exports["root"] / "models" / "bpr"), "tensorflow")
    assert entries["bpr_scann"] == (str(exports["root"] / "models" / "bpr_scann"), "tensorflow")
    defs = versions.signature_defs(brute["path"])
    assert set(defs) == {"serving_default", "score"}  # bpr: no embed_items (id embeddings)
    default = defs["serving_default"]
    assert set(default.inputs) == {"user", "profile", "k", "exclude"}
    assert set(default.defaults) == {"user", "profile", "k", "exclude"}  # every query input is optional
    assert tf.make_ndarray(default.defaults["k"]) == 10
    assert set(default.outputs) == {"item_ids", "scores"}
    assert set(defs["score"].inputs) == {"items", "user", "profile"} and set(defs["score"].outputs) == {"scores"}
    meta = json.load(open(os.path.join(brute["path"], "assets.extra", "tfvrec_export.json")))
    assert meta["model"] == "bpr" and meta["index"] == "brute_force" and meta["custom_ops"] == []
    assert "heuristic" in meta["query_notes"]["profile"]


def test_fresh_process_loads_identical_top_k_and_brute_force_has_only_stock_ops(exports, loaded, tmp_path):
    """In a new process: TF's loader and saved_model_cli see named signatures and, for brute force, stock
    ops only (it loads with no op library at all); ScaNN loads once its ops are registered."""
    config, dataset, model = loaded
    users = np.arange(12)
    user_ids = [str(u) for u in np.asarray(dataset.user_ids, str)[users]]
    profile = [["i0", "i3", ""], ["i1", "", ""]]
    script = textwrap.dedent("""
        import contextlib, io, json, sys
        import numpy as np
        import tfvrec
        import tensorflow as tf
        from tfvrec.serving.versions import custom_ops, saved_model_ops, signature_defs
        brute, scann, out = sys.argv[1:4]
        users, profile = json.loads(sys.argv[4]), json.loads(sys.argv[5])
        assert "scann" not in sys.modules
        result = {"brute_custom": custom_ops(saved_model_ops(brute))}

        def saved_model_cli(*args):  # the saved_model_cli tool's own code path
            from tensorflow.python.tools import saved_model_cli as tool
            sys.argv, out = ["saved_model_cli", *args], io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    tool.main()
                except SystemExit as e:
                    assert not e.code, e.code
            return out.getvalue()
        result["cli_ops"] = saved_model_cli("show", "--dir", brute, "--tag_set", "serve", "--list_ops")
        result["cli_all"] = saved_model_cli("show", "--dir", brute, "--all")
        result["our_ops"] = sorted(saved_model_ops(brute))

        def run(path, tag):
            model = tf.saved_model.load(path)
            defs = signature_defs(path)
            def call(name, **inputs):
                args = {k: tf.make_ndarray(v) for k, v in defs[name].defaults.items()}
                args.update(inputs)
                return model.signatures[name](**{k: tf.constant(v) for k, v in args.items()})
            top = call("serving_default", user=users, k=np.int32(10))
            cold = call("serving_default", profile=profile, k=np.int32(5))
            scored = call("score", user=users, items=top["item_ids"].numpy())
            for key, value in (("ids", top["item_ids"]), ("scores", top["scores"]), ("cold_ids", cold["item_ids"]),
                               ("cold_scores", cold["scores"]), ("score", scored["scores"])):
                result[tag + "_" + key] = value.numpy().astype(str if value.dtype == tf.string else float).tolist()

        run(brute, "brute")
        from scann.scann_ops.py import scann_ops  # registers the Scann ops TF Serving would need
        run(scann, "scann")
        result["scann_custom"] = custom_ops(saved_model_ops(scann))
        json.dump(result, open(out, "w"))
    """)
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "-c", script, exports["brute"]["path"], exports["scann"]["path"], str(out),
                           json.dumps(user_ids), json.dumps(profile)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.load(open(out))
    assert result["brute_custom"] == []
    listed = result["cli_ops"].split("contains the following ops:", 1)[1].split("}", 1)[0]
    ops = {op.strip(" '{\n") for op in listed.split(",")}
    assert ops == set(result["our_ops"])
    assert not [op for op in ops if ">" in op] and {"MatMul", "TopKV2", "LookupTableFindV2"} <= ops
    for text in ("signature_def['serving_default']", "signature_def['score']", "outputs['item_ids']",
                 "outputs['scores']", "inputs['user']", "inputs['k']"):
        assert text in result["cli_all"], text
    assert "output_" not in result["cli_all"]
    assert result["scann_custom"] == ["Scann>ScannSearchBatched", "Scann>TensorsToScann"]
    ref_ids, ref_scores = reference_top_k(model, dataset, users, K)
    item_vectors = model.item_model(tf.range(dataset.num_items, dtype=tf.int64)).numpy()
    index = {item: n for n, item in enumerate(np.asarray(dataset.item_ids, str))}
    for tag in ("brute", "scann"):
        assert_same_top_k(result[f"{tag}_ids"], np.array(result[f"{tag}_scores"]), ref_ids, ref_scores)
        rows = np.vectorize(index.get)(np.array(result[f"{tag}_ids"]))
        np.testing.assert_allclose(result[f"{tag}_score"], model.score(users, rows), rtol=1e-5, atol=1e-5)
        # Cold start = mean of the profile items' factors, bias slot 1, profile items excluded.
        query = np.stack([item_vectors[[index[i] for i in row if i]].mean(0) for row in profile])
        query[:, -1] = 1.0
        cold = query @ item_vectors.T
        for row, items in enumerate(profile):
            cold[row, [index[i] for i in items if i]] = -np.inf
        order = np.argsort(-cold, axis=1)[:, :5]
        assert_same_top_k(result[f"{tag}_cold_ids"], np.array(result[f"{tag}_cold_scores"]),
                          np.asarray(dataset.item_ids, str)[order], np.take_along_axis(cold, order, 1))


def test_exclusions_cold_start_and_padding(served, loaded):
    config, dataset, model = loaded
    seen = dataset.train_items_by_user()
    ids = np.asarray(dataset.item_ids, str)
    user = str(np.asarray(dataset.user_ids, str)[0])
    out = _call(served, "serving_default", user=[user], k=np.int32(dataset.num_items))  # max_k capped at 90
    got = out["item_ids"].astype(str)[0]
    eligible = dataset.num_items - len(seen[0])
    assert not set(got) & set(ids[seen[0]])  # training items never come back
    assert (got[:eligible] != "").all() and (got[eligible:] == "").all()  # the rest is padding
    assert (out["scores"][0, eligible:] == module.PAD_SCORE).all()
    assert (np.diff(out["scores"][0, :eligible]) <= 0).all()
    first = _call(served, "serving_default", user=[user])["item_ids"].astype(str)[0]
    again = _call(served, "serving_default", user=[user], exclude=[[first[0], "", "not-an-item"]])
    assert first[0] not in again["item_ids"].astype(str)[0]
    np.testing.assert_array_equal(again["item_ids"].astype(str)[0, :K - 1], first[1:])


@pytest.mark.parametrize("inputs, message", [
    ({"user": ["no-such-user"]}, "unknown user id(s)"),
    ({"user": ["u1"], "k": np.int32(0)}, "k must be between 1 and max_k=90"),
    ({"user": ["u1"], "k": np.int32(91)}, "k must be between 1 and max_k=90"),
    ({"user": ["u1"], "profile": [["i1"]]}, "send exactly one non-empty query input"),
    ({}, "send exactly one non-empty query input"),
    ({"profile": [["", ""]]}, "every profile row needs at least one item id"),
    ({"profile": [["i1", "nope"]]}, "unknown item id(s) in profile"),
    ({"user": ["u1", "u2"], "exclude": [["i1"]]}, "exclude needs one row per query"),
])
def test_bad_queries_fail_inside_the_graph(served, inputs, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _call(served, "serving_default", **inputs)


def test_a_failed_check_echoes_the_request_bounded():
    """A graph check quotes the offending values, cut to 200 bytes each: TensorFlow keeps the message of a
    signature call that fails, and fifteen unknown 1 MiB ids made it 8 MB (the server grew 8 MB a request)."""
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def lookup(ids):
        return parts.with_checks([parts.assert_that(tf.size(ids) == 0, "unknown ids:", ids)], ids)

    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        lookup(tf.constant(["x" * 2 ** 20] * 15))
    assert "unknown ids:" in caught.value.message and len(caught.value.message) < 20_000  # (was 8 MB)


def test_failed_export_leaves_nothing_and_versions_are_immutable(loaded, tmp_path, monkeypatch):
    config, dataset, model = loaded
    base = tmp_path / "models" / "bpr"
    seen = {}

    def failing_verify(path, requests):
        seen["hidden"] = os.listdir(base)
        seen["versions"] = existing_versions(str(base))
        raise RuntimeError("simulated crash after saving")

    monkeypatch.setattr(versions, "_verify", failing_verify)
    with pytest.raises(RuntimeError, match="simulated crash"):
        export.export_model(config, dataset, model, str(base))
    assert seen["versions"] == [] and len(seen["hidden"]) == 1 and seen["hidden"][0].startswith(".tmp-")
    assert os.listdir(base) == []  # the half-written version was removed, never renamed into place
    assert not (tmp_path / "models.config").exists()
    monkeypatch.undo()
    serving = export.serving_module(config, dataset, model)
    assert versions.write_version(serving, str(base), version=7, verify=False)[0] == 7
    with pytest.raises(export.ExportError, match="already exists"):
        versions.write_version(serving, str(base), version=7)
    assert versions.write_version(serving, str(base), verify=False)[0] == 8  # next free number
    assert existing_versions(str(base)) == [7, 8] and not [d for d in os.listdir(base) if d.startswith(".")]


def test_cli_export_and_index_refusal(run, tmp_path, capsys):
    out = tmp_path / "export" / "models" / "recs"
    assert cli.main(["export", "--run", run, "--out", str(out), "--set", "export.default_k=4"]) == 0
    printed = capsys.readouterr().out
    assert "Exported recs version 1" in printed and "custom ops: none" in printed
    defaults = versions.signature_defs(str(out / "1"))["serving_default"].defaults
    assert tf.make_ndarray(defaults["k"]) == 4
    assert read_model_config(str(tmp_path / "export" / "models.config")).config[0].name == "recs"
    assert cli.main(["export", "--run", run, "--out", str(out), "--set", "model.bpr.l2=0.1"]) == 2
    assert "only export.* keys" in capsys.readouterr().err
    features = tmp_path / "new.npz"
    np.savez(features, item=np.array(["new1"]), features=np.ones((1, 4), np.float32))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["index", "--run", run, "--items", str(features), "--out", str(out)])
    assert exit_info.value.code == 2
    assert "retrain" in capsys.readouterr().err
    assert existing_versions(str(out)) == [1]


def test_every_registered_model_has_an_export_adapter():
    registry.load_models()
    assert {"bpr", "curatornet", "hasc"} <= set(registry.models.names())
    for name, spec in registry.models.items():
        assert callable(registry.resolve(spec.serving)), name


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    info = tiny_export(tmp_path_factory, "curatornet")
    return info, tiny_model(tmp_path_factory, "curatornet"), tf.saved_model.load(info["path"])


def test_curatornet_export_matches_the_model_for_users_profiles_and_new_content(content):
    info, (config, dataset, model), served = content
    assert info["signatures"] == ["embed_items", "score", "serving_default"]
    users = np.arange(15)
    out = _call(served, "serving_default", user=np.asarray(dataset.user_ids, str)[users])
    assert_same_top_k(out["item_ids"], out["scores"], *reference_top_k(model, dataset, users, K))
    item_ids = np.asarray(dataset.item_ids, str)
    catalogue = model.item_vectors().numpy()
    content = model.item_content.numpy()
    # Cold start from item ids is the model's own profile tower over those items (minus the items themselves).
    query = model.encode_profiles(tf.ragged.constant([[3, 7], [1]], dtype=tf.int64)).numpy()
    scores = query @ catalogue.T
    scores[0, [3, 7]] = scores[1, 1] = -np.inf
    order = np.argsort(-scores, axis=1)[:, :K]
    cold = _call(served, "serving_default", profile=[[item_ids[3], item_ids[7]], [item_ids[1], ""]])
    assert_same_top_k(cold["item_ids"], cold["scores"], item_ids[order], np.take_along_axis(scores, order, 1))
    # ... and from raw content vectors (all-zero rows pad), the same query without id exclusions.
    padding = np.zeros_like(content[0])
    embedded = _call(served, "serving_default", profile_embeddings=np.stack([
        np.stack([content[3], content[7]]), np.stack([content[1], padding])]))
    scores = query @ catalogue.T
    order = np.argsort(-scores, axis=1)[:, :K]
    assert_same_top_k(embedded["item_ids"], embedded["scores"], item_ids[order], np.take_along_axis(scores, order, 1))
    np.testing.assert_allclose(_call(served, "embed_items", features=content[:5])["embeddings"], catalogue[:5],
                               rtol=1e-5, atol=1e-6)


def test_index_adds_new_items_to_a_content_model_without_retraining(content, tmp_path):
    info, (config, dataset, model), first = content
    content_vectors = model.item_content.numpy()
    base = tmp_path / "models" / "curatornet"
    shutil.copytree(info["path"], base / "1")
    meta_path = base / "1" / "assets.extra" / "tfvrec_export.json"
    meta = json.load(open(meta_path))
    assert meta["default_k"] == 10
    json.dump(dict(meta, default_k=7), open(meta_path, "w"))  # as if version 1 had been exported with K=7
    user = str(np.asarray(dataset.user_ids, str)[0])
    before = _call(first, "serving_default", user=[user])
    best = str(before["item_ids"].astype(str)[0, 0])
    best_row = int(np.flatnonzero(np.asarray(dataset.item_ids, str) == best)[0])
    all_scores = model.score_all(np.array([0]))[0]
    worst_row = int(np.argmin(all_scores))
    # A twin of the user's best item and one of their worst: new ids the model never saw,
    # whose scores are known in advance, wherever the content model puts other vectors.
    features = tmp_path / "new_items.npz"
    np.savez(features, item=np.array(["twin", "fresh"]),
             features=np.stack([content_vectors[best_row], content_vectors[worst_row]]).astype(np.float32))
    run_dir = json.load(open(os.path.join(info["path"], "assets.extra", "tfvrec_export.json")))["run"]
    assert cli.main(["index", "--run", run_dir, "--items", str(features), "--out", str(base)]) == 0
    assert existing_versions(str(base)) == [1, 2]
    meta = json.load(open(base / "2" / "assets.extra" / "tfvrec_export.json"))
    assert meta["num_items"] == dataset.num_items + 2
    assert meta["default_k"] == 7 and meta["index"] == "brute_force"  # settings kept from version 1
    second = tf.saved_model.load(str(base / "2"))
    after = _call(second, "serving_default", user=[user])
    top2 = set(after["item_ids"].astype(str)[0, :2])
    assert top2 == {best, "twin"} and np.isclose(after["scores"][0, 0], after["scores"][0, 1], rtol=1e-5)
    scored = _call(second, "score", user=[user], items=[["twin", "fresh", best]])
    np.testing.assert_allclose(scored["scores"][0], all_scores[[best_row, worst_row, best_row]], rtol=1e-5, atol=1e-6)


def test_hasc_export_reranks_exactly_and_explains(tmp_path_factory):
    config, dataset, model = tiny_model(tmp_path_factory, "hasc")
    info = tiny_export(tmp_path_factory, "hasc")
    assert info["signatures"] == ["explain", "score", "serving_default"]
    served = tf.saved_model.load(info["path"])
    defs = versions.signature_defs(info["path"])
    assert "profile" not in defs["serving_default"].inputs  # per-user parameters: no cold start
    users = np.arange(15)
    user_ids, item_ids = np.asarray(dataset.user_ids, str), np.asarray(dataset.item_ids, str)
    out = _call(served, "serving_default", user=user_ids[users])
    assert_same_top_k(out["item_ids"], out["scores"], *reference_top_k(model, dataset, users, K, config=config))
    rows = np.arange(15) * 7 % dataset.num_items
    np.testing.assert_allclose(_call(served, "score", user=user_ids[users], items=item_ids[rows][:, None])["scores"],
                               model.score(users, rows[:, None]), rtol=1e-5, atol=1e-6)
    explained = _call(served, "explain", user=user_ids[users], item=item_ids[rows], top=np.int32(3))
    from tfvrec.models.hasc.explain import attention_arrays
    reference = attention_arrays(model, users, rows)
    np.testing.assert_allclose(explained["aspects"], reference["gamma"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(explained["score"], reference["score"], rtol=1e-5, atol=1e-6)
    for b in range(len(users)):
        alpha = reference["alpha"][b]
        order = np.argsort(-alpha, kind="stable")[:3]
        expected = [item_ids[reference["uploads"][b][o]] if alpha[o] > 0 else "" for o in order]
        assert list(explained["uploads"].astype(str)[b]) == expected + [""] * (3 - len(expected))
        creator = reference["creator"][b]
        assert explained["creator"].astype(str)[b] == (user_ids[creator] if creator >= 0 else "")


@pytest.mark.parametrize("change, message", [
    ({"item_ids": np.array(["a", "b", "a"])}, "item id 'a' appears 2 times"),
    ({"item_ids": np.array(["a", "", "c"])}, "an empty item id"),
    ({"item_vectors": np.full((3, 2), np.nan, np.float32)}, "item vectors contain NaN"),
    ({"user_vectors": np.zeros((2, 5), np.float32)}, "expected user vectors [2, 2]"),
    ({"distance": "cosine"}, "distance must be dot_product or squared_l2"),
])
def test_inconsistent_adapter_output_is_refused(change, message):
    given = dict(model_name="toy", item_ids=np.array(["a", "b", "c"]), item_vectors=np.eye(3, 2, dtype=np.float32),
                 user_ids=np.array(["u", "v"]), user_vectors=np.ones((2, 2), np.float32))
    given.update(change)
    with pytest.raises(export.ExportError, match=re.escape(message)):
        module.ServingModule(parts.ServingParts(**given), config_lib.ExportConfig())
