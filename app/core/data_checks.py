"""Data checks of a training set against a validation set: summaries, drift, class balance,
rows shared by both sides and features that leak the label.

Per feature (columns are float arrays, NaN marks a missing value, or arrays of category
labels):

- summary on each side: mean, std (ddof 0), quantiles, missing rate (NaN for numeric columns);
- drift: numeric columns get the two-sample Kolmogorov-Smirnov statistic
  :math:`D = \\sup_t |F_1(t) - F_2(t)|` with its p-value (``scipy.stats.ks_2samp``, method
  ``auto``), categorical ones Pearson's chi-square on the 2 × k table of category counts
  (:math:`\\chi^2 = \\sum (O - E)^2 / E`, dof ``k - 1``, no continuity correction: equal to
  ``scipy.stats.chi2_contingency(table, correction=False)``); both kinds get the population
  stability index :math:`\\mathrm{PSI} = \\sum_b (q_b - p_b) \\ln(q_b / p_b)` (``p`` train,
  ``q`` validation shares; numeric columns binned at the training deciles; shares floored at
  ``1e-4``). Missing values are left out of the tests.
- duplicates: validation rows equal to a training row on every compared column, numbers and
  category labels alike (a missing value equals a missing value, as NaN does in the numeric key).
- leakage suspects: a feature whose ROC-AUC against the label, alone, is ``≥ leak_auc``
  (binary labels, one-vs-rest per class for multiclass), measured on the training side. A
  numeric feature is scored by its values, either way (``max(AUC, 1 − AUC)``); a categorical
  one by its out-of-fold target encoding (:func:`target_encoding`), so that a column of unique
  IDs, which would separate the training labels perfectly by its in-sample category rates, is
  not flagged.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from app.core import ranking
from app.core.registry import finite_or_none
from app.errors import UndefinedMetricError

__all__ = [
    "QUANTILES",
    "chi_square",
    "class_frequencies",
    "compare",
    "compare_images",
    "duplicated_rows",
    "feature_summary",
    "image_features",
    "ks_two_sample",
    "leakage_suspects",
    "psi",
    "target_encoding",
]

QUANTILES: Final[tuple[float, ...]] = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
PSI_FLOOR: Final = 1e-4
#: PSI above this is reported as drift (the usual rule of thumb: 0.1 small, 0.25 large).
PSI_DRIFT: Final = 0.25
LEAK_AUC: Final = 0.99
#: Folds and seed of the out-of-fold target encoding of categorical leakage suspects.
TE_FOLDS: Final = 5
TE_SEED: Final = 0


def _none(x: float) -> float | None:
    return finite_or_none(float(x))


def feature_summary(values: NDArray[Any], categorical: bool = False) -> dict[str, Any]:
    """Mean, std, quantiles and missing rate of a numeric column; counts of a categorical one.

    Examples
    --------
    >>> s = feature_summary(np.array([1.0, 2.0, np.nan, 3.0]))
    >>> s["mean"], s["missing_rate"], s["quantiles"]["0.5"]
    (2.0, 0.25, 2.0)
    """
    n = len(values)
    if categorical:
        labels = np.asarray([str(v) for v in values if v is not None])
        cats, counts = np.unique(labels, return_counts=True)
        return {
            "kind": "categorical",
            "n": n,
            "missing_rate": (n - len(labels)) / n if n else None,
            "n_categories": len(cats),
            "top": {str(cats[i]): int(counts[i]) for i in np.argsort(-counts, kind="stable")[:20]},
        }
    x = np.asarray(values, dtype=np.float64)
    present = x[~np.isnan(x)]
    out: dict[str, Any] = {
        "kind": "numeric",
        "n": n,
        "missing_rate": float(n - len(present)) / n if n else None,
    }
    if len(present) == 0:
        out.update(mean=None, std=None, quantiles=None)
        return out
    qs = np.quantile(present, QUANTILES)
    out.update(
        mean=_none(present.mean()),
        std=_none(present.std()),
        quantiles={f"{q:g}": _none(v) for q, v in zip(QUANTILES, qs, strict=True)},
    )
    return out


def ks_two_sample(a: NDArray[np.float64], b: NDArray[np.float64]) -> dict[str, float | None]:
    """Two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``, two-sided, ``auto``).

    Examples
    --------
    >>> ks_two_sample(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]))["statistic"]
    1.0
    """
    if len(a) == 0 or len(b) == 0:
        return {"statistic": None, "p_value": None}
    res = stats.ks_2samp(a, b)
    return {"statistic": _none(res.statistic), "p_value": _none(res.pvalue)}


def chi_square(table: NDArray[np.float64]) -> dict[str, float | None]:
    """Pearson's chi-square test of homogeneity on a 2 × k table of counts.

    .. math:: \\chi^2 = \\sum_{ij} (O_{ij} - E_{ij})^2 / E_{ij}, \\quad
              E_{ij} = R_i C_j / N, \\quad \\mathrm{dof} = k - 1

    Categories absent on both sides are dropped; with fewer than two categories the test is
    undefined (``None``).

    Examples
    --------
    >>> r = chi_square(np.array([[10.0, 20.0], [20.0, 10.0]]))
    >>> round(r["statistic"], 6), r["dof"]
    (6.666667, 1)
    """
    t = np.asarray(table, dtype=np.float64)
    t = t[:, t.sum(axis=0) > 0]
    if t.shape[1] < 2 or (t.sum(axis=1) == 0).any():
        return {"statistic": None, "p_value": None, "dof": None}
    expected = np.outer(t.sum(axis=1), t.sum(axis=0)) / t.sum()
    chi2 = float(((t - expected) ** 2 / expected).sum())
    dof = t.shape[1] - 1
    return {"statistic": chi2, "p_value": _none(stats.chi2.sf(chi2, dof)), "dof": dof}


def psi(p_counts: NDArray[np.float64], q_counts: NDArray[np.float64]) -> float | None:
    """Population stability index of two count vectors over the same bins.

    Examples
    --------
    >>> psi(np.array([50.0, 50.0]), np.array([50.0, 50.0]))
    0.0
    """
    if p_counts.sum() == 0 or q_counts.sum() == 0:
        return None
    p = np.maximum(p_counts / p_counts.sum(), PSI_FLOOR)
    q = np.maximum(q_counts / q_counts.sum(), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def _numeric_drift(a: NDArray[np.float64], b: NDArray[np.float64]) -> dict[str, Any]:
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    out: dict[str, Any] = {"test": "ks", **ks_two_sample(a, b)}
    if len(a) and len(b):
        edges = np.unique(np.quantile(a, np.linspace(0, 1, 11))[1:-1])
        pa = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1)
        pb = np.bincount(np.searchsorted(edges, b, side="right"), minlength=len(edges) + 1)
        out["psi"] = psi(pa.astype(float), pb.astype(float))
    else:
        out["psi"] = None
    return out


def _categorical_drift(a: NDArray[Any], b: NDArray[Any]) -> dict[str, Any]:
    sa = np.asarray([str(v) for v in a if v is not None])
    sb = np.asarray([str(v) for v in b if v is not None])
    cats = np.unique(np.concatenate([sa, sb]))
    ca = np.array([np.sum(sa == c) for c in cats], dtype=float)
    cb = np.array([np.sum(sb == c) for c in cats], dtype=float)
    return {"test": "chi_square", **chi_square(np.vstack([ca, cb])), "psi": psi(ca, cb)}


def class_frequencies(y_train: NDArray[Any], y_val: NDArray[Any]) -> list[dict[str, Any]]:
    """Count and share of each class on each side.

    Examples
    --------
    >>> f = class_frequencies(np.array([0, 0, 1]), np.array([1]))
    >>> [(c["class"], c["train_count"], c["val_count"]) for c in f]
    [('0', 2, 0), ('1', 1, 1)]
    """
    classes = np.unique(np.concatenate([y_train, y_val]))
    out = []
    for c in classes:
        nt, nv = int(np.sum(y_train == c)), int(np.sum(y_val == c))
        label = str(int(c)) if float(c).is_integer() else str(c)
        out.append(
            {
                "class": label,
                "train_count": nt,
                "train_share": nt / len(y_train) if len(y_train) else None,
                "val_count": nv,
                "val_share": nv / len(y_val) if len(y_val) else None,
            }
        )
    return out


def _category_labels(values: NDArray[Any]) -> list[str | None]:
    """Each value as its category label, ``str(v)``; ``None`` (missing) stays ``None``.

    The labels :func:`feature_summary` and the chi-square test count, so that a float NaN in
    an object column is the category ``"nan"`` here too.
    """
    return [None if v is None else str(v) for v in values]


def _category_codes(*sides: NDArray[Any]) -> list[NDArray[np.float64]]:
    """Category labels of one column on each side as float codes shared by all sides.

    Equal labels get equal codes (integers from 0, exact in float64) and a missing value is
    NaN, which the row key treats as it treats a missing number: equal to any other missing
    value, and unequal to every label (also to the label ``"None"``).
    """
    index: dict[str, int] = {}
    out = []
    for values in sides:
        labels = _category_labels(values)
        codes = [np.nan if v is None else float(index.setdefault(v, len(index))) for v in labels]
        out.append(np.asarray(codes, dtype=np.float64))
    return out


def _key_columns(
    train: Sequence[NDArray[Any]], val: Sequence[NDArray[Any]], categorical: Sequence[bool]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The training and validation tables as float matrices for :func:`duplicated_rows`:
    numeric columns as they are, categorical ones as :func:`_category_codes`."""
    cols_t, cols_v = [], []
    for a, b, is_cat in zip(train, val, categorical, strict=True):
        if is_cat:
            a, b = _category_codes(a, b)
        cols_t.append(np.asarray(a, dtype=np.float64))
        cols_v.append(np.asarray(b, dtype=np.float64))
    return np.column_stack(cols_t), np.column_stack(cols_v)


