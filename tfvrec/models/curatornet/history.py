"""Purchase histories in time order: the baskets P_{u,0..N_u-1} of Cartagena et al.'s Table 1."""
import dataclasses

import numpy as np
import pandas as pd


@dataclasses.dataclass
class PurchaseHistory:
    """The training split as chronological baskets, in CSR layout.

    ``items`` lists every purchase sorted by (user, basket time); user u's purchases
    are ``items[user_start[u]:user_start[u + 1]]``, basket b's are
    ``items[basket_start[b]:basket_start[b + 1]]``. So ``I^+_{u,k}`` (everything up to
    basket k) is a contiguous range too.
    """

    num_users: int
    num_items: int
    items: np.ndarray
    user_start: np.ndarray
    basket_start: np.ndarray
    basket_user: np.ndarray
    purchase_basket: np.ndarray  # basket of each purchase
    has_baskets: bool
    basket_source: str  # where baskets came from, for the log

    @classmethod
    def from_frame(cls, frame, num_users, num_items):
        """From an interaction frame (user, item[, timestamp][, basket]) of int indices."""
        users = frame["user"].to_numpy(np.int64)
        order_in_file = np.arange(len(frame))
        time = frame["timestamp"].to_numpy(np.int64) if "timestamp" in frame else order_in_file
        if "basket" in frame:
            key, source = frame["basket"].astype(str).to_numpy(), "the basket column"
        elif "timestamp" in frame:
            key, source = time, "user + timestamp (no basket column)"
        else:
            key, source = order_in_file, "none: one purchase per basket (no basket or timestamp column)"
        basket_code = pd.factorize(pd.MultiIndex.from_arrays([users, key]))[0]
        basket_time = pd.Series(time).groupby(basket_code).transform("min").to_numpy()
        order = np.lexsort((order_in_file, basket_code, basket_time, users))
        users, basket_code = users[order], basket_code[order]
        items = frame["item"].to_numpy(np.int64)[order]
        new_basket = np.r_[True, (basket_code[1:] != basket_code[:-1]) | (users[1:] != users[:-1])]
        basket_start = np.r_[np.flatnonzero(new_basket), len(items)].astype(np.int64)
        purchase_basket = np.cumsum(new_basket) - 1
        return cls(num_users=int(num_users), num_items=int(num_items), items=items,
                   user_start=np.searchsorted(users, np.arange(num_users + 1)).astype(np.int64),
                   basket_start=basket_start, basket_user=users[basket_start[:-1]],
                   purchase_basket=purchase_basket.astype(np.int64),
                   has_baskets="basket" in frame or "timestamp" in frame, basket_source=source)

    def purchase_user(self):
        return np.repeat(np.arange(self.num_users), np.diff(self.user_start))

    def recent_profiles(self, cap):
        """``(row_splits, items)``: each user's purchases, the most recent ``cap`` (0 = all)."""
        start, end = self.user_start[:-1], self.user_start[1:]
        if cap:
            start = np.maximum(start, end - cap)
        lengths = end - start
        splits = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        positions = np.repeat(start - splits[:-1], lengths) + np.arange(splits[-1])
        return splits, self.items[positions]
