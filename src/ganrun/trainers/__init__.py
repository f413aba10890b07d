"""The trainers: the training state and the compiled K-step function of each model family.

`protocol.Trainer` is what the host side (`ganrun.fit`, the guard, checkpoints, evaluation,
sampling) may use of a trainer; `image.AdversarialTrainer` (image GANs), `latent_text`
(model=wgan_char) and `text_gan.TextGAN` (model=relgan: MLE, then the Gumbel-softmax GAN)
implement it. A model's config names its trainer (`model.trainer._target_`).
"""