def _row_keys(X: NDArray[Any]) -> NDArray[Any]:
    A = np.ascontiguousarray(np.asarray(X, dtype=np.float64) + 0.0)  # -0.0 == 0.0
    return A.view(np.dtype((np.void, A.dtype.itemsize * A.shape[1]))).ravel()


def duplicated_rows(
    X_train: NDArray[Any],
    X_val: NDArray[Any],
    y_train: NDArray[Any] | None = None,
    y_val: NDArray[Any] | None = None,
    max_examples: int = 10,
) -> dict[str, Any]:
    """Validation rows whose feature vector also occurs in the training rows.

    Examples
    --------
    >>> d = duplicated_rows(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[3.0, 4.0], [0.0, 0.0]]))
    >>> d["n_val_rows_in_train"], d["val_indices"]
    (1, [0])
    """
    kt, kv = _row_keys(X_train), _row_keys(X_val)
    inside = np.isin(kv, kt)
    idx = np.flatnonzero(inside)
    out: dict[str, Any] = {
        "n_val_rows_in_train": len(idx),
        "share_of_val": len(idx) / len(kv) if len(kv) else None,
        "val_indices": idx[:max_examples].tolist(),
    }
    if y_train is not None and y_val is not None and len(idx):
        first: dict[bytes, int] = {}
        for i in np.flatnonzero(np.isin(kt, kv[idx])):  # only training rows that matter
            first.setdefault(kt[i].tobytes(), int(i))
        same = sum(y_val[i] == y_train[first[kv[i].tobytes()]] for i in idx)
        out["with_same_label"] = int(same)
    return out


