"""A run directory as the two things guidance needs: real rows and generator proposals.

`run_source(run_dir)` returns an `ImageSource` or a `TextSource`. Both give
  real(indices) / fakes(count, seed, temperature): the classifier's inputs, as lists of arrays
      (images float32 (n, H, W, C) in the generator's pixel range [+ labels int32 (n,)], or
      token ids int32 (n, L));
  fresh_or_restored_critic(): (classifier, restored?) for `ganrun calibrate`;
  proposer(critic, scaling, temperature, label): a `ganrun.guide.Propose` returning the
      outputs (images float32 (n, H, W, C) in [0, 1] [+ labels], or ids) with calibrated
      logits; a conditional run's proposer also takes the labels to propose;
  requested_labels(n, label): int32 (n,) labels the guided outputs must keep (a conditional
      run: `ganrun.sample.class_labels`), None otherwise.
The dataset is loaded only when real rows are asked for (calibration), never for sampling.
"""

from __future__ import annotations

import functools
from pathlib import Path

import keras
import numpy as np
from omegaconf import OmegaConf

from ganrun import build
from ganrun.calibrate import score
from ganrun.data.spec import DataSpec
from ganrun.errors import GanrunError
from ganrun.sample import load_generator
from ganrun.sampling import CHUNK, class_labels

PROPOSAL_CHUNK = 1000  # proposals per compiled call of G and D


class _Source:
    def __init__(self, run_dir: Path, checkpoint: str):
        self.run_dir = Path(run_dir)
        self.generator, self.pixel_range, self.checkpoint = load_generator(self.run_dir,
                                                                           checkpoint)
        self.cfg = OmegaConf.load(self.run_dir / "experiment.yaml")
        self.spec = DataSpec.from_json(self.run_dir / "data_spec.json")
        ema = checkpoint == "latest" and OmegaConf.select(self.cfg, "train.ema_decay",
                                                          default=0)
        self.description = (f"{'EMA ' if ema else ''}generator of {checkpoint} checkpoint "
                            f"{self.checkpoint}")

    @functools.cached_property
    def data(self):
        from ganrun.sample import check_same_data  # noqa: PLC0415

        data = build.data(self.cfg)
        check_same_data(self.run_dir, data)
        return data

    @property
    def x_train(self) -> np.ndarray:
        return self.data.x_train

    @property
    def x_test(self) -> np.ndarray | None:
        return self.data.x_test

    def _restore(self, critic) -> None:
        import tensorflow as tf  # noqa: PLC0415

        status = tf.train.Checkpoint(discriminator=critic).restore(self.checkpoint)
        status.assert_existing_objects_matched().expect_partial()  # D only, of everything


class ImageSource(_Source):
    critic_family = "discriminator of the run's model"

    def real(self, indices: np.ndarray) -> list[np.ndarray]:
        low, high = self.pixel_range
        images = self.data.x_train[indices].astype(np.float32) * ((high - low) / 255.0) + low
        labels = self.data.y_train
        return [images] + ([labels[indices]] if self._classes else [])

    @property
    def _classes(self) -> int:
        from ganrun.sampling import num_classes  # noqa: PLC0415

        return num_classes(self.generator)

    def _raw(self, count: int, seed: int, label: int | None = None) -> list[np.ndarray]:
        import tensorflow as tf  # noqa: PLC0415

        from ganrun.sampling import fixed_latents  # noqa: PLC0415

        latents = fixed_latents(count, int(self.generator.inputs[0].shape[-1]), seed)
        # The training data's class proportions, as unguided sampling (ganrun.sample).
        labels = class_labels(self.generator, count, label, self.spec.class_frequencies)
        parts = []
        for s in range(0, count, CHUNK):
            inputs = latents[s:s + CHUNK] if labels is None else [
                latents[s:s + CHUNK], tf.constant(labels[s:s + CHUNK])]
            parts.append(np.asarray(self.generator(inputs, training=False), np.float32))
        return [np.concatenate(parts)] + ([] if labels is None else [labels])

    def fakes(self, count: int, seed: int, temperature: float = 1.0) -> list[np.ndarray]:
        return self._raw(count, seed)

    def fresh_or_restored_critic(self):
        from ganrun import precision  # noqa: PLC0415

        mixed = precision.resolve(OmegaConf.select(self.cfg, "train.precision",
                                                   default="float32"))
        with precision.policy(mixed):
            critic = precision.float32_outputs(build.discriminator(self.cfg, self.spec), mixed)
        self._restore(critic)
        return critic, True

    def proposer(self, critic, scaling, temperature: float = 1.0, label: int | None = None):
        import tensorflow as tf  # noqa: PLC0415

        from ganrun.calibrate import mean_logit  # noqa: PLC0415
        from ganrun.sampling import fixed_latents  # noqa: PLC0415

        low, high = self.pixel_range
        a, b = (float(v) for v in scaling)
        key = (id(critic), a, b)
        if getattr(self, "_forward_key", None) != key:  # traced once per source and classifier
            # One graph for G and D: eager Keras calls cost more than the convolutions here.
            @tf.function(reduce_retracing=True)
            def forward(latents, labels):
                inputs = latents if labels is None else [latents, labels]
                raw = self.generator(inputs, training=False)
                logits = mean_logit(critic, [raw] if labels is None else [raw, labels])
                return tf.clip_by_value((raw - low) / (high - low), 0.0, 1.0), a * logits + b

            self._forward, self._forward_key = forward, key
        forward = self._forward

        def propose(count: int, seed: int, labels: np.ndarray | None = None):
            """labels int (count,): the classes to propose (guidance within labels); default
            `label` or the data's class proportions."""
            latents = fixed_latents(count, int(self.generator.inputs[0].shape[-1]), seed)
            if labels is None:
                labels = class_labels(self.generator, count, label,
                                      self.spec.class_frequencies)
            elif not self._classes:
                raise ValueError("labels given to the proposer of an unconditional generator")
            else:
                labels = np.asarray(labels, np.int32)
            images, logits = [], []
            for s in range(0, count, PROPOSAL_CHUNK):
                part = None if labels is None else tf.constant(labels[s:s + PROPOSAL_CHUNK])
                image, logit = forward(latents[s:s + PROPOSAL_CHUNK], part)
                images.append(image.numpy())
                logits.append(logit.numpy().astype(np.float64))
            return ([np.concatenate(images)] + ([] if labels is None else [labels]),
                    np.concatenate(logits))

        return propose

    def requested_labels(self, n: int, label: int | None = None) -> np.ndarray | None:
        return class_labels(self.generator, n, label, self.spec.class_frequencies)


