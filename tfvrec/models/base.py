"""The contract every tfvrec model follows (on top of ``tfrs.models.Model``)."""
import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfvrec import losses
from tfvrec.tasks import PairwiseRankingTask
from tfvrec.tasks.retrieval import RetrievalTask


def pairwise_task(section):
    """The task of a model config section's ``loss``: a pairwise loss by name (and ``margin``),
    or ``retrieval`` (`tfvrec.tasks.retrieval`, with ``section.retrieval``'s options)."""
    if section.loss == "retrieval":
        r = section.retrieval
        return RetrievalTask(temperature=r.temperature, remove_accidental_hits=r.remove_accidental_hits,
                             cross_replica=r.cross_replica)
    return PairwiseRankingTask(loss=losses.get(section.loss, margin=section.margin))


def item_frequency(dataset):
    """Share of the training interactions on each item ``[num_items]`` (float32): how often the
    bootstrap draws it as a positive, hence as an in-batch negative (the log-Q of retrieval)."""
    counts = np.bincount(dataset.split("train")["item"].to_numpy(np.int64), minlength=dataset.num_items)
    return (counts / max(1, counts.sum())).astype(np.float32)


class RecommenderModel(tfrs.models.Model):
    """A tfrs model that trains under ``tf.distribute`` and scores candidates for evaluation.

    Subclasses implement:
      - ``call({"user": [B], "items": [B, C]})``: candidate scores ``[B, C]``;
      - ``compute_loss(inputs, training)`` (the tfrs contract), its objective a tfrs task
        (``self.task``; `pairwise_task` builds the one a config section names, and
        `ranking_loss` applies it to score lists with the L2 term);
      - ``make_train_dataset(dataset, trainer_config, seed)``: an infinite, globally
        batched ``tf.data.Dataset`` of training examples, plus ``steps_per_epoch``;
      - ``score_candidates(users, items)``: scores ``[B, C]`` for users ``[B]``,
        candidate items ``[B, C]`` (int indices);
      - optionally ``score_all_items(users)``: scores ``[B, num_items]``.
    """

    def example_input(self):
        """An input of the kind ``call`` takes (one user, one candidate): the registry builds the model
        with it (`tfvrec.registry.create_model`), so every variable exists before a restore."""
        return {"user": tf.zeros([1], tf.int64), "items": tf.zeros([1, 1], tf.int64)}

    def ranking_loss(self, scores, squared_norms=None, l2=0.0):
        """``self.task`` on score lists ``[positive, negative_1..n]`` ``[B, 1 + n]``, plus
        ``l2 × mean(squared_norms)`` (λ‖Θ‖² of each example's parameters, averaged over the
        global batch like the ranking loss)."""
        labels = tf.concat([tf.ones_like(scores[:, :1]), tf.zeros_like(scores[:, 1:])], axis=1)
        return self._with_l2(self.task(labels, scores), squared_norms, l2)

    def _with_l2(self, loss, squared_norms, l2):
        """``loss + l2 × mean(squared_norms)``; the L2 term is remembered for `train_step`'s
        ``regularization_loss`` (TensorBoard shows the two parts apart, for every model)."""
        if l2 and squared_norms is not None:
            self._l2_term = l2 * tf.nn.compute_average_loss(squared_norms)
            loss += self._l2_term
        return loss

    def retrieval_loss(self, query, positives, positive_ids, negatives=None, negative_ids=None, squared_norms=None,
                       l2=0.0, options=None, frequency=None):
        """``self.task`` (a `RetrievalTask`) on queries ``[B, d]`` and their positives ``[B, d]``,
        with the examples' sampled negatives ``[B, n, d]`` as extra candidates when
        ``options.extra_negatives``, plus ``l2 × mean(squared_norms)``.

        With ``options.logq_correction``, each candidate's logit is corrected by log Q(i): the
        candidate pool mixes positives drawn ∝ ``frequency`` (per item) and n uniform
        negatives per positive, so Q(i) ∝ frequency_i + n / num_items.
        """
        extra = None
        k = 0
        if options.extra_negatives and negatives is not None:
            k = tf.shape(negative_ids)[1]
            extra = [tf.reshape(negatives, [-1, tf.shape(negatives)[-1]]), tf.reshape(negative_ids, [-1]), None]
        probability = None
        if options.logq_correction and frequency is not None:
            uniform = tf.cast(k, tf.float32) / tf.cast(tf.size(frequency), tf.float32)
            probability = tf.gather(frequency, positive_ids) + uniform
            if extra is not None:
                extra[2] = tf.gather(frequency, extra[1]) + uniform
        loss = self.task(query, positives, positive_ids, candidate_sampling_probability=probability,
                         extra=tuple(extra) if extra is not None else None)
        return self._with_l2(loss, squared_norms, l2)

    def train_step(self, inputs):
        # tfrs' train_step adds regularization losses on every replica, so gradients
        # summed across replicas would count them num_replicas times; scale them.
        self._l2_term = None
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            regularization_loss = tf.nn.scale_regularization_loss(
                tf.add_n([tf.reduce_sum(l) for l in self.losses]) if self.losses else tf.constant(0.0))
            total_loss = loss + regularization_loss
            scaled = self.optimizer.get_scaled_loss(total_loss) if hasattr(self.optimizer, "get_scaled_loss") \
                else total_loss
        if self._l2_term is not None:  # an L2 term the model added to its loss (BPR-MF, HASC)
            loss, regularization_loss = loss - self._l2_term, regularization_loss + self._l2_term
        gradients = tape.gradient(scaled, self.trainable_variables)
        if hasattr(self.optimizer, "get_unscaled_gradients"):  # mixed precision
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        metrics = {metric.name: metric.result() for metric in self.metrics}
        metrics.update(loss=loss, regularization_loss=regularization_loss, total_loss=total_loss)
        return metrics

    # -- evaluation interface (numpy in, numpy out) -------------------------------
    def score(self, users, items):
        return self.score_candidates(tf.constant(users, tf.int64), tf.constant(items, tf.int64)).numpy()

    def score_all(self, users):
        return self.score_all_items(tf.constant(users, tf.int64)).numpy()

    def score_candidates(self, users, items):
        raise NotImplementedError

    def score_all_items(self, users):
        num_items = self.num_items
        items = tf.tile(tf.range(num_items, dtype=tf.int64)[tf.newaxis], [tf.shape(users)[0], 1])
        return self.score_candidates(users, items)