def _auc(y: NDArray[np.bool_], x: NDArray[np.float64]) -> float | None:
    keep = ~np.isnan(x)
    try:
        return float(ranking.roc_auc(ranking.rank_binary(y[keep], x[keep], None)))
    except UndefinedMetricError:
        return None


def _present_codes(values: NDArray[Any]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Indices of the non-missing values and their category codes (``0 .. k-1``)."""
    labels = _category_labels(values)
    present = [(i, label) for i, label in enumerate(labels) if label is not None]
    idx = np.fromiter((i for i, _ in present), np.intp, len(present))
    index: dict[str, int] = {}
    codes = np.fromiter(
        (index.setdefault(label, len(index)) for _, label in present), np.intp, len(present)
    )
    return idx, codes


def _fold_ids(n: int, folds: int, seed: int) -> NDArray[np.intp]:
    """Fold of each of ``n`` rows: a ``default_rng(seed)`` permutation dealt round-robin into
    ``min(folds, n)`` folds of sizes differing by at most one."""
    fold = np.empty(n, dtype=np.intp)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % max(min(folds, n), 1)
    return fold


def _out_of_fold_rates(
    codes: NDArray[np.intp], fold: NDArray[np.intp], hit: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """Each row's category rate of ``hit`` among the rows of the other folds (the other folds'
    overall rate where they lack the category)."""
    k = int(codes.max()) + 1 if len(codes) else 0
    h = hit.astype(np.float64)
    out = np.empty(len(codes), dtype=np.float64)
    for f in np.unique(fold):
        test, fit = fold == f, fold != f
        count = np.bincount(codes[fit], minlength=k)[codes[test]]
        pos = np.bincount(codes[fit], weights=h[fit], minlength=k)[codes[test]]
        out[test] = np.where(count > 0, pos / np.maximum(count, 1), h[fit].mean())
    return out


def target_encoding(
    values: NDArray[Any],
    positive: NDArray[np.bool_],
    *,
    folds: int = TE_FOLDS,
    seed: int = TE_SEED,
) -> NDArray[np.float64]:
    """Out-of-fold target encoding of a categorical column: the score of a leakage check.

    A missing value (``None``) scores NaN, left out of the AUC as a numeric NaN is. The ``n``
    other rows are dealt into ``K = min(folds, n)`` folds by a seeded permutation
    (:func:`_fold_ids`: deterministic), and row ``i`` of fold ``f`` with category ``c`` scores

    .. math:: s_i = \\frac{\\#\\{j \\notin f : c_j = c,\\ \\mathrm{positive}_j\\}}
                         {\\#\\{j \\notin f : c_j = c\\}},

    the positive rate of its category among the other folds, or the other folds' positive rate
    where they hold no row of ``c``. A row's own label never enters its score, so a category
    seen once (an ID) gets a rate that says nothing about its label; an in-sample encoding
    would score it by its own label and reach ROC-AUC 1.

    Examples
    --------
    >>> v = np.array(["a", "a", "b", "b", None])
    >>> target_encoding(v, np.array([1, 1, 0, 0, 1]) == 1, folds=2).tolist()
    [1.0, 1.0, 0.0, 0.0, nan]
    """
    out = np.full(len(values), np.nan)
    idx, codes = _present_codes(values)
    if len(idx) >= 2:
        fold = _fold_ids(len(idx), folds, seed)
        out[idx] = _out_of_fold_rates(codes, fold, np.asarray(positive, dtype=bool)[idx])
    return out


def _class_label(c: Any) -> str:
    return str(int(c)) if float(c).is_integer() else str(c)


def _numeric_suspect(
    name: str, x: NDArray[Any], y: NDArray[Any], targets: Sequence[Any], threshold: float
) -> dict[str, Any] | None:
    """The class a numeric feature separates best, either way, if by ``≥ threshold``."""
    best: dict[str, Any] | None = None
    for c in targets:
        auc = _auc(y == c, np.asarray(x, dtype=np.float64))
        if auc is None:
            continue
        sep = max(auc, 1.0 - auc)
        if sep >= threshold and (best is None or sep > best["separation"]):
            best = {"feature": name, "class": _class_label(c), "roc_auc": auc, "separation": sep}
    return best


def _categorical_suspect(
    name: str, x: NDArray[Any], y: NDArray[Any], targets: Sequence[Any], threshold: float
) -> dict[str, Any] | None:
    """The class a categorical feature's :func:`target_encoding` ranks best, if with ROC-AUC
    ``≥ threshold``.

    Only the direction of the encoding counts (``separation = AUC``): the encoding already
    points at the class, and an AUC far below ½ is the out-of-fold artifact of categories seen
    in one fold (their fallback, the other folds' rate, falls as the own fold's rate rises),
    not a sign of leakage.
    """
    idx, codes = _present_codes(x)
    if len(idx) < 2:
        return None
    fold = _fold_ids(len(idx), TE_FOLDS, TE_SEED)  # the same folds for every class
    best: dict[str, Any] | None = None
    for c in targets:
        hit = np.asarray(y == c, dtype=bool)
        scores = np.full(len(x), np.nan)
        scores[idx] = _out_of_fold_rates(codes, fold, hit[idx])
        auc = _auc(hit, scores)
        if auc is not None and auc >= threshold and (best is None or auc > best["roc_auc"]):
            best = {
                "feature": name,
                "class": _class_label(c),
                "roc_auc": auc,
                "separation": auc,
                "scored_by": "out_of_fold_target_encoding",
            }
    return best


def leakage_suspects(
    columns: Mapping[str, NDArray[Any]],
    y: NDArray[Any],
    task: str,
    threshold: float = LEAK_AUC,
    *,
    categorical: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Features that alone separate the label with ROC-AUC ≥ ``threshold``, on these rows.

    Binary labels score the last class, multiclass ones each class one-vs-rest (the best
    class is reported); regression has no suspects. A numeric feature is scored by its values
    and counts either way, ``separation = max(AUC, 1 − AUC)``. A feature named in
    ``categorical`` is scored by its :func:`target_encoding` (``TE_FOLDS`` folds, seed
    ``TE_SEED``) and counts only when ``AUC ≥ threshold`` (``separation = AUC``); its entry
    adds ``"scored_by": "out_of_fold_target_encoding"``. Missing values are left out. Sorted
    by separation, highest first (ties in column order).

    Examples
    --------
    >>> y = np.array([0, 0, 1, 1])
    >>> cols = {"a": np.array([1.0, 2, 3, 4]), "b": np.array([1.0, 3, 2, 4])}
    >>> leakage_suspects(cols, y, "binary")
    [{'feature': 'a', 'class': '1', 'roc_auc': 1.0, 'separation': 1.0}]
    """
    if task == "regression":
        return []
    classes = np.unique(y)
    if len(classes) < 2:
        return []
    targets = [classes[-1]] if task == "binary" else list(classes)
    out = []
    for name, x in columns.items():
        suspect = _categorical_suspect if name in categorical else _numeric_suspect
        best = suspect(name, x, y, targets, threshold)
        if best is not None:
            out.append(best)
    return sorted(out, key=lambda s: -s["separation"])


def compare(
    names: Sequence[str],
    train: Sequence[NDArray[Any]],
    val: Sequence[NDArray[Any]],
    *,
    categorical: Sequence[bool] | None = None,
    y_train: NDArray[Any] | None = None,
    y_val: NDArray[Any] | None = None,
    task: str | None = None,
    leak_auc: float = LEAK_AUC,
) -> dict[str, Any]:
    """Every check of a train/validation pair of tables (columns given one by one).

    Returns
    -------
    dict
        ``features`` (per feature: ``train`` and ``validation`` summaries and ``drift``),
        ``drifted`` (features with a KS or chi-square p-value below 0.01, or PSI ≥ 0.25),
        ``classes``, ``duplicates`` and ``leakage_suspects``.

        ``duplicates`` (:func:`duplicated_rows`) compares whole rows over every column,
        categorical ones by their labels (:func:`_category_codes`); it is ``None`` only when
        there are no columns. ``leakage_suspects`` (:func:`leakage_suspects`) scores every
        column, categorical ones by their out-of-fold target encoding.
    """
    cat = list(categorical) if categorical is not None else [False] * len(names)
    features = []
    drifted = []
    for name, a, b, is_cat in zip(names, train, val, cat, strict=True):
        drift = _categorical_drift(a, b) if is_cat else _numeric_drift(a, b)
        p = drift.get("p_value")
        if (p is not None and p < 0.01) or (drift["psi"] is not None and drift["psi"] >= PSI_DRIFT):
            drifted.append(name)
        features.append(
            {
                "name": name,
                "train": feature_summary(a, is_cat),
                "validation": feature_summary(b, is_cat),
                "drift": drift,
            }
        )
    result: dict[str, Any] = {"features": features, "drifted": drifted, "duplicates": None}
    if names:  # every column in the key: rows equal in numbers only may differ in categories
        Xt, Xv = _key_columns(train, val, cat)
        result["duplicates"] = duplicated_rows(Xt, Xv, y_train, y_val)
    if y_train is not None and y_val is not None and task in ("binary", "multiclass"):
        result["classes"] = class_frequencies(y_train, y_val)
        cols = {
            name: x if is_cat else np.asarray(x, dtype=np.float64)
            for name, x, is_cat in zip(names, train, cat, strict=True)
        }
        cat_names = {name for name, is_cat in zip(names, cat, strict=True) if is_cat}
        result["leakage_suspects"] = leakage_suspects(
            cols, y_train, task, leak_auc, categorical=cat_names
        )
    else:
        result["classes"] = None
        result["leakage_suspects"] = []
    return result


def image_features(
    X: NDArray[Any], shape: tuple[int, int, int]
) -> tuple[list[str], list[NDArray[np.float64]]]:
    """Per-image summary features of images stored as rows of ``C·H·W`` values.

    For each channel ``c``: the mean and the standard deviation (ddof 0) of its pixels, named
    ``channel{c}_mean`` and ``channel{c}_std`` (brightness and contrast, whose shift between
    sources, devices or lighting the drift tests then measure).

    Examples
    --------
    >>> names, cols = image_features(np.array([[0.0, 2.0, 1.0, 1.0]]), (2, 1, 2))
    >>> names, [float(c[0]) for c in cols]
    (['channel0_mean', 'channel0_std', 'channel1_mean', 'channel1_std'], [1.0, 1.0, 1.0, 0.0])
    """
    px = np.asarray(X, dtype=np.float64).reshape(X.shape[0], shape[0], -1)
    names: list[str] = []
    cols: list[NDArray[np.float64]] = []
    for c in range(shape[0]):
        names += [f"channel{c}_mean", f"channel{c}_std"]
        cols += [px[:, c].mean(axis=1), px[:, c].std(axis=1)]
    return names, cols


def compare_images(
    X_train: NDArray[Any],
    X_val: NDArray[Any],
    shape: tuple[int, int, int],
    *,
    y_train: NDArray[Any] | None = None,
    y_val: NDArray[Any] | None = None,
    task: str | None = None,
    leak_auc: float = LEAK_AUC,
) -> dict[str, Any]:
    """:func:`compare` for images: the features are :func:`image_features`; duplicates are
    validation images equal pixel for pixel to a training image."""
    names, train = image_features(X_train, shape)
    _, val = image_features(X_val, shape)
    result = compare(names, train, val, y_train=y_train, y_val=y_val, task=task, leak_auc=leak_auc)
    result["duplicates"] = duplicated_rows(X_train, X_val, y_train, y_val)
    result["image_shape"] = list(shape)
    return result
