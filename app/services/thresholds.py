"""Threshold recommendation from the batch's one ranking per column."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from app.api.schemas.thresholds import ThresholdRequest
from app.core.batch import make_batch
from app.core.context import EvalContext
from app.core.thresholds import recommend_by_group, recommend_from_ranking
from app.errors import InvalidInput


def recommend(req: ThresholdRequest) -> dict[str, Any]:
    batch = make_batch(
        req.task,
        req.y_true,
        req.y_score,
        score_type=req.score_type,
        sample_weight=req.sample_weight,
        labels=req.labels,
        pos_label=req.pos_label,
    )
    ctx = EvalContext(batch)
    params = req.objective_params()
    out: dict[str, Any] = {"task": req.task, "objective": req.objective}
    if req.task == "binary":
        out["scale"] = req.score_type
        out["recommendation"] = recommend_from_ranking(
            ctx.ranking, req.objective, n_neighbors=req.n_neighbors, **params
        ).to_dict()
        if req.groups is not None:
            groups = np.asarray(req.groups)
            if groups.shape[0] != batch.n:
                raise InvalidInput(
                    f"has {groups.shape[0]} rows but y_true has {batch.n}: lengths must match",
                    field="groups",
                )
            by_group = recommend_by_group(
                batch.y,
                batch.score,
                groups,
                sample_weight=batch.sample_weight,
                objective=req.objective,
                n_neighbors=req.n_neighbors,
                **params,
            )
            out["groups"] = [{"group": g, **r.to_dict()} for g, r in by_group.items()]
    else:
        if req.groups is not None:
            raise InvalidInput("per-group thresholds are for binary tasks", field="groups")
        # Multiclass columns are ranked on probabilities (softmax of logits); multilabel on
        # the scores as posted.
        out["scale"] = "probability" if req.task == "multiclass" else req.score_type
        out["per_class"] = [
            {
                "label": label,
                **recommend_from_ranking(
                    r, req.objective, n_neighbors=req.n_neighbors, **params
                ).to_dict(),
            }
            for label, r in zip(batch.class_labels, ctx.column_rankings, strict=True)
        ]
    plain: dict[str, Any] = orjson.loads(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY))
    return plain
