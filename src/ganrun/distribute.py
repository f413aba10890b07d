"""`train.strategy`: which tf.distribute strategy runs the compiled loop, and how the loop
runs under it.

- `default`: tf.distribute's default strategy (one device); the trainer's step runs as is.
- `mirrored`: MirroredStrategy over all local GPUs, or, with no GPU, over all logical CPU
  devices (tests split the CPU in two with `tf.config.set_logical_device_configuration`).
- `multi_worker`: MultiWorkerMirroredStrategy; the cluster comes from `TF_CONFIG`, or, inside
  a SLURM job step, from the SLURM environment (ganrun.slurm).
- `tpu`: TPUStrategy on the TPU the cluster resolver finds (documented, not tested here).

Under a non-default strategy every step is one `strategy.run` inside the compiled function.
The global batch's randomness is drawn once per step, identically on every replica (the same
seeds from `trainer.rng`, whose state is mirrored), and each replica takes its slice of the
real indices and latents: replica r of R trains on examples [r·B/R, (r+1)·B/R) of exactly
the batch the default strategy would draw, so `mirrored` equals `default` up to the order of
float reductions (tests/test_distribute.py). Draws whose shape is per replica (DiffAugment,
instance noise, penalties' interpolation weights) get the replica id folded into their seed,
so replicas' noise is independent (these differ from `default`'s bits, not in distribution).
Per-replica mean losses are divided by the replica count before the gradients; Keras's
optimizers sum the gradients over replicas, so an update uses the global-batch mean.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from ganrun.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
# Replica r's folded draws add r << 40 to the seed's counter word: counters (draws so far)
# stay far below 2**40, so folded and shared streams never meet.
_FOLD_SHIFT = 40


@functools.cache
def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy called `name`; one per process (MultiWorkerMirroredStrategy must be made
    once, before TensorFlow runs any op, so the CLI makes it first and build.py reuses it)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multi_worker":
        from ganrun import slurm

        if "TF_CONFIG" not in os.environ and slurm.in_job_step():
            os.environ["TF_CONFIG"] = json.dumps(slurm.tf_config())
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("train.strategy=multi_worker needs the cluster in TF_CONFIG (or "
                              "a SLURM job step); see README \"Scaling out\".")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ConfigError(f"train.strategy={name!r} must be one of {', '.join(STRATEGIES)}.")


def synchronize_batch_norm(models) -> None:
    """Batch normalization over the global batch: every BatchNormalization layer of `models`
    all-reduces its batch statistics across replicas (Keras reads the flag at call time), so
    a replica's per-replica batch normalizes as the default strategy's global batch would."""
    for model in models:
        for layer in model._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True in the process that writes the run directory: the only one, or worker 0 / the
    chief of a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_dir(strategy: tf.distribute.Strategy, run_dir: Path, clear: bool = False) -> Path:
    """Where this process writes: `run_dir` for the chief; for another worker a scratch
    directory of its own, emptied first with `clear` (it saves checkpoints too, as the
    TensorFlow multi-worker guide says all workers must, but nobody reads them)."""
    if is_chief(strategy):
        return Path(run_dir)
    resolver = strategy.cluster_resolver
    scratch = Path(tempfile.gettempdir()) / "ganrun-workers" / \
        f"{Path(run_dir).resolve().name}-{resolver.task_type}-{resolver.task_id}"
    if clear:
        shutil.rmtree(scratch, ignore_errors=True)
    return scratch


class ReplicaSeeds(keras.random.SeedGenerator):
    """Stands in for `trainer.rng` while a step's replica function is traced.

    Each `next()` returns `base + [0, k]` for the replica's k-th draw of the step (exactly the
    seeds the default strategy's SeedGenerator would return), plus `replica << 40` in the
    counter word when `fold` is set. `shared` and `folded` views share the per-replica
    counters; after the step the real state advances by the number of draws.
    """

    def __init__(self, base: tf.Tensor, counts: dict, fold: bool):  # no variable of its own
        self.base, self.counts, self.fold = base, counts, fold

    def next(self, ordered=True):
        replica = replica_id()
        draw = self.counts.get(replica, 0)
        self.counts[replica] = draw + 1
        offset = (replica << _FOLD_SHIFT) if self.fold else 0
        return self.base + tf.constant([0, offset + draw], self.base.dtype)


def replica_id() -> int:
    """This replica's index in the sync group (0 outside strategy.run)."""
    context = tf.distribute.get_replica_context()
    value = tf.get_static_value(context.replica_id_in_sync_group) if context else 0
    return int(value or 0)


def shard(batch: tf.Tensor, replicas: int) -> tf.Tensor:
    """This replica's slice of a global batch (B, ...) -> (B / replicas, ...)."""
    if replicas == 1:
        return batch
    size = batch.shape[0] // replicas
    start = replica_id() * size
    return batch[start:start + size]


@contextlib.contextmanager
def _replica_seeds(trainer, base):
    """trainer.rng / trainer.batch_rng as ReplicaSeeds while the step is traced."""
    counts = {}
    rng = trainer.rng
    trainer.rng = ReplicaSeeds(base, counts, fold=True)
    trainer.batch_rng = ReplicaSeeds(base, counts, fold=False)
    try:
        yield counts
    finally:
        trainer.rng, trainer.batch_rng = rng, rng


def replicated_step(trainer, step_fn):
    """`step_fn` (int64 step -> float32 metrics) as one `strategy.run` over the replicas, its
    metrics reduced to their global-batch means; for `ganrun.trainers.loop.run_steps`.

    `trainer`: an AdversarialTrainer (its `rng`, `batch_rng` and `strategy`). Trace inside
    the compiled function."""
    strategy, state = trainer.strategy, trainer.rng.state

    def step(index):
        with _replica_seeds(trainer, tf.identity(state.value)) as counts:
            metrics = strategy.run(step_fn, args=(index,))
        draws = max(counts.values(), default=0)  # the same on every replica
        state.assign_add(tf.constant([0, draws], state.dtype))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, metrics, axis=None)

    return step