class TextSource(_Source):
    critic_family = "RelGAN-style CNN discriminator over token ids"

    def real(self, indices: np.ndarray) -> list[np.ndarray]:
        return [self.data.x_train[indices]]

    def fakes(self, count: int, seed: int, temperature: float = 1.0) -> list[np.ndarray]:
        from ganrun.sampling import draw_ids  # noqa: PLC0415

        return [draw_ids(self.generator, count, seed, temperature)[0]]

    def fresh_or_restored_critic(self):
        from ganrun.models.text import relgan_discriminator  # noqa: PLC0415

        node = OmegaConf.select(self.cfg, "model.discriminator")
        step = int(Path(self.checkpoint).name.rsplit("-", 1)[-1])
        pretrain = OmegaConf.select(self.cfg, "train.pretrain_steps", default=0) or 0
        if node is not None and str(node.get("_target_", "")).endswith("relgan_discriminator"):
            critic = build._instantiate(node, "model.discriminator", spec=self.spec)
            if step > pretrain:  # the run's D saw adversarial steps: start from it
                self._restore(critic)
                return critic, True
            return critic, False
        keras.utils.set_random_seed(0)
        return relgan_discriminator(self.spec), False

    def proposer(self, critic, scaling, temperature: float = 1.0, label: int | None = None):
        def propose(count: int, seed: int):
            ids = self.fakes(count, seed, temperature)
            return ids, score(critic, ids, scaling)

        return propose

    def requested_labels(self, n: int, label: int | None = None) -> None:
        return None  # text is unconditional


def run_source(run_dir: Path, checkpoint: str = "latest", calibrated: bool = True):
    """The run's source; with `calibrated`, also (critic, scaling, record) of `ganrun
    calibrate` as `.critic`, `.scaling`, `.record`."""
    spec = DataSpec.from_json(Path(run_dir) / "data_spec.json") \
        if (Path(run_dir) / "data_spec.json").is_file() else None
    source = (TextSource if spec is not None and spec.kind == "text" else ImageSource)(
        run_dir, checkpoint)
    if calibrated:
        from ganrun.calibrate import load  # noqa: PLC0415

        source.critic, source.scaling, source.record = load(run_dir)
        calibrated_for = source.record.get("checkpoint_path")
        if calibrated_for != str(source.checkpoint):  # trained on, or the other checkpoint
            raise GanrunError(
                f"{run_dir}/calibrated was made for {calibrated_for}, not for the generator "
                f"being sampled ({source.checkpoint}); run `ganrun calibrate run={run_dir} "
                f"checkpoint={checkpoint}` again.")
    return source


def guided_proposer(source, temperature: float = 1.0, label: int | None = None):
    """The calibrated proposer of a source made with `calibrated=True`."""
    return source.proposer(source.critic, source.scaling, temperature, label)


def draw_guided(run_dir: Path, checkpoint: str, options, n: int, seed: int,
                temperature: float = 1.0, label: int | None = None,
                source=None) -> tuple[list[np.ndarray], dict]:
    """n guided outputs of the run (see `proposer`) and the cost record of
    `ganrun.guide.guided_sample`, logged; `source` reuses an already loaded run. A
    conditional run is guided within each label: output i keeps the label unguided sampling
    would give it (`label`, else the data's class proportions)."""
    import logging  # noqa: PLC0415

    from ganrun.guide import guided_sample  # noqa: PLC0415

    source = source or run_source(run_dir, checkpoint, calibrated=True)
    arrays, stats = guided_sample(guided_proposer(source, temperature, label), n, options, seed,
                                  labels=source.requested_labels(n, label))
    stats["calibration"] = {k: source.record[k]["value"] for k in ("accuracy", "ece")}
    logging.getLogger("ganrun").info(
        "guide=%s: %d samples in %.1f s (%.1f samples/s), acceptance %.4f, %d proposals",
        options.name, n, stats["seconds"], stats["samples_per_second"], stats["acceptance"],
        stats["proposals"])
    return arrays, stats
