"""HASC: hierarchical attention over social contextual aspects.

Wu, Ge, Liu, Chen, Hong, Du, Wang, *Explainable Social Contextual Image
Recommendation with Hierarchical Attention*.

Per user a: base P_a and auxiliary Q_a embeddings; per image i: base W_i and
auxiliary X_i (all of size D). Three social contextual aspects:

- upload coherence (eqs. 5, 7, 8): the images a uploaded, L_a;
  e_aj = w2ᵀ ELU(W1 [P_a, Q_a, X_j, W_j, E F_a, E F_j] + b1),
  α = softmax over L_a, X̃_a = Σ α_aj X_j;
- social influence (the paper writes no equation for it; by analogy with eqs. 5, 7, 8):
  the users a follows, S_a;
  e_ab = w2ᵀ ELU(W1 [P_a, Q_a, P_b, Q_b, E F_a, E F_b] + b1),
  β = softmax over S_a, Q̃_a = Σ β_ab Q_b;
- creator admiration: the candidate's creator C_i, one element, Q_{C_i};

and on top the aspect importance γ = softmax_l w2ᵀ ELU(W1 [aspect_l, P_a, Q_a, E F_a] + b1)
over l ∈ {X̃_a, Q̃_a, Q_{C_i}}. The score (eq. 3, plus an item bias b_i):

    R̂_ai = W_iᵀ (P_a + γ1 X̃_a + γ2 Q̃_a + γ3 Q_{C_i}) + b_i

Loss (eq. 13 with the minus-log the paper drops): −Σ ln σ(R̂_ai − R̂_aj) + λ‖P, Q, W, X‖²,
5 sampled negatives per positive, Adam, P and W initialised from a trained BPR-MF.

F_i are optional pre-trained image features (``data.features``); a user's F_a is the
mean F of their liked images (eq. 6); both enter the attention nets through one
learned projection E to D dimensions.

Ragged neighbour lists are stored flat in CSR form (capped per user by
``max_uploads`` / ``max_followees``, a fixed random subset when longer), built once
as non-trainable weights so a restored run uses exactly the lists it was trained
with; a batch gathers only its users' real elements (no padding) and the attention
softmax runs per list with segment ops. An empty list gives a zero aspect vector and its aspect is masked
out of γ; a user with no uploads, no follows, scoring an image without a creator,
gets the plain BPR score W_iᵀP_a + b_i. The user-side attention (α, β, X̃_a, Q̃_a and
the two user-side γ logits) is computed once per example, not per candidate.

Ablations (Wu et al., Tables 3, 4): ``aspects`` ⊆ {upload, social, creator},
``attention`` ∈ {att, avg} (avg: α, β uniform over the list, γ uniform over the
present aspects, the SVD++-like model), ``attention_inputs`` ⊆ {base, auxiliary}.

Retrieval (`tfvrec.models.hasc.retrieval`): γ depends on the candidate's creator, so recommendation is
two-stage: a dot-product index of [W_i, b_i] answers the query
[P_a + γ'1 X̃_a + γ'2 Q̃_a, 1] (γ' = softmax over the two user-side aspects) for
N ≫ K candidates, which are re-ranked with the exact score.
"""
import numpy as np
import tensorflow as tf

from tfvrec import tasks
from tfvrec.models.base import RecommenderModel
from tfvrec.models.embedding import Embedding, gather
from tfvrec.models.hasc.config import ASPECTS, ATTENTION_INPUTS, check
from tfvrec.models.hasc.inputs import neighbour_lists, visual_features
from tfvrec.tasks import ScoredBatch

_MASKED_LOGIT = -1e9  # exp underflows to exactly 0: masked elements get no weight, never NaN


# ----------------------------------------------------------------------------- building blocks
def segment_softmax(logits, rows, num_rows):
    """Softmax of flat ``logits`` within each row (``rows``: the row of every element)."""
    shift = tf.stop_gradient(tf.math.unsorted_segment_max(logits, rows, num_rows))  # exact: softmax is shift-free
    e = tf.exp(logits - tf.gather(shift, rows))
    return e / tf.gather(tf.math.unsorted_segment_sum(e, rows, num_rows), rows)


