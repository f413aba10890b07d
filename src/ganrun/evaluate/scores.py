"""Generated images -> FID, KID, classifier score, class coverage, precision/recall, with floors.

`Scorer` holds the feature network and the real reference (the test split) and compares
any set of images with it. Every result comes with its floor: the same metric for real
*training* images against the same test images, at the same sample count. A generator that
matched the data distribution perfectly would score about the floor, so the floor is what a
number should be read against (FID is biased upwards at small n; the floor is biased the
same way). Floors are computed once per dataset, network and n, and cached next to the
network. The statistics themselves are `ganrun.evaluate.image_metrics`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ganrun.data.images import ImageData
from ganrun.evaluate import image_metrics as im
from ganrun.evaluate.feature_net import FeatureNet, write_json_atomic

log = logging.getLogger(__name__)

KID_SUBSETS, KID_SUBSET_SIZE, SCORE_SPLITS, PR_K = 100, 1000, 10, 3
SUBSET_SEED = 0  # which test / training images are used when n is below the split size

DEFINITIONS = {
    "fid": "Frechet distance between Gaussians fitted to the features of generated and real "
           "test images (Heusel et al. 2017); lower is better, 0 = identical statistics",
    "kid": "kernel inception distance: unbiased MMD^2 with kernel (x.y/d + 1)^3 on the features, "
           f"mean over {KID_SUBSETS} subset pairs of up to {KID_SUBSET_SIZE} (Binkowski et al. "
           "2018); lower is better, ~0 = same distribution; std_error over subsets",
    "classifier_score": "Inception-Score analogue with the dataset's classifier: "
                        f"exp E[KL(p(y|x) || p(y))], mean over {SCORE_SPLITS} splits; in [1, k], "
                        "higher is better",
    "class_coverage": "entropy of the histogram of predicted classes / log k; in [0, 1], "
                      "1 = every class equally often (classes_covered counts classes seen)",
    "precision": f"fraction of generated images inside the real k-NN manifold (k={PR_K}, "
                 "Kynkaanniemi et al. 2019): sample quality; higher is better",
    "recall": f"fraction of real test images inside the generated k-NN manifold (k={PR_K}): "
              "how much of the data the generator covers; higher is better",
}


def _subset(count: int, n: int) -> np.ndarray:
    """Indices of a fixed random subset of size min(n, count), in sorted order."""
    if n >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(SUBSET_SEED).choice(count, n, replace=False))


def compare(real_feats, fake_feats, fake_probs) -> dict[str, dict]:
    """All metrics of one generated (or training) set against the real reference."""
    kid, kid_se = im.kernel_inception_distance(real_feats, fake_feats, KID_SUBSETS,
                                               KID_SUBSET_SIZE, seed=SUBSET_SEED)
    score, score_std = im.classifier_score(fake_probs, min(SCORE_SPLITS, len(fake_probs)))
    coverage = im.class_coverage(fake_probs)
    precision, recall = im.precision_recall(real_feats, fake_feats, k=PR_K)
    return {
        "fid": {"value": im.frechet_distance(real_feats, fake_feats)},
        "kid": {"value": kid, "std_error": kid_se},
        "classifier_score": {"value": score, "std": score_std},
        "class_coverage": {"value": coverage["normalized_entropy"],
                           "classes_covered": coverage["classes_covered"],
                           "num_classes": coverage["num_classes"]},
        "precision": {"value": precision},
        "recall": {"value": recall},
    }


class Scorer:
    """Scores image sets against `n_real` test images, with cached training-set floors.

    Args:
      net: the dataset's feature network.
      data: the dataset (its test split is the reference, its training split the floor).
      n: requested sample count; the reference uses min(n, test size) test images.
    """

    def __init__(self, net: FeatureNet, data: ImageData, n: int):
        self.net, self.data, self.n = net, data, n
        test = data.x_test[_subset(len(data.x_test), n)]
        self.n_real = len(test)
        self.real_feats, _ = net.embed(test)
        self._floors = None

    def definition(self, n_fake: int, fake_source: str) -> dict:
        """What every number of a result means (stored beside the numbers)."""
        return {
            "feature_network": self.net.describe(),
            "feature_network_path": self.net.info["path"],
            "feature_network_test_accuracy": self.net.info["test_accuracy"],
            "layer": self.net.info["layer"],
            "n_real": self.n_real, "n_fake": n_fake,
            "real_split": f"test ({self.n_real} of {len(self.data.x_test)} images"
                          + (")" if self.n_real == len(self.data.x_test)
                             else f", fixed random subset seed {SUBSET_SEED})"),
            "fake": fake_source,
            "floor": f"the same metrics for {self.n_real} real training images (fixed random "
                     f"subset seed {SUBSET_SEED}) against the same test images",
            "data": self.data.spec.name, "data_hash": self.net.info["data_hash"],
        }

    def floors(self) -> dict[str, dict]:
        """Metrics of real training images vs the reference, cached per network and n."""
        if self._floors is not None:
            return self._floors
        path = Path(self.net.info["cache_entry"]) / f"floors_n{self.n_real}.json"
        if path.is_file():
            self._floors = json.loads(path.read_text())
            return self._floors
        log.info("Computing the floors (%d training vs %d test images); cached in %s.",
                 self.n_real, self.n_real, path)
        train = self.data.x_train[_subset(len(self.data.x_train), self.n_real)]
        feats, probs = self.net.embed(train)
        self._floors = compare(self.real_feats, feats, probs)
        path.parent.mkdir(parents=True, exist_ok=True)  # a shipped network has no entry yet
        write_json_atomic(path, self._floors)
        return self._floors

    def score(self, images: np.ndarray, fake_source: str) -> dict:
        """float (N, H, W, C) images in [0, 1] -> {metric: {value, floor, definition, ...}}."""
        feats, probs = self.net.embed(images)
        results = compare(self.real_feats, feats, probs)
        floors = self.floors()
        for name, entry in results.items():
            entry["floor"] = floors[name]["value"]
            entry["definition"] = DEFINITIONS[name]
        return {"definition": self.definition(len(images), fake_source), **results}


def scalars(section: dict) -> dict[str, float]:
    """The numbers of a result as flat TensorBoard scalars: `fid`, `fid_floor`, ..."""
    values = {}
    for name in DEFINITIONS:
        values[name] = section[name]["value"]
        values[f"{name}_floor"] = section[name]["floor"]
    values["kid_std_error"] = section["kid"]["std_error"]
    return values


def flat_entries(section: dict, prefix: str = "eval") -> dict[str, dict]:
    """`{"eval/fid": {"value", "floor", "definition"}, ...}`: one top-level metrics.json entry
    per number, each with a one-line definition, for tools that read `<name>.value`."""
    d = section["definition"]
    where = (f"{d['n_fake']} samples vs {d['n_real']} {d['data']} test images; "
             f"features: {d['feature_network']}")
    entries = {f"{prefix}/{name}": {"value": section[name]["value"],
                                    "floor": section[name]["floor"],
                                    "definition": f"{DEFINITIONS[name]} ({where})"}
               for name in DEFINITIONS}
    entries[f"{prefix}/kid"]["std_error"] = section["kid"]["std_error"]
    return entries


def summary_line(section: dict) -> str:
    """`fid 12.3 (floor 0.8)  kid ...` for logs and the terminal."""
    return "  ".join(f"{name} {section[name]['value']:.4g} (floor {section[name]['floor']:.4g})"
                     for name in DEFINITIONS)
