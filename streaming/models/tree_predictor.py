"""Micro-batch prediction for a fitted ``HistGradientBoostingClassifier``, in one compiled call.

``predict_proba`` pays a fixed cost per call before it walks a single tree: input
validation, and a ColumnTransformer whose OrdinalEncoder re-encodes the categorical
columns (codes that :class:`~streaming.model.FeatureEncoder` already made). It then walks
the trees one call per tree, each by an OpenMP team that, on a small box shared with the
broker and the Kafka client threads, waits for a free core on every one of the 100 calls.

:class:`TreeEnsemblePredictor` does the fixed work once, when a model is loaded: the
column order and category lookup of the fitted preprocessor, and the trees laid end to end
in flat arrays. Per batch, :func:`streaming.tree_kernel.sum_of_trees` walks every tree for
every row in one compiled call that releases the GIL (so the Kafka client's threads run
meanwhile), and adds the trees in the same order as ``predict_proba``: the probabilities
are the same numbers. A scorer scales out by processes (one per core, sharing the
partitions), not by threads inside one prediction.

It reads private attributes of scikit-learn; :meth:`TreeEnsemblePredictor.for_estimator`
therefore checks itself against ``predict_proba`` on a probe matrix and returns ``None``
(the caller keeps ``predict_proba``) when anything differs or is missing.

>>> import numpy as np
>>> from sklearn.ensemble import HistGradientBoostingClassifier
>>> rng = np.random.default_rng(0)
>>> X = np.column_stack([rng.normal(size=500), rng.integers(0, 3, 500)]).astype(float)
>>> y = (X[:, 0] + (X[:, 1] == 2) > 0.5).astype(int)
>>> model = HistGradientBoostingClassifier(max_iter=20, categorical_features=[False, True]).fit(X, y)
>>> fast = TreeEnsemblePredictor.for_estimator(model)
>>> bool(np.array_equal(fast.predict_proba(X), model.predict_proba(X)[:, 1]))
True
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from scipy.special import expit

from streaming.logs import get_logger

log = get_logger(__name__)

_PROBE_ROWS = 256


class TreeEnsemblePredictor:
    """``predict_proba(X)[:, 1]`` of a binary ``HistGradientBoostingClassifier``.

    Build it with :meth:`for_estimator`, which verifies it; the constructor trusts its
    arguments.
    """

    def __init__(self, estimator: Any, kernel: Any) -> None:
        self._kernel = kernel
        self._baseline = float(np.asarray(estimator._baseline_prediction).ravel()[0])
        self._forest = _flat_forest(estimator)
        categorical = getattr(estimator, "is_categorical_", None)
        if estimator._preprocessor is None or categorical is None:
            self._order: np.ndarray | None = None
            self._categories: list[tuple[int, np.ndarray]] = []
        else:
            # The fitted ColumnTransformer puts the encoded categorical columns first.
            categorical = np.asarray(categorical, dtype=bool)
            cat_columns = np.flatnonzero(categorical)
            self._order = np.concatenate([cat_columns, np.flatnonzero(~categorical)])
            encoder = estimator._preprocessor.named_transformers_["encoder"]
            self._categories = [
                (
                    position,
                    np.asarray(values, dtype=np.float64)[~np.isnan(np.asarray(values, dtype=np.float64))],
                )
                for position, values in enumerate(encoder.categories_)
            ]
            if len(self._categories) != len(cat_columns):
                raise ValueError("the preprocessor encodes other columns than the categorical ones")

    @classmethod
    def for_estimator(cls, estimator: Any) -> TreeEnsemblePredictor | None:
        """A verified predictor for ``estimator``, or ``None`` when it cannot serve it exactly."""
        try:
            from sklearn.ensemble import HistGradientBoostingClassifier

            if not isinstance(estimator, HistGradientBoostingClassifier):
                return None
            if estimator.n_trees_per_iteration_ != 1 or len(estimator.classes_) != 2:
                return None
            from streaming.models.tree_kernel import sum_of_trees

            predictor = cls(estimator, sum_of_trees)
            probe = predictor._probe_matrix(estimator)
            expected = np.asarray(estimator.predict_proba(probe)[:, 1])
            if not np.array_equal(predictor.predict_proba(probe), expected):
                log.warning("the compiled tree walker disagrees with predict_proba; using predict_proba")
                return None
            return predictor
        except Exception as exc:  # private scikit-learn attributes moved: keep predict_proba
            log.warning("no compiled tree walker for this model (%s); using predict_proba", exc)
            return None

    def with_signed_indices(self) -> TreeEnsemblePredictor:
        """The same walker over signed (int64) node indices, as it was before they became
        unsigned: the baseline `driftloop bench throughput` measures the walk against."""
        signed = copy.copy(self)
        signed._forest = tuple(a.astype(np.int64) if a.dtype == np.uint64 else a for a in self._forest)
        return signed

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """The probability of class 1 for each row of ``matrix`` (float64, spec column order)."""
        # C order always: each memory layout would be compiled separately, on first use.
        rows = np.ascontiguousarray(self._preprocess(np.asarray(matrix, dtype=np.float64)))
        raw = np.empty(rows.shape[0])
        self._kernel(rows, *self._forest, self._baseline, raw)
        return np.asarray(expit(raw))

    def _probe_matrix(self, estimator: Any) -> np.ndarray:
        """Rows that reach many leaves: values around every bin threshold, categories known
        and unknown, and missing values (in the estimator's input column order)."""
        rng = np.random.default_rng(0)
        thresholds = estimator._bin_mapper.bin_thresholds_  # in the preprocessor's column order
        n_features = estimator.n_features_in_
        positions = np.arange(n_features) if self._order is None else np.argsort(self._order)
        columns = []
        for position in positions.tolist():
            if position < len(self._categories):  # categorical columns come first
                known = self._categories[position][1]
                pool = np.concatenate([known, [known.max(initial=0) + 1, -1.0, 0.5]])
            else:
                cuts = np.asarray(thresholds[position], dtype=np.float64)
                pool = np.concatenate([cuts, np.nextafter(cuts, np.inf), [0.0, 1e9, -1e9]])
            column = rng.choice(pool, size=_PROBE_ROWS)
            column[rng.random(_PROBE_ROWS) < 0.05] = np.nan
            columns.append(column)
        return np.column_stack(columns)

    def _preprocess(self, matrix: np.ndarray) -> np.ndarray:
        if self._order is None:
            return matrix
        rows = matrix[:, self._order]  # a copy, in the preprocessor's column order
        for position, known in self._categories:
            column = rows[:, position]
            where = np.searchsorted(known, column)
            inside = where < len(known)
            found = np.zeros(len(column), dtype=bool)
            found[inside] = known[where[inside]] == column[inside]
            rows[:, position] = np.where(found, where, np.nan)  # unknown or missing: NaN
        return rows


def _flat_forest(estimator: Any) -> tuple[np.ndarray, ...]:
    """The estimator's trees end to end, in :func:`~streaming.tree_kernel.sum_of_trees`'s
    argument order (roots, node columns, left bitsets, known-category bitsets)."""
    known_bitsets, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
    trees = [(p.nodes, p.raw_left_cat_bitsets) for (p,) in estimator._predictors]
    roots, columns, bitsets = [], [], []
    first_node = first_bitset = 0
    for nodes, left_bitsets in trees:
        features = nodes["feature_idx"].astype(np.int64)
        roots.append(first_node)
        columns.append(
            (
                features,
                nodes["num_threshold"].astype(np.float64),
                nodes["left"].astype(np.int64) + first_node,
                nodes["right"].astype(np.int64) + first_node,
                nodes["missing_go_to_left"].astype(np.bool_),
                nodes["is_leaf"].astype(np.bool_),
                nodes["is_categorical"].astype(np.bool_),
                nodes["value"].astype(np.float64),
                nodes["bitset_idx"].astype(np.int64) + first_bitset,
                # the known-category bitset row of the node's feature (used at categorical nodes only)
                np.asarray(f_idx_map, dtype=np.int64)[features]
                if len(f_idx_map)
                else np.zeros_like(features),
            )
        )
        bitsets.append(np.asarray(left_bitsets, dtype=np.uint32).reshape(-1, 8))
        first_node += len(nodes)
        first_bitset += len(left_bitsets)
    node_columns = [np.ascontiguousarray(np.concatenate(column)) for column in zip(*columns, strict=True)]
    left = np.concatenate(bitsets) if first_bitset else np.zeros((1, 8), dtype=np.uint32)
    known = np.asarray(known_bitsets, dtype=np.uint32).reshape(-1, 8)
    if not len(known):
        known = np.zeros((1, 8), dtype=np.uint32)
    (feature, threshold, lefts, rights, missing, leaf, categorical, value, left_row, known_row) = node_columns
    # Unsigned indices: numba checks a signed index for being negative (numpy's wraparound)
    # on every access; with these it cannot be, and the walk is about 1.5x faster (4.28 ->
    # 2.79 us per row on driftloop's 100-tree model; `driftloop bench throughput` prints both,
    # core_predict against core_predict_signed_indices).
    index = np.uint64
    return (
        np.asarray(roots, dtype=index),
        feature.astype(index),
        threshold,
        lefts.astype(index),
        rights.astype(index),
        missing,
        leaf,
        categorical,
        value,
        left_row.astype(index),
        left,
        known_row.astype(index),
        known,
    )
