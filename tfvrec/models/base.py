"""The contract every tfvrec model follows (on top of ``tfrs.models.Model``)."""
import tensorflow as tf
import tensorflow_recommenders as tfrs


class RecommenderModel(tfrs.models.Model):
    """A tfrs model that trains under ``tf.distribute`` and scores candidates for evaluation.

    Subclasses implement:
      - ``call({"user": [B], "items": [B, C]})``: candidate scores ``[B, C]``;
      - ``training_scores(inputs, training)`` (and, for ``loss: retrieval``, ``training_vectors``):
        what the task (``self.task``, passed in: `tfvrec.tasks.build`) needs of a training batch;
        `compute_loss` is written once, here;
      - ``example_input()`` when ``call`` takes other inputs (the registry builds the model with it);
      - ``score_candidates(users, items)``: scores ``[B, C]`` for users ``[B]``,
        candidate items ``[B, C]`` (int indices);
      - optionally ``score_all_items(users)``: scores ``[B, num_items]``.
    """

    def example_input(self):
        """An input of the kind ``call`` takes (one user, one candidate): the registry builds the model
        with it (`tfvrec.registry.create_model`), so every variable exists before a restore."""
        return {"user": tf.zeros([1], tf.int64), "items": tf.zeros([1, 1], tf.int64)}

    def compute_loss(self, inputs, training=False):
        """The tfrs contract, written once for every model: the task (passed in, `tfvrec.tasks.build`)
        of what the model gives for the batch — score lists (`training_scores`) or, for the retrieval
        objective, queries and candidates (`training_vectors`) — plus the batch's L2 term."""
        if self.task.needs == "vectors":
            batch = self.training_vectors(inputs, training=training)
        else:
            batch = self.training_scores(inputs, training=training)
        loss = self.task.compute(batch)
        terms = []
        if batch.l2 and batch.squared_norms is not None:  # λ‖Θ‖², averaged over the global batch like the loss
            terms.append(batch.l2 * tf.nn.compute_average_loss(batch.squared_norms))
        if batch.penalty is not None:
            terms.append(batch.penalty)
        if terms:
            # Remembered for `train_step`, which reports it as regularization_loss (TensorBoard shows it apart).
            self._l2_term = tf.add_n(terms)
            loss += self._l2_term
        return loss

    def training_scores(self, inputs, training=False):
        """A `tfvrec.tasks.ScoredBatch` of the training batch ``inputs`` (the model's input kind)."""
        raise NotImplementedError

    def training_vectors(self, inputs, training=False):
        """A `tfvrec.tasks.EmbeddedBatch` (models that can take ``loss: retrieval``)."""
        raise NotImplementedError(f"{type(self).__name__} has no query/candidate vectors for the retrieval objective")

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
