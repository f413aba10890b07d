"""Run by tests/test_distribute.py in a fresh process: the CPU is split into 2 logical
devices (possible only before TensorFlow initializes them), then the same shrunk config is
trained under `default` and under `mirrored` (2 replicas), and a mirrored run is resumed.

Usage: python mirrored_job.py <out.json> <work dir> <override>...
Writes {"default": ..., "mirrored": ..., "resumed": ..., "uninterrupted": ...}, each with the
metrics of every compiled call and every trainable weight (lists of floats).
"""

import json
import sys
from pathlib import Path

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from hydra import compose, initialize_config_dir  # noqa: E402

from ganrun import build  # noqa: E402
from ganrun.fit import fit  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = ["experiment=base", "data=fake", "train.batch_size=8", "train.log_every=2",
        "train.sample_every=100",
        "train.checkpoint_every=2", "train.steps_per_call=2", "train.sample_grid=4",
        "train.eval_every=0", "train.eval_final_n=0", "train.jit_compile=false"]


def trainer(*overrides):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, *overrides])
    return build.trainer(cfg, build.data(cfg))


def weights(trainer_):
    models = (trainer_.generator, trainer_.discriminator)
    return [v.numpy().ravel().tolist() for m in models for v in m.trainable_variables]


def calls(strategy, overrides, count=3):
    """`count` compiled calls of 2 steps: their metrics, the weights, the trace count."""
    trainer_ = trainer("train.steps=100", f"train.strategy={strategy}", *overrides)
    metrics = [{k: float(v) for k, v in trainer_.train_steps(tf.constant(2)).items()}
               for _ in range(count)]
    return {"metrics": metrics, "weights": weights(trainer_), "replicas": trainer_.replicas,
            "traces": trainer_.train_steps.experimental_get_tracing_count()}


def fitted(run_dir, steps, overrides):
    trainer_ = trainer(f"train.steps={steps}", "train.strategy=mirrored", *overrides)
    fit(trainer_, run_dir)
    return {"weights": weights(trainer_), "step": int(trainer_.step.numpy())}


def main():
    out, work, overrides = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    result = {"default": calls("default", overrides), "mirrored": calls("mirrored", overrides)}
    fitted(work / "resumed", 2, overrides)
    result["resumed"] = fitted(work / "resumed", 4, overrides)
    result["uninterrupted"] = fitted(work / "uninterrupted", 4, overrides)
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