def masked_softmax(logits, mask):
    """Softmax over the last axis restricted to ``mask``; all-masked rows give all zeros."""
    weights = tf.nn.softmax(tf.where(mask, logits, tf.fill(tf.shape(logits), tf.constant(_MASKED_LOGIT,
                                                                                          logits.dtype))))
    return weights * tf.cast(mask, logits.dtype)


def uniform_weights(mask):
    """AVG attention: 1/(number present) over the last axis (zeros when none is present)."""
    mask = tf.cast(mask, tf.float32)
    return mask / tf.maximum(tf.reduce_sum(mask, -1, keepdims=True), 1.0)


class AttentionNet(tf.keras.layers.Layer):
    """e = w2ᵀ ELU(W1 [query, element] + b1).

    ``W1 [query, element] = W1_q query + W1_e element``, so the query side is
    projected once per user and shared by that user's elements.
    """

    def __init__(self, units, name=None):
        super().__init__(name=name)
        self.query_projection = tf.keras.layers.Dense(units, name="query_projection")  # W1_q, b1
        self.element_projection = tf.keras.layers.Dense(units, use_bias=False, name="element_projection")  # W1_e
        self.output_weights = tf.keras.layers.Dense(1, use_bias=False, name="output_weights")  # w2

    def call(self, query, elements, rows=None, positions=None):
        """Logits of elements. Either ``query`` [B, q] and ``elements`` [B, L, e] → [B, L]; or flat
        lists: element k of the lists is ``elements[positions[k]]`` (``elements`` holds each distinct
        element once, so it is projected once) and belongs to query row ``rows[k]`` → [N]."""
        projected_query = self.query_projection(query)
        projected_elements = self.element_projection(elements)
        if rows is None:
            projected_query = projected_query[:, None, :]
        else:
            projected_query = tf.gather(projected_query, rows)
            projected_elements = tf.gather(projected_elements, positions)
        hidden = tf.nn.elu(projected_query + projected_elements)
        return tf.squeeze(self.output_weights(hidden), -1)


# ----------------------------------------------------------------------------- the model

