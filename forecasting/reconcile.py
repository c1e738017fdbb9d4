"""Make rep, team, region and company forecasts add up (forecast reconciliation).

Each node of the sales hierarchy (company = all reps; regions; teams; reps) gets its own base forecast from
`forecasting.select`, so rep forecasts do not add up to their team's, nor teams to the company's. `reconcile`
returns coherent forecasts: every parent equals the sum of its children, per month.

Methods (all linear projections ỹ = S P ŷ with S the summing matrix; numpy only):

* `bottom_up`: aggregates the rep forecasts; ignores every aggregate's own forecast.
* `ols`: P = (SᵀS)⁻¹Sᵀ, every node weighted equally.
* `wls_struct`: weighted least squares with W = diag(number of reps under each node) (structural scaling,
  Athanasopoulos et al. 2017). Needs no residuals.
* `wls_var`: W = diag(residual variance of each node).
* `mint_shrink`: W = residual covariance shrunk toward its diagonal (Schäfer-Strimmer λ, as in R's hts/fable).

**The nightly run uses `mint_shrink`** with the covariance of its backtest track record's errors (6 origins
x 12 months; `forecasting.nightly.backtest_residuals`), and `wls_struct` when there are too few. Measured on
the sample's backtest with the nightly selection (benchmarks/reconcile.md), MinT-shrink scored 0.89x
(company) and 0.96x (region) WLS-structural's MASE; with the earlier selection rule it had scored 1.13x and
1.02x, so the margin depends on the base forecasts. The reasoning below is why `wls_struct` was the choice
before that measurement, and why it stays the fallback.

Rep series are short (reps join and leave), sparse and noisy, while team, region and company series are
smoother and forecast better, so bottom-up throws away the best forecasts.
MinT-shrink and WLS-variance need a residual history common to all nodes; with reps of a few months and a
handful of backtest origins those estimates are mostly noise (and undefined for a rep hired last quarter).
Structural scaling still lets the aggregates pull the rep forecasts, needs nothing but the hierarchy, and is
the method that holds up when bottom series are short and noisy (Wickramasuriya et al. 2019 find MinT-shrink
best only with enough residuals). `mint_shrink` is here for when a long common residual window exists.

Bookings are never negative: a projection can push a small rep below zero, so negative reconciled rep values
are set to 0 and every aggregate is re-summed from the reps (still coherent; the aggregates move up slightly).

Intervals: point forecasts are reconciled; each node keeps the interval *width* calibrated from its own
backtest residuals (an aggregate is smoother than the sum of its children's widths suggests, since rep errors
partly cancel, so summing rep bounds would overstate it) and the interval moves with the point. Bounds are
then clipped at 0 and kept nested. Coverage of aggregates is therefore the one their own backtest reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

COMPANY = "company"
METHODS = ("bottom_up", "ols", "wls_struct", "wls_var", "mint_shrink")
NO_RESIDUALS_METHOD = "wls_struct"  # the default, and the nightly's when the track record is too short
NIGHTLY_METHOD = "mint_shrink"  # with the backtest track record's errors (forecasting.nightly)
_BOUNDS = ("yhat_lower_95", "yhat_lower_80", "yhat_upper_80", "yhat_upper_95")


@dataclass(frozen=True)
class Hierarchy:
    """Nodes top-down (company, then each level from the top, reps last) and the summing matrix S."""

    nodes: list[tuple[str, str]]  # (level, node id)
    bottom_level: str
    summing: np.ndarray  # (n_nodes, n_bottom): 1 where the bottom series belongs under the node
    parents: dict[tuple[str, str], tuple[str, str]]  # child node -> parent node

    def children_index(self) -> list[list[int]]:
        """For each node (by position), the positions of its children; empty for the bottom series."""
        index = {node: i for i, node in enumerate(self.nodes)}
        out: list[list[int]] = [[] for _ in self.nodes]
        for child, parent in self.parents.items():
            out[index[parent]].append(index[child])
        return [sorted(c) for c in out]

    @property
    def bottom(self) -> list[str]:
        """Bottom series ids in column order of `summing`."""
        return [node for level, node in self.nodes if level == self.bottom_level]


def build_hierarchy(mapping: pd.DataFrame, bottom: str = "rep", levels: Sequence[str] = ("team", "region")
                    ) -> Hierarchy:
    """Summing matrix for a tree: `mapping` has one row per bottom series and a column per level.

    `levels` go from just above the bottom up to just below the company. Raises ValueError if a node would
    have two parents (a team in two regions) or a bottom series appears twice: the sums would double count.
    """
    cols = [bottom, *levels]
    missing = [c for c in cols if c not in mapping.columns]
    if missing:
        raise ValueError(f"hierarchy needs columns {cols}; missing {missing}")
    df = mapping[cols].astype(str)
    if df[bottom].duplicated().any():
        raise ValueError(f"{bottom} ids appear more than once: {sorted(df.loc[df[bottom].duplicated(), bottom])}")
    parents: dict[tuple[str, str], tuple[str, str]] = {}
    chain = [bottom, *levels]
    for child_col, parent_col in zip(chain, [*chain[1:], None], strict=True):
        for child, group in df.groupby(child_col, sort=True):
            if parent_col is None:
                parents[(child_col, str(child))] = (COMPANY, COMPANY)
                continue
            ups = group[parent_col].unique()
            if len(ups) != 1:
                raise ValueError(f"{child_col} {child!r} sits under more than one {parent_col}: {sorted(ups)}")
            parents[(child_col, str(child))] = (parent_col, str(ups[0]))
    bottoms = sorted(df[bottom])
    nodes: list[tuple[str, str]] = [(COMPANY, COMPANY)]
    for col in reversed(levels):
        nodes += [(col, v) for v in sorted(df[col].unique())]
    nodes += [(bottom, b) for b in bottoms]
    col_of = {b: j for j, b in enumerate(bottoms)}
    row_of = {node: i for i, node in enumerate(nodes)}
    s = np.zeros((len(nodes), len(bottoms)))
    for b in bottoms:
        node = (bottom, b)
        while True:
            s[row_of[node], col_of[b]] = 1.0
            if node == (COMPANY, COMPANY):
                break
            node = parents[node]
    return Hierarchy(nodes=nodes, bottom_level=bottom, summing=s, parents=parents)


def _shrunk_covariance(resid: np.ndarray) -> np.ndarray:
    """Schäfer-Strimmer shrinkage of the residual covariance toward its diagonal (as hts::shrink.estim)."""
    t = resid.shape[0]
    cov = resid.T @ resid / t
    sd = np.sqrt(np.clip(np.diag(cov), 1e-12, None))
    xs = resid / sd
    corr = cov / np.outer(sd, sd)
    v = (xs * xs).T @ (xs * xs) - (xs.T @ xs) ** 2 / t
    v *= 1.0 / (t * (t - 1))
    np.fill_diagonal(v, 0.0)
    d = corr**2
    np.fill_diagonal(d, 0.0)
    lam = float(np.clip(v.sum() / d.sum(), 0.0, 1.0)) if d.sum() > 0 else 1.0
    shrunk = lam * np.diag(np.diag(cov)) + (1 - lam) * cov
    # a node whose residuals are all 0 (a rep hired after the window: forecast 0, booked 0) has no variance;
    # floor it so W stays invertible (that node then just follows its parent's split)
    floor = max(float(np.mean(np.diag(cov))) * 1e-6, 1e-12)
    idx = np.diag_indices_from(shrunk)
    shrunk[idx] = np.maximum(shrunk[idx], floor)
    return shrunk


def projection(h: Hierarchy, method: str = NO_RESIDUALS_METHOD, residuals: np.ndarray | None = None) -> np.ndarray:
    """P (n_bottom x n_nodes) so that S @ P @ base is coherent; `residuals` is (time x n_nodes) for *_var/mint."""
    s = h.summing
    n_nodes, n_bottom = s.shape
    if method == "bottom_up":
        p = np.zeros((n_bottom, n_nodes))
        p[:, n_nodes - n_bottom :] = np.eye(n_bottom)
        return p
    if method in ("ols", "wls_struct", "wls_var"):
        if method == "ols":
            w = np.ones(n_nodes)
        elif method == "wls_struct":
            w = s.sum(axis=1)
        else:
            if residuals is None or residuals.shape[0] < 2:
                raise ValueError("wls_var needs residuals: at least 2 periods for every node")
            w = np.clip(np.mean(residuals**2, axis=0), 1e-12, None)
        winv = 1.0 / w
        a = s.T * winv  # Sᵀ W⁻¹
        return np.linalg.solve(a @ s, a)
    if method == "mint_shrink":
        if residuals is None or residuals.shape[0] < 3:
            raise ValueError("mint_shrink needs residuals: at least 3 periods for every node")
        wmat = _shrunk_covariance(residuals)
        winv_s = np.linalg.solve(wmat, s)  # W⁻¹ S
        return np.linalg.solve(s.T @ winv_s, winv_s.T)
    raise ValueError(f"unknown reconciliation method {method!r}; choose from {METHODS}")


def _residual_matrix(residuals: pd.DataFrame, h: Hierarchy) -> np.ndarray:
    """Long (level, node, ds, residual) -> (time x node) with only periods where every node has one."""
    wide = residuals.assign(node=residuals["node"].astype(str)).pivot_table(
        index="ds", columns=["level", "node"], values="residual", aggfunc="first"
    )
    missing = [n for n in h.nodes if n not in wide.columns]
    if missing:
        raise ValueError(f"residuals are missing for {len(missing)} node(s), e.g. {missing[:3]}")
    return wide[h.nodes].dropna().to_numpy(dtype=float)


def reconcile(base: pd.DataFrame, mapping: pd.DataFrame, method: str = NO_RESIDUALS_METHOD,
              residuals: pd.DataFrame | None = None, bottom: str = "rep",
              levels: Sequence[str] = ("team", "region")) -> pd.DataFrame:
    """Coherent forecasts from base forecasts of every node.

    `base`: long rows `level, node, ds, yhat` (optionally the four interval bounds) for every node of the
    hierarchy and every month; the company is level and node "company". `mapping`: one row per rep with its
    team and region. Returns the same rows with reconciled `yhat` (and moved, clipped, nested bounds).
    """
    h = build_hierarchy(mapping, bottom, levels)
    need = {"level", "node", "ds", "yhat"} - set(base.columns)
    if need:
        raise ValueError(f"base forecasts need columns level, node, ds, yhat; missing {sorted(need)}")
    df = base.assign(node=base["node"].astype(str))
    wide = df.pivot_table(index="ds", columns=["level", "node"], values="yhat", aggfunc="first")
    missing = [n for n in h.nodes if n not in wide.columns]
    if missing:
        raise ValueError(f"base forecasts are missing for {len(missing)} node(s), e.g. {missing[:3]}")
    yhat = wide[h.nodes]
    if yhat.isna().any().any():
        raise ValueError("every node needs a base forecast for every month")
    resid = _residual_matrix(residuals, h) if residuals is not None else None
    p = projection(h, method, resid)
    bottom_rec = np.clip(yhat.to_numpy(dtype=float) @ p.T, 0, None)  # (months x n_bottom)
    coherent = _aggregate(h, bottom_rec)
    rec = pd.DataFrame(coherent, index=yhat.index, columns=pd.MultiIndex.from_tuples(h.nodes, names=["level", "node"]))
    long = rec.stack(["level", "node"], future_stack=True).rename("yhat_reconciled").reset_index()
    out = df.merge(long, on=["ds", "level", "node"], how="left")
    shift = out["yhat_reconciled"] - out["yhat"]
    out["yhat"] = out.pop("yhat_reconciled")
    bounds = [c for c in _BOUNDS if c in out.columns]
    if len(bounds) == len(_BOUNDS):
        lo95, lo80, hi80, hi95 = (out[c] + shift for c in _BOUNDS)
        out["yhat_lower_80"] = np.clip(np.minimum(lo80, out["yhat"]), 0, None)
        out["yhat_lower_95"] = np.clip(np.minimum(lo95, out["yhat_lower_80"]), 0, None)
        out["yhat_upper_80"] = np.maximum(hi80, out["yhat"])
        out["yhat_upper_95"] = np.maximum(hi95, out["yhat_upper_80"])
    elif bounds:
        raise ValueError(f"give all four interval bounds or none; got {bounds}")
    return out[base.columns.tolist()]


def _aggregate(h: Hierarchy, bottom_values: np.ndarray) -> np.ndarray:
    """Every node's value from the bottom, level by level, so each parent is the float sum of its children."""
    children = h.children_index()
    out = np.zeros((bottom_values.shape[0], len(h.nodes)))
    first_bottom = len(h.nodes) - bottom_values.shape[1]
    out[:, first_bottom:] = bottom_values
    for i in range(first_bottom - 1, -1, -1):  # nodes are top-down: children are always filled first
        out[:, i] = out[:, children[i]].sum(axis=1)
    return out


def is_coherent(forecasts: pd.DataFrame, mapping: pd.DataFrame, bottom: str = "rep",
                levels: Sequence[str] = ("team", "region"), rtol: float = 1e-9) -> bool:
    """True when, every month, each parent's yhat equals the sum of its children's (to `rtol`)."""
    h = build_hierarchy(mapping, bottom, levels)
    wide = forecasts.assign(node=forecasts["node"].astype(str)).pivot_table(
        index="ds", columns=["level", "node"], values="yhat", aggfunc="first")[h.nodes].to_numpy(dtype=float)
    for i, children in enumerate(h.children_index()):
        if children and not np.allclose(wide[:, i], wide[:, children].sum(axis=1), rtol=rtol, atol=1e-9):
            return False
    return True
