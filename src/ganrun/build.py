"""Config → objects. The only module (with `cli.py`) that sees a Hydra config and the only
caller of `hydra.utils.instantiate`: Hydra's `_target_` is ganrun's registry.

Everything returned here is plain Python/Keras, typed, and checked: a bad value raises a
`GanrunError` with one sentence naming the fix, before any training starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import keras
import tensorflow as tf
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from ganrun import distribute, precision
from ganrun.budget import LinearToZero
from ganrun.data.images import ImageData
from ganrun.data.spec import DataSpec
from ganrun.errors import ConfigError, GanrunError
from ganrun.evaluate.feature_net import EvaluatorOptions
from ganrun.models.image import pixel_range
from ganrun.regularization import Regularization
from ganrun.targets import check_targets
from ganrun.trainers.options import TrainOptions
from ganrun.trainers.protocol import Trainer


def _instantiate(node: DictConfig, where: str, **objects):
    """`instantiate(node)(**objects)` with errors turned into one sentence naming the node.

    Objects (a DataSpec, say) are passed to the built partial rather than to `instantiate`,
    which would merge them into the config and turn them into dicts. Every `_target_` of
    the node is checked against ganrun's allowlist first (ganrun.targets); callers that
    load a whole config check all of it before the first build.
    """
    check_targets(node, f"the {where} config")
    try:
        if not objects:
            return instantiate(node, _convert_="all")
        return instantiate(node, _partial_=True, _convert_="all")(**objects)
    except TypeError as exc:  # a misspelt or unknown argument name in a YAML file
        raise ConfigError(f"{where} could not be built ({exc}); fix the {where} settings "
                          "(ganrun train --cfg job shows them).") from None
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, GanrunError):
            raise cause from None
        reason = str(cause) if cause is not None else str(exc).splitlines()[-1]
        raise ConfigError(f"{where} could not be built ({reason}); fix the {where} "
                          "settings (ganrun train --cfg job shows them).") from None


def checked(cls, node: DictConfig | None, where: str):
    """The config `node` as the checked dataclass `cls`; unknown keys are one ConfigError
    naming them (the dataclass's own checks raise the others)."""
    values = OmegaConf.to_container(node or {}, resolve=True)
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {where} option(s) {unknown}; known: {sorted(known)}.")
    return cls(**values)


def train_options(node: DictConfig) -> TrainOptions:
    """The `train:` node as a checked TrainOptions; unknown keys are an error."""
    return checked(TrainOptions, node, "train")


def evaluator_options(node: DictConfig | None) -> EvaluatorOptions:
    """The `evaluator:` node (the image metrics' feature network) as checked options."""
    return checked(EvaluatorOptions, node, "evaluator")


def data(cfg: DictConfig) -> ImageData:
    """Load the dataset named by `cfg.data` (returns data with its DataSpec)."""
    loaded = _instantiate(cfg.data, "data")
    if not isinstance(getattr(loaded, "spec", None), DataSpec):  # ImageData or TextData
        raise ConfigError(f"data: {cfg.data.get('_target_')} built a {type(loaded).__name__}, "
                          "not a dataset; choose one of the data configs (ganrun train --help).")
    return loaded


def conditional(cfg: DictConfig, spec: DataSpec) -> bool:
    """model.conditional: true, false, or auto (conditional exactly when the data has class
    labels, so one preset serves labelled and unlabelled data); absent in older run
    directories: false."""
    value = cfg.model.get("conditional", False)
    if value == "auto":
        return spec.kind == "image" and spec.num_classes >= 2
    if not isinstance(value, bool):
        raise ConfigError(f"model.conditional={value!r} must be true, false or auto.")
    return value


def _conditional_kwargs(cfg: DictConfig, spec: DataSpec) -> dict:
    # Passed only when true, so builders without the option (text models) are unaffected.
    return {"conditional": True} if conditional(cfg, spec) else {}


def generator(cfg: DictConfig, spec: DataSpec) -> keras.Model:
    """The generator of `cfg.model` for data described by `spec`: a latent model's takes
    `model.latent_dim` (relgan's has no latent input)."""
    latent = {}
    if "latent_dim" in cfg.model:
        latent_dim = cfg.model.latent_dim
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim <= 0:
            raise ConfigError(f"model.latent_dim={latent_dim!r} must be a positive integer.")
        latent = {"latent_dim": latent_dim}
    return _instantiate(cfg.model.generator, "model.generator", spec=spec, **latent,
                        **_conditional_kwargs(cfg, spec))


def discriminator(cfg: DictConfig, spec: DataSpec) -> keras.Model:
    return _instantiate(cfg.model.discriminator, "model.discriminator", spec=spec,
                        **_conditional_kwargs(cfg, spec))


def regularization(cfg: DictConfig) -> Regularization:
    """The `regularize:` node as a checked Regularization; unknown keys are an error."""
    return checked(Regularization, cfg.get("regularize"), "regularize")


def generator_pixel_range(cfg: DictConfig) -> tuple[float, float]:
    """(low, high) of an image generator's output, from its output activation."""
    return pixel_range(cfg.model.generator.get("output_activation", "tanh"))


def optimizer(cfg: DictConfig, which: str, schedule_end: tf.Variable | None = None,
              updates_per_step: int = 1) -> keras.optimizers.Optimizer:
    """`cfg.optimizer.<which>` (generator or discriminator), with a positive learning rate;
    with `schedule_end`, the rate decays linearly to 0 at the adversarial step that variable
    holds (ganrun.budget.LinearToZero; `updates_per_step` of this optimizer per step)."""
    node = cfg.optimizer[which]
    rate = node.get("learning_rate")
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate <= 0:
        raise ConfigError(f"optimizer.{which}.learning_rate={rate!r} must be a positive number.")
    if schedule_end is not None:  # counted by the optimizer's own `iterations` (checkpointed)
        schedule = LinearToZero(float(rate), schedule_end, updates_per_step)
        return _instantiate(node, f"optimizer.{which}", learning_rate=schedule)
    return _instantiate(node, f"optimizer.{which}")


def loss(cfg: DictConfig):
    """The loss function `(real_logits, fake_logits) -> (d_loss, g_loss)` and its name."""
    return _instantiate(cfg.loss, "loss"), cfg.loss._target_.rsplit(".", 1)[-1]


def trainer_class(cfg: DictConfig) -> type[Trainer]:
    """The class `model.trainer._target_` names (ganrun.trainers)."""
    node = cfg.model.get("trainer")
    if node is None or "_target_" not in node:
        raise ConfigError("the model config names no trainer; add `trainer: {_target_: "
                          "ganrun.trainers.image.AdversarialTrainer}` (or another of "
                          "ganrun.trainers) to it.")
    try:
        return get_class(node._target_)
    except Exception as exc:  # Hydra raises ImportError or ValueError with the reason
        raise ConfigError(f"model.trainer._target_={node._target_!r} is not a class ({exc}); "
                          "name one of ganrun.trainers.") from None


def trainer(cfg: DictConfig, dataset) -> Trainer:
    """Models, optimizers, loss and options → the trainer `model.trainer` names, ready to
    `fit`. The trainer's `check` refuses what it cannot train before any model is made."""
    options, regularize = train_options(cfg.train), regularization(cfg)
    loss_fn, loss_name = loss(cfg)
    trainer_class(cfg).check(options, regularize, dataset.spec, loss_name)
    keras.utils.set_random_seed(options.seed)  # initial weights depend on the seed only
    # TTUR is two optimizer nodes; a linear schedule reaches 0 at train.steps for both, or
    # earlier where train.schedule_end=budget moves its end (ganrun.fit, ganrun.budget).
    linear = options.lr_schedule == "linear"
    mixed, strategy = options.precision, distribute.make_strategy(options.strategy)
    # Everything with variables is made in the strategy's scope (mirrored on its devices);
    # the models under the precision's dtype policy, with float32 outputs (ganrun.precision).
    with strategy.scope():
        with precision.policy(mixed):
            models = [precision.float32_outputs(make(cfg, dataset.spec), mixed)
                      for make in (generator, discriminator)]
        if options.strategy != "default":
            distribute.synchronize_batch_norm(models)
        end = (tf.Variable(float(options.steps), trainable=False, dtype=tf.float32,
                           name="schedule_end") if linear else None)
        optimizers = [
            precision.wrap_optimizer(optimizer(cfg, "generator", end), mixed),
            precision.wrap_optimizer(optimizer(cfg, "discriminator", end, options.d_steps),
                                     mixed)]
        return _instantiate(cfg.model.trainer, "model.trainer", generator=models[0],
                            discriminator=models[1], generator_optimizer=optimizers[0],
                            discriminator_optimizer=optimizers[1], loss_fn=loss_fn,
                            data=dataset, options=options, regularization=regularize,
                            strategy=strategy)


def experiment_fingerprint(cfg: DictConfig, spec: DataSpec) -> str:
    """A hash of what a checkpoint's meaning depends on (data, model, loss, optimizer type).

    Resuming with different step counts, logging or learning rates is fine; resuming with
    another model or dataset is not.
    """
    parts = {
        "data": [spec.kind, spec.name, list(spec.shape), spec.num_classes, spec.num_examples],
        # Without the keys that name code rather than the checkpoint's content (`data_kind`
        # marked wgan_char before `trainer` existed), so runs from then still resume.
        "model": {key: value for key, value in
                  OmegaConf.to_container(cfg.model, resolve=True).items()
                  if key not in ("trainer", "data_kind")},
        "loss": OmegaConf.to_container(cfg.loss, resolve=True),
        "optimizers": {k: cfg.optimizer[k]._target_ for k in ("generator", "discriminator")},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