class HASC(RecommenderModel):
    """HASC as a tfrs model; see the module docstring for the equations."""

    def __init__(self, num_users, num_items, uploads, followees, item_creator, embedding_dim=15,
                 attention_dim=20, l2=0.01, aspects=ASPECTS, attention="att", attention_inputs=ATTENTION_INPUTS,
                 item_features=None, user_features=None, use_item_bias=True, init_stddev=0.01, task=None):
        """``uploads`` (L_a) / ``followees`` (S_a): ``(flat_members, row_splits)`` from `capped_lists`;
        ``item_creator``: user index per item (-1: none); ``item_features`` [num_items, f] and
        ``user_features`` [num_users, f] (F_i and F_a, eq. 6) or None."""
        super().__init__()
        self.num_users, self.num_items, self.embedding_dim, self.l2 = num_users, num_items, embedding_dim, l2
        self.aspects, self.attention_kind = tuple(aspects), attention
        self.attention_inputs = tuple(attention_inputs)
        self.use_item_bias = use_item_bias
        self.visual = item_features is not None

        def embedding(rows, name, dim=embedding_dim, stddev=init_stddev):
            init = tf.keras.initializers.RandomNormal(stddev=stddev) if stddev else "zeros"
            return Embedding(rows, dim, embeddings_initializer=init, name=name)  # shardable (parameter servers)
        self.base_user = embedding(num_users, "base_user_embedding")  # P
        self.auxiliary_user = embedding(num_users, "auxiliary_user_embedding")  # Q
        self.base_item = embedding(num_items, "base_item_embedding")  # W
        self.auxiliary_item = embedding(num_items, "auxiliary_item_embedding")  # X
        self.item_bias = embedding(num_items, "item_bias", dim=1, stddev=0) if use_item_bias else None

        # Neighbour lists: non-trainable weights, so checkpoints carry the exact lists.
        def table(name, values):
            values = np.asarray(values, np.int64)
            return self.add_weight(name=name, shape=values.shape, dtype=tf.int64, trainable=False,
                                   initializer=tf.constant_initializer(values))
        self.upload_members, self.upload_splits = table("upload_members", uploads[0]), \
            table("upload_splits", uploads[1])
        self.followee_members, self.followee_splits = table("followee_members", followees[0]), \
            table("followee_splits", followees[1])
        self.item_creator = table("item_creator", item_creator)

        if self.visual:
            # F is data, not a parameter: constants, projected by the learned E.
            self.item_features = tf.constant(item_features, tf.float32)
            self.user_features = tf.constant(user_features, tf.float32)
            self.visual_projection = tf.keras.layers.Dense(embedding_dim, use_bias=False, name="visual_projection")
        if attention == "att":
            self.upload_attention = AttentionNet(attention_dim, name="upload_attention")  # Θ_u
            self.social_attention = AttentionNet(attention_dim, name="social_attention")  # Θ_s
            self.aspect_attention = AttentionNet(attention_dim, name="aspect_attention")  # Θ_a
        self.task = task if task is not None else tasks.PairwiseRankingTask()

    # -- attention inputs ---------------------------------------------------------------------
    def _visual_of_items(self, items):
        return self.visual_projection(gather(self.item_features, items))

    def _visual_of_users(self, users):
        return self.visual_projection(gather(self.user_features, users))

    def _user_inputs(self, p, q, users):
        """The user-side attention input: [P_a, Q_a, E F_a] (per ``attention_inputs``)."""
        parts = [p] if "base" in self.attention_inputs else []
        parts += [q] if "auxiliary" in self.attention_inputs else []
        if self.visual:
            parts.append(self._visual_of_users(users))
        return tf.concat(parts, -1)

    @staticmethod
    def _lists_of(members, splits, users):
        """The lists of ``users`` [B], flattened: ``(member ids [N], row of each [N], length [B])``."""
        starts, ends = tf.gather(splits, users), tf.gather(splits, users + 1)
        positions = tf.ragged.range(starts, ends)
        return tf.gather(members, positions.flat_values), positions.value_rowids(), ends - starts

    def _aggregate(self, net, user_input, ids, rows, lengths, value_embedding, base_embedding, visual_of):
        """One bottom-layer aspect over flat lists (eqs. 5, 7, 8; the social one alike).

        ``value_embedding`` gives the aggregated vectors (X_j or Q_b), ``base_embedding`` the
        base ones fed to the attention (W_j or P_b). Each distinct element of the batch is
        looked up and projected once, so the embedding gradients have one row per distinct
        id. Returns ``(weights [N], aggregate [B, D], mean ‖value‖² per list [B])``.
        """
        batch = tf.shape(lengths)[0]
        unique, position = tf.unique(ids)
        values = value_embedding(unique)
        if self.attention_kind == "att":
            parts = [base_embedding(unique)] if "base" in self.attention_inputs else []
            parts += [values] if "auxiliary" in self.attention_inputs else []
            parts += [visual_of(unique)] if self.visual else []
            logits = net(user_input, tf.concat(parts, -1), rows=rows, positions=position)
            weights = segment_softmax(logits, rows, batch)
        else:  # AVG: 1/|list|
            weights = 1.0 / tf.gather(tf.cast(lengths, tf.float32), rows)
        aggregate = tf.math.unsorted_segment_sum(weights[:, None] * tf.gather(values, position), rows, batch)
        squares = tf.gather(tf.reduce_sum(tf.square(values), -1), position)
        mean_square = tf.math.unsorted_segment_sum(squares, rows, batch) / \
            tf.maximum(tf.cast(lengths, tf.float32), 1.0)
        return weights, aggregate, mean_square

    # -- the bottom layer: user-side context, once per user -----------------------------------
    def user_context(self, users):
        """Everything of eq. 3 that depends on the user alone, for users ``[B]``.

        Returns a dict: ``p``, ``q`` [B, D]; ``upload_vector`` X̃_a and ``social_vector`` Q̃_a
        [B, D]; the flat lists ``uploads`` / ``followees`` [N] with their ``*_rows`` [N] and
        ``*_count`` [B], and weights ``alpha`` / ``beta`` [N]; ``user_input`` (for γ);
        ``upload_logit`` / ``social_logit`` [B] (γ logits of the user-side aspects),
        ``upload_present`` / ``social_present`` [B], and ``*_square`` [B] for the regulariser.
        """
        users = tf.cast(users, tf.int64)
        p, q = self.base_user(users), self.auxiliary_user(users)
        user_input = self._user_inputs(p, q, users)
        ctx = {"users": users, "p": p, "q": q, "user_input": user_input}
        zeros = tf.zeros_like(p)
        batch_zeros = tf.zeros(tf.shape(users), tf.float32)

        uploads, rows, count = self._lists_of(self.upload_members, self.upload_splits, users)
        ctx.update(uploads=uploads, upload_rows=rows, upload_count=count)
        if "upload" in self.aspects:  # L_a: X_j aggregated, attention over [W_j, X_j, E F_j]
            ctx["alpha"], ctx["upload_vector"], ctx["upload_square"] = self._aggregate(
                getattr(self, "upload_attention", None), user_input, uploads, rows, count, self.auxiliary_item,
                self.base_item, self._visual_of_items)
        else:
            ctx["alpha"], ctx["upload_vector"], ctx["upload_square"] = tf.zeros(tf.shape(uploads)), zeros, \
                batch_zeros

        followees, rows, count = self._lists_of(self.followee_members, self.followee_splits, users)
        ctx.update(followees=followees, followee_rows=rows, followee_count=count)
        if "social" in self.aspects:  # S_a: Q_b aggregated, attention over [P_b, Q_b, E F_b]
            ctx["beta"], ctx["social_vector"], ctx["social_square"] = self._aggregate(
                getattr(self, "social_attention", None), user_input, followees, rows, count,
                self.auxiliary_user, self.base_user, self._visual_of_users)
        else:
            ctx["beta"], ctx["social_vector"], ctx["social_square"] = tf.zeros(tf.shape(followees)), zeros, \
                batch_zeros

        ctx["upload_present"] = tf.logical_and("upload" in self.aspects, ctx["upload_count"] > 0)
        ctx["social_present"] = tf.logical_and("social" in self.aspects, ctx["followee_count"] > 0)
        if self.attention_kind == "att":
            logits = self.aspect_attention(user_input, tf.stack([ctx["upload_vector"], ctx["social_vector"]], 1))
            ctx["upload_logit"], ctx["social_logit"] = logits[:, 0], logits[:, 1]
        else:
            ctx["upload_logit"] = ctx["social_logit"] = batch_zeros
        return ctx

    # -- the top layer: aspect importance and the score, per candidate ------------------------
    def aspect_weights(self, ctx, creators):
        """γ ``[B, C, 3]`` (upload, social, creator) for candidates whose creators are ``creators`` [B, C]."""
        creator_present = tf.logical_and("creator" in self.aspects, creators >= 0)
        shape = tf.shape(creators)
        if self.attention_kind == "att":
            creator_logit = self.aspect_attention(ctx["user_input"], self.auxiliary_user(tf.maximum(creators, 0)))
            logits = tf.stack([tf.broadcast_to(ctx["upload_logit"][:, None], shape),
                               tf.broadcast_to(ctx["social_logit"][:, None], shape), creator_logit], -1)
        else:
            logits = tf.zeros(tf.concat([shape, [3]], 0))
        mask = tf.stack([tf.broadcast_to(ctx["upload_present"][:, None], shape),
                         tf.broadcast_to(ctx["social_present"][:, None], shape), creator_present], -1)
        return masked_softmax(logits, mask) if self.attention_kind == "att" else uniform_weights(mask)

    def score_with_context(self, ctx, items):
        """Eq. 3 for candidates ``items`` [B, C]; returns (scores [B, C], parts for the regulariser)."""
        items = tf.cast(items, tf.int64)
        w = self.base_item(items)  # [B, C, D]
        creators = gather(self.item_creator, items)
        q_creator = self.auxiliary_user(tf.maximum(creators, 0))  # Q_{C_i}
        gamma = self.aspect_weights(ctx, creators)
        scores = (tf.einsum("bcd,bd->bc", w, ctx["p"])
                  + gamma[..., 0] * tf.einsum("bcd,bd->bc", w, ctx["upload_vector"])
                  + gamma[..., 1] * tf.einsum("bcd,bd->bc", w, ctx["social_vector"])
                  + gamma[..., 2] * tf.reduce_sum(w * q_creator, -1))
        b = None
        if self.use_item_bias:
            b = tf.squeeze(self.item_bias(items), -1)
            scores += b
        return scores, {"w": w, "b": b, "q_creator": q_creator, "creator_present": creators >= 0}

    def call(self, inputs):
        """Scores of ``inputs["items"]`` ``[B, C]`` for ``inputs["user"]`` ``[B]``."""
        return self.score_candidates(inputs["user"], inputs["items"])

    def score_candidates(self, users, items):
        return self.score_with_context(self.user_context(users), items)[0]

    def score_all_items(self, users):
        """Scores [B, num_items]. γ depends on the item only through its creator, so the creator
        γ logit is computed per (user, creator) — num_users of them — and gathered per item."""
        ctx = self.user_context(users)
        w = self.base_item.embeddings  # [I, D]
        creators = tf.convert_to_tensor(self.item_creator)
        present = tf.logical_and("creator" in self.aspects, creators >= 0)[None, :]
        batch = tf.shape(ctx["p"])[0]
        if self.attention_kind == "att":
            # Creator-aspect logit for every (user, possible creator), then per item.
            per_creator = self.aspect_attention(ctx["user_input"], self.auxiliary_user.embeddings[None])  # [B, U]
            creator_logit = tf.gather(per_creator, tf.maximum(creators, 0), axis=1)  # [B, I]
            up = tf.broadcast_to(ctx["upload_logit"][:, None], tf.shape(creator_logit))
            so = tf.broadcast_to(ctx["social_logit"][:, None], tf.shape(creator_logit))
            logits = tf.stack([up, so, creator_logit], -1)
        else:
            logits = tf.zeros([batch, self.num_items, 3])
        mask = tf.stack([tf.broadcast_to(ctx["upload_present"][:, None], [batch, self.num_items]),
                         tf.broadcast_to(ctx["social_present"][:, None], [batch, self.num_items]),
                         tf.broadcast_to(present, [batch, self.num_items])], -1)
        gamma = masked_softmax(logits, mask) if self.attention_kind == "att" else uniform_weights(mask)
        creator_dot = tf.reduce_sum(w * gather(self.auxiliary_user.embeddings, tf.maximum(creators, 0)), -1)
        scores = (tf.matmul(ctx["p"], w, transpose_b=True)
                  + gamma[..., 0] * tf.matmul(ctx["upload_vector"], w, transpose_b=True)
                  + gamma[..., 1] * tf.matmul(ctx["social_vector"], w, transpose_b=True)
                  + gamma[..., 2] * creator_dot[None, :])
        if self.use_item_bias:
            scores += tf.transpose(self.item_bias.embeddings)
        return scores

    # -- training -------------------------------------------------------------------------------
    def training_scores(self, inputs, training=False):
        """Eq. 13's lists [R̂_ai, R̂_aj…] of a batch of bootstrap pairs (5 negatives in the paper), with
        λ‖P, Q, W, X‖² of each example."""
        items = tf.concat([inputs["positive"][:, None], inputs["negatives"]], axis=1)
        ctx = self.user_context(inputs["user"])
        scores, parts = self.score_with_context(ctx, items)
        return ScoredBatch(scores, squared_norms=self._squared_norms(ctx, parts), l2=self.l2)

    def _squared_norms(self, ctx, parts):
        """λ‖P, Q, W, X‖² of one training example: its user's P_a, Q_a, the candidates' W_i (and
        b_i) and creators' Q_{C_i}, and the neighbours' X_j and Q_b averaged over each list (so a
        user's penalty does not grow with the length of their lists)."""
        def sq(t, axes=-1):
            return tf.reduce_sum(tf.square(tf.cast(t, tf.float32)), axes)
        norms = sq(ctx["p"]) + sq(ctx["q"]) + sq(parts["w"], [-2, -1])
        if parts["b"] is not None:
            norms += sq(parts["b"])
        if "creator" in self.aspects:
            norms += tf.reduce_sum(sq(parts["q_creator"]) * tf.cast(parts["creator_present"], tf.float32), -1)
        norms += ctx["upload_square"] + ctx["social_square"]
        return norms

    def load_bpr_weights(self, bpr_model, auxiliary_too=False):
        """P ← BPR's user factors, W ← its item factors, b ← its item bias (the paper's §4.1:
        P and W start from a trained BPR; `tfvrec.models.hasc.warm_start`).

        With ``auxiliary_too`` also Q ← the user factors and X ← the item factors, which
        starts each aspect as the neighbourhood model the paper reads eq. 4 as: Q_bᵀW_i a
        followee's BPR preference for i, X_jᵀW_i the BPR similarity of i to an upload j.
        """
        user = bpr_model.user_model.get_layer("user_embedding").embeddings
        item = bpr_model.item_model.get_layer("item_embedding").embeddings
        if user.shape != self.base_user.embeddings.shape or item.shape != self.base_item.embeddings.shape:
            raise ValueError(f"BPR-MF factors {user.shape}/{item.shape} do not match HASC's P "
                             f"{self.base_user.embeddings.shape} / W {self.base_item.embeddings.shape}")
        self.base_user.embeddings.assign(user)
        self.base_item.embeddings.assign(item)
        if auxiliary_too:
            self.auxiliary_user.embeddings.assign(user)
            if self.auxiliary_item.built:  # X exists only when the upload aspect is on
                self.auxiliary_item.embeddings.assign(item)
        if self.use_item_bias:
            try:
                self.item_bias.embeddings.assign(bpr_model.item_model.get_layer("item_bias").embeddings)
            except ValueError:  # a BPR-MF without item bias: HASC's bias starts at zero
                pass

    # -- retrieval: the two-stage search of `tfvrec.models.hasc.retrieval` ----------------------
    def query_vectors(self, users):
        """Retrieval query [B, D+1]: [P_a + γ'1 X̃_a + γ'2 Q̃_a, 1], γ' over the user-side aspects."""
        ctx = self.user_context(tf.cast(users, tf.int64))
        logits = tf.stack([ctx["upload_logit"], ctx["social_logit"]], -1)
        mask = tf.stack([ctx["upload_present"], ctx["social_present"]], -1)
        g = masked_softmax(logits, mask) if self.attention_kind == "att" else uniform_weights(mask)
        vector = ctx["p"] + g[:, :1] * ctx["upload_vector"] + g[:, 1:] * ctx["social_vector"]
        return tf.concat([vector, tf.ones_like(vector[:, :1])], -1)

    def candidate_vectors(self):
        """Retrieval candidates [num_items, D+1]: [W_i, b_i] (dot product with `query_vectors`)."""
        w = tf.convert_to_tensor(self.base_item.embeddings)
        b = tf.convert_to_tensor(self.item_bias.embeddings) if self.use_item_bias else tf.zeros_like(w[:, :1])
        return tf.concat([w, b], -1)


# ----------------------------------------------------------------------------- construction

def create(config, dataset):
    c = config.model.hasc
    check(config)
    uploads, followees = neighbour_lists(dataset, config)
    item_features, user_features = visual_features(dataset, config)
    return HASC(dataset.num_users, dataset.num_items, uploads, followees, dataset.item_creator,
                embedding_dim=c.embedding_dim, attention_dim=c.attention_dim, l2=c.l2, aspects=c.aspects,
                attention=c.attention, attention_inputs=c.attention_inputs, item_features=item_features,
                user_features=user_features, use_item_bias=c.use_item_bias, init_stddev=c.init_stddev,
                task=tasks.build(c, dataset))