def sample_negatives(users, num_items, num_negatives, positives, seed):
    """Uniform negatives ``[B, n]`` avoiding each user's training positives.

    ``positives`` is `positive_table`'s hash set of ``user * num_items + item`` over all
    training pairs (a hash lookup: ``tf.searchsorted`` over the sorted keys costs ~10× as
    much on CPU). Collisions are redrawn twice; the chance one survives is (density)³,
    e.g. 1e-7 on Flickr F.S, which is the usual BPR approximation.
    """
    shape = tf.stack([tf.shape(users)[0], num_negatives])
    negatives = tf.random.stateless_uniform(shape, seed=seed, minval=0, maxval=num_items, dtype=tf.int64)
    for retry in range(2):
        clash = tf.reshape(positives.lookup(tf.reshape(users[:, None] * num_items + negatives, [-1])), shape) > 0
        redraw = tf.random.stateless_uniform(shape, seed=seed + retry + 1, minval=0, maxval=num_items,
                                             dtype=tf.int64)
        negatives = tf.where(clash, redraw, negatives)
    return negatives


def positive_keys(users, items, num_items):
    return np.unique(np.asarray(users, np.int64) * num_items + np.asarray(items, np.int64))


def positive_table(users, items, num_items):
    """The training pairs ``user * num_items + item`` as a hash set (key → 1, else 0)."""
    keys = tf.constant(positive_keys(users, items, num_items))
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, tf.ones_like(keys)), default_value=0)
