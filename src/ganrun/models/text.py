"""Text-GAN networks: a RelGAN-style autoregressive LSTM generator with Gumbel-softmax outputs
and a multi-representation CNN discriminator (Nie et al., ICLR 2019, "RelGAN").

The generator has no latent input: its randomness is the Gumbel noise of sampling. Its LSTM
cell is written as plain ops (no cuDNN kernel, so it runs under XLA); teacher forcing runs its
time steps in `tf.scan`, sampling in a Python loop over the static length, so both live
inside the compiled training loop. Random numbers come from a (2,) int32 seed tensor
(stateless ops, seed + [0, t] at step t): the trainer draws that seed from its
`SeedGenerator`, which keeps resume exact.

Token ids are 0..V-1 (V = `spec.vocab_size`); the generator starts from an extra learned
"start" embedding (row V), so no vocabulary entry is reserved for it.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ganrun.data.spec import DataSpec
from ganrun.errors import ConfigError


def _gumbel(shape, seed):
    """Gumbel(0, 1) noise, float32 `shape`, from a stateless (2,) seed."""
    u = tf.random.stateless_uniform(shape, seed, minval=1e-10, maxval=1.0)
    return -tf.math.log(-tf.math.log(u))


@keras.saving.register_keras_serializable("ganrun")
class LSTMGenerator(keras.Model):
    """Autoregressive LSTM language model over V tokens, sequences of `max_len` tokens.

    `call(ids)` (teacher forcing): int ids (B, L) -> next-token logits (B, L, V), position t
    predicting ids[:, t] from ids[:, :t]. `rollout(...)` samples sequences.
    """

    def __init__(self, vocab_size: int, max_len: int, embed_dim: int = 64,
                 hidden_dim: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.max_len = vocab_size, max_len
        self.embed_dim, self.hidden_dim = embed_dim, hidden_dim
        normal = keras.initializers.RandomNormal(stddev=0.1)
        self.embedding = self.add_weight((vocab_size + 1, embed_dim), normal, name="embedding")
        self.kernel = self.add_weight((embed_dim + hidden_dim, 4 * hidden_dim),
                                      "glorot_uniform", name="kernel")
        # Forget-gate bias 1 (Jozefowicz et al. 2015): remember by default early in training.
        self.bias = self.add_weight((4 * hidden_dim,), keras.initializers.Constant(
            [0.0] * hidden_dim + [1.0] * hidden_dim + [0.0] * 2 * hidden_dim), name="bias")
        self.out_kernel = self.add_weight((hidden_dim, vocab_size), "glorot_uniform",
                                          name="out_kernel")
        self.out_bias = self.add_weight((vocab_size,), "zeros", name="out_bias")
        self.built = True

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "max_len": self.max_len, "embed_dim": self.embed_dim,
                "hidden_dim": self.hidden_dim}

    def _cell(self, x, h, c):
        """One LSTM step: x (B, E), h and c (B, H) -> new (h, c). Gates in order i, f, g, o."""
        gates = tf.matmul(tf.concat([x, h], axis=1), self.kernel) + self.bias
        i, f, g, o = tf.split(gates, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    def _zero_state(self, batch):
        zeros = tf.zeros([batch, self.hidden_dim])
        return zeros, zeros

    def call(self, ids):
        ids = tf.cast(ids, tf.int32)
        batch = tf.shape(ids)[0]
        inputs = tf.concat([tf.fill([batch, 1], self.vocab_size), ids[:, :-1]], axis=1)
        embedded = tf.transpose(tf.gather(self.embedding, inputs), [1, 0, 2])  # (L, B, E)

        def step(state, x):
            h, c = self._cell(x, *state)
            return h, c

        hs, _ = tf.scan(step, embedded, initializer=self._zero_state(batch))
        return tf.einsum("lbh,hv->blv", hs, self.out_kernel) + self.out_bias

    def rollout(self, batch, seed, beta=1.0, temperature=1.0, soft=True):
        """Sample `batch` sequences with the Gumbel-max trick.

        At step t the token is argmax(logits / temperature + g_t) (an exact categorical
        sample at that temperature) and is fed back; the relaxed output is
        softmax(beta * (logits / temperature + g_t)), RelGAN's Gumbel-softmax with inverse
        temperature beta. Returns (ids int32 (B, L), soft float32 (B, L, V) in [0, 1], rows
        summing to 1) — soft is None when `soft=False` (sampling only, cheaper).
        """
        seed = tf.cast(seed, tf.int32)
        h, c = self._zero_state(batch)
        token = tf.fill([batch], self.vocab_size)
        tokens, outs = [], []
        # A Python loop over the static length, so grappler and XLA see all L steps and can
        # overlap them (a tf.scan here was slower, much slower under XLA: docs/text.md). Each
        # step's noise does not depend on the recurrence, so it is drawn in parallel with it.
        for t in range(self.max_len):
            h, c = self._cell(tf.gather(self.embedding, token), h, c)
            logits = (tf.matmul(h, self.out_kernel) + self.out_bias) / temperature
            noisy = logits + _gumbel(tf.shape(logits), seed + tf.constant([0, t]))
            token = tf.argmax(noisy, axis=1, output_type=tf.int32)
            tokens.append(token)
            if soft:
                outs.append(tf.nn.softmax(beta * noisy))
        return tf.stack(tokens, axis=1), (tf.stack(outs, axis=1) if soft else None)


def relgan_generator(spec: DataSpec, embed_dim: int = 64, hidden_dim: int = 256):
    """The generator for text data described by `spec` (vocabulary and length from it)."""
    spec.text_shape("the text models")
    return LSTMGenerator(spec.vocab_size, spec.shape[0], embed_dim, hidden_dim)


@keras.saving.register_keras_serializable("ganrun")
class RelGANDiscriminator(keras.Model):
    """CNN over embedded token sequences, with `num_rep` embedding representations.

    Input: int ids (B, L) (real data, embedded by lookup) or soft one-hot float (B, L, V)
    (generator outputs, embedded by a matmul so gradients reach the generator). Each
    representation r embeds the sequence with its own (V, E) slice, then shared convolutions
    (window sizes `filter_sizes`, `num_filters` each, ReLU, max over time), a highway layer and
    a linear layer score it. Output: logits (B, num_rep), one per representation.
    """

    def __init__(self, vocab_size: int, max_len: int, num_rep: int = 4, embed_dim: int = 64,
                 filter_sizes=(2, 3, 4, 5), num_filters: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.max_len, self.num_rep = vocab_size, max_len, num_rep
        self.embed_dim, self.filter_sizes = embed_dim, tuple(filter_sizes)
        self.num_filters = num_filters
        self.embedding = self.add_weight((vocab_size, num_rep * embed_dim),
                                         keras.initializers.RandomNormal(stddev=0.1),
                                         name="embedding")
        self.convs = [keras.layers.Conv1D(num_filters, k, activation="relu")
                      for k in self.filter_sizes if k <= max_len]
        if not self.convs:
            raise ConfigError(f"every filter size {list(filter_sizes)} exceeds the sequence "
                              f"length {max_len}; lower model.discriminator.filter_sizes.")
        width = num_filters * len(self.convs)
        self.highway_gate = keras.layers.Dense(width, activation="sigmoid")
        self.highway = keras.layers.Dense(width, activation="relu")
        self.hidden = keras.layers.Dense(100, activation="relu")
        self.logit = keras.layers.Dense(1)
        self.build_layers(width)

    def build_layers(self, width):
        """Create every sublayer's weights now, so optimizers can be built before training."""
        for conv in self.convs:
            conv.build((None, self.max_len, self.embed_dim))
        self.highway_gate.build((None, width))
        self.highway.build((None, width))
        self.hidden.build((None, width))
        self.logit.build((None, 100))
        self.built = True

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "max_len": self.max_len,
                "num_rep": self.num_rep, "embed_dim": self.embed_dim,
                "filter_sizes": list(self.filter_sizes), "num_filters": self.num_filters}

    def call(self, x):
        if x.dtype.is_integer:
            embedded = tf.gather(self.embedding, x)  # (B, L, R*E)
        else:
            embedded = tf.einsum("blv,ve->ble", x, self.embedding)
        batch = tf.shape(embedded)[0]
        per_rep = tf.reshape(embedded, [batch, self.max_len, self.num_rep, self.embed_dim])
        per_rep = tf.reshape(tf.transpose(per_rep, [0, 2, 1, 3]),
                             [batch * self.num_rep, self.max_len, self.embed_dim])
        features = tf.concat([tf.reduce_max(conv(per_rep), axis=1) for conv in self.convs], 1)
        gate = self.highway_gate(features)
        features = gate * self.highway(features) + (1.0 - gate) * features
        return tf.reshape(self.logit(self.hidden(features)), [batch, self.num_rep])


def relgan_discriminator(spec: DataSpec, num_rep: int = 4, embed_dim: int = 64,
                         filter_sizes=(2, 3, 4, 5), num_filters: int = 64):
    spec.text_shape("the text models")
    return RelGANDiscriminator(spec.vocab_size, spec.shape[0], num_rep, embed_dim,
                               filter_sizes, num_filters)
