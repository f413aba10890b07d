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
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ganrun import distribute, precision
from ganrun.data.images import ImageData
from ganrun.data.spec import DataSpec
from ganrun.errors import ConfigError, GanrunError
from ganrun.evaluate.feature_net import EvaluatorOptions
from ganrun.models.image import pixel_range
from ganrun.regularization import Regularization
from ganrun.targets import check_targets
from ganrun.train import AdversarialTrainer, TrainOptions


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


def train_options(node: DictConfig) -> TrainOptions:
    """The `train:` node as a checked TrainOptions; unknown keys are an error."""
    values = OmegaConf.to_container(node, resolve=True)
    known = {field.name for field in dataclasses.fields(TrainOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown train option(s) {unknown}; known: {sorted(known)}.")
    return TrainOptions(**values)


def evaluator_options(node: DictConfig | None) -> EvaluatorOptions:
    """The `evaluator:` node (the image metrics' feature network) as checked options."""
    values = OmegaConf.to_container(node or {}, resolve=True)
    known = {field.name for field in dataclasses.fields(EvaluatorOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown evaluator option(s) {unknown}; known: {sorted(known)}.")
    return EvaluatorOptions(**values)


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
    """The generator of `cfg.model` for data described by `spec`."""
    latent_dim = cfg.model.latent_dim
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim <= 0:
        raise ConfigError(f"model.latent_dim={latent_dim!r} must be a positive integer.")
    return _instantiate(cfg.model.generator, "model.generator", spec=spec,
                        latent_dim=cfg.model.latent_dim, **_conditional_kwargs(cfg, spec))


def discriminator(cfg: DictConfig, spec: DataSpec) -> keras.Model:
    return _instantiate(cfg.model.discriminator, "model.discriminator", spec=spec,
                        **_conditional_kwargs(cfg, spec))


def regularization(cfg: DictConfig) -> Regularization:
    """The `regularize:` node as a checked Regularization; unknown keys are an error."""
    values = OmegaConf.to_container(cfg.get("regularize") or {}, resolve=True)
    known = {field.name for field in dataclasses.fields(Regularization)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown regularize option(s) {unknown}; known: {sorted(known)}.")
    return Regularization(**values)


def generator_pixel_range(cfg: DictConfig) -> tuple[float, float]:
    """(low, high) of the generator's output, from its output activation."""
    return pixel_range(cfg.model.generator.get("output_activation", "tanh"))


def optimizer(cfg: DictConfig, which: str,
              decay_updates: int | None = None) -> keras.optimizers.Optimizer:
    """`cfg.optimizer.<which>` (generator or discriminator), with a positive learning rate;
    with `decay_updates`, the rate decays linearly to 0 over that many of its updates."""
    node = cfg.optimizer[which]
    rate = node.get("learning_rate")
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate <= 0:
        raise ConfigError(f"optimizer.{which}.learning_rate={rate!r} must be a positive number.")
    if decay_updates:  # counted by the optimizer's own `iterations`, which is checkpointed
        schedule = keras.optimizers.schedules.PolynomialDecay(
            float(rate), decay_updates, end_learning_rate=0.0, power=1.0)
        return _instantiate(node, f"optimizer.{which}", learning_rate=schedule)
    return _instantiate(node, f"optimizer.{which}")


def loss(cfg: DictConfig):
    """The loss function `(real_logits, fake_logits) -> (d_loss, g_loss)` and its name."""
    return _instantiate(cfg.loss, "loss"), cfg.loss._target_.rsplit(".", 1)[-1]


def trainer(cfg: DictConfig, dataset: ImageData) -> AdversarialTrainer:
    """Models, optimizers, loss and options → an AdversarialTrainer ready to `fit`."""
    options = train_options(cfg.train)
    if dataset.spec.kind == "text":
        if (options.strategy, options.precision) != ("default", "float32"):
            raise ConfigError("text models train with train.strategy=default and "
                              "train.precision=float32 only.")
        if not latent_text_model(cfg):
            return text_trainer(cfg, dataset)
    if options.pretrain_steps:
        raise ConfigError("train.pretrain_steps is the MLE pre-training of model=relgan; this "
                          "model has none, set it to 0.")
    if dataset.spec.kind != "text" and ("pretrain_learning_rate" in cfg.model
                                        or latent_text_model(cfg)):  # relgan, wgan_char
        raise ConfigError(f"the text model needs text data, but data {dataset.spec.name!r} is "
                          f"{dataset.spec.kind}; choose data=text, coco or oracle.")
    regularize = regularization(cfg)
    if dataset.spec.kind == "text" and regularize.augment:
        raise ConfigError("regularize.augment (DiffAugment) transforms images; remove it for "
                          "text models.")
    keras.utils.set_random_seed(options.seed)  # initial weights depend on the seed only
    loss_fn, loss_name = loss(cfg)
    regularize.check_loss(loss_name)
    # TTUR is two optimizer nodes; a linear schedule reaches 0 at train.steps for both.
    linear = options.lr_schedule == "linear"
    classes = dataset.spec.num_classes if conditional(cfg, dataset.spec) else 0
    mixed, strategy = options.precision, distribute.make_strategy(options.strategy)
    # Everything with variables is made in the strategy's scope (mirrored on its devices);
    # the models under the precision's dtype policy, with float32 outputs (ganrun.precision).
    with strategy.scope():
        with precision.policy(mixed):
            models = [precision.float32_outputs(make(cfg, dataset.spec), mixed)
                      for make in (generator, discriminator)]
        if options.strategy != "default":
            distribute.synchronize_batch_norm(models)
        optimizers = [
            precision.wrap_optimizer(
                optimizer(cfg, "generator", options.steps if linear else None), mixed),
            precision.wrap_optimizer(optimizer(
                cfg, "discriminator", options.steps * options.d_steps if linear else None), mixed)]
        if dataset.spec.kind == "text":  # model=wgan_char: one-hot real sequences, text samples
            from ganrun.text_wgan import LatentTextTrainer  # noqa: PLC0415

            return LatentTextTrainer(*models, *optimizers, loss_fn, dataset, options, regularize)
        return AdversarialTrainer(
            *models, *optimizers, loss_fn, dataset.x_train, generator_pixel_range(cfg), options,
            regularization=regularize, labels=dataset.y_train if classes else None,
            num_classes=classes, strategy=strategy)


def latent_text_model(cfg: DictConfig) -> bool:
    """Whether cfg.model is a text model with a latent input (`data_kind: text`, e.g.
    model=wgan_char): trained by the image trainer on one-hot sequences (ganrun.text_wgan)."""
    return cfg.model.get("data_kind") == "text"


def any_generator(cfg: DictConfig, spec: DataSpec) -> keras.Model:
    """The generator of any model: relgan's (no latent input) or one taking latents."""
    if "pretrain_learning_rate" in cfg.model:
        return text_generator(cfg, spec)
    return generator(cfg, spec)


def text_generator(cfg: DictConfig, spec: DataSpec) -> keras.Model:
    """The text model's generator (no latent input) for text data described by `spec`."""
    return _instantiate(cfg.model.generator, "model.generator", spec=spec)


def text_trainer(cfg: DictConfig, dataset):
    """Text data (a ganrun.data.corpora.TextData) and a text model → a TextTrainer: MLE
    pre-training (its own Adam, model.pretrain_learning_rate), then the Gumbel-softmax GAN."""
    from ganrun.text_train import GumbelOptions, TextTrainer, check_text_options

    options = train_options(cfg.train)
    check_text_options(options)
    if regularization(cfg) != Regularization():  # they act on images and image trainers only
        raise ConfigError("the text GAN (model=relgan) takes no regularize.* options; remove "
                          "those overrides (it clips gradient norms: model.gumbel.clip_norm).")
    if "pretrain_learning_rate" not in cfg.model:
        raise ConfigError(f"data {dataset.spec.name} is text; choose a text model "
                          "(model=relgan or model=wgan_char).")
    keras.utils.set_random_seed(options.seed)  # initial weights depend on the seed only
    loss_fn, _ = loss(cfg)
    try:
        gumbel = GumbelOptions(**OmegaConf.to_container(cfg.model.gumbel, resolve=True))
    except TypeError as exc:
        raise ConfigError(f"model.gumbel has an unknown key ({exc}); known: beta_max, "
                          "schedule, clip_norm.") from None
    spec = dataset.spec
    return TextTrainer(
        text_generator(cfg, spec),
        _instantiate(cfg.model.discriminator, "model.discriminator", spec=spec),
        optimizer(cfg, "generator"), optimizer(cfg, "discriminator"),
        keras.optimizers.Adam(float(cfg.model.pretrain_learning_rate)), loss_fn, dataset,
        options, gumbel)


def experiment_fingerprint(cfg: DictConfig, spec: DataSpec) -> str:
    """A hash of what a checkpoint's meaning depends on (data, model, loss, optimizer type).

    Resuming with different step counts, logging or learning rates is fine; resuming with
    another model or dataset is not.
    """
    parts = {
        "data": [spec.kind, spec.name, list(spec.shape), spec.num_classes, spec.num_examples],
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "loss": OmegaConf.to_container(cfg.loss, resolve=True),
        "optimizers": {k: cfg.optimizer[k]._target_ for k in ("generator", "discriminator")},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
