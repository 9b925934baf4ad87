"""Domain-based validation on SQLite and PostgreSQL: leave-one-domain-out and time splits fanned
out as child runs through the in-process runner, the parent's summary checked against the
children's stored evaluations, and every bad input refused with a 422 before anything is
queued."""

from __future__ import annotations

import hashlib
import io
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.config import Settings
from app.core.domains import GREATER_IS_BETTER, TASK_METRICS
from app.db.base import utcnow
from app.db.models import Run
from app.db.session import session_scope
from app.services import domain_validation
from app.worker.reaper import reap_once
from tests.api.conftest import live_app, wait_for

SITES = ("A", "B", "C", "D")
OFFSETS = {"A": -4.0, "B": -1.0, "C": 2.0, "D": 5.0}


def shifted_sites(n_per_site: int = 60, seed: int = 0) -> dict[str, Any]:
    """A domain shift a random split cannot see: within each site the label is decided by
    ``x1 > offset_site``, and each site has its own offset; one-hot site indicators let a model
    learn the offsets of the sites it trains on, but never the offset of a held-out site."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list[Any]] = {"x1": [], "label": [], "site": [], "day": []}
    for s in SITES:
        cols[f"is_{s}"] = []
    for i, site in enumerate(SITES):
        signal = rng.normal(0.0, 1.5, size=n_per_site)
        label = (signal + rng.normal(0.0, 0.3, size=n_per_site) > 0).astype(int)
        cols["x1"] += (OFFSETS[site] + signal).tolist()
        cols["label"] += label.tolist()
        cols["site"] += [site] * n_per_site
        # one month per site: a time split on "day" holds out the later sites
        cols["day"] += [f"2024-{i + 1:02d}-{d % 28 + 1:02d}" for d in range(n_per_site)]
        for s in SITES:
            cols[f"is_{s}"] += [float(s == site)] * n_per_site
    return cols


def csv_bytes(cols: dict[str, list[Any]]) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(pa.table(cols), sink)
    return sink.getvalue()


def svg_text(svg: bytes) -> str:
    """Every piece of text the SVG writes (it parses as XML, or this fails)."""
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return " ".join(t.strip() for t in root.itertext() if t.strip())


def upload(client: TestClient, cols: dict[str, list[Any]]) -> str:
    res = client.post(
        "/v1/datasets",
        content=csv_bytes(cols),
        params={"target": "label", "name": "sites"},
        headers={"content-type": "text/csv"},
    )
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def body(dataset_id: str, validation: dict[str, Any], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "task": "binary",
        "name": "lodo",
        "data": {"dataset_id": dataset_id, "features": ["x1", *[f"is_{s}" for s in SITES]]},
        "validation": validation,
        "model": {"hidden": []},
        "optimizer": {"name": "adam", "lr": 0.1},
        "epochs": 40,
        "batch_size": 32,
        "device": "cpu",
        "seed": 1,
    }
    out.update(extra)
    return out


# -- bad input (no worker needed: each test rolled back) ------------------------------------------
@pytest.fixture
def dataset(store_client: TestClient) -> str:
    return upload(store_client, shifted_sites(20))


@pytest.mark.parametrize(
    ("validation", "field", "words"),
    [
        ({"leave_one_domain_out": "hospital"}, "validation.leave_one_domain_out", "not a"),
        ({"leave_one_domain_out": "label"}, "validation.leave_one_domain_out", "not a"),
        (
            {"leave_one_domain_out": "site", "fraction": 0.3},
            "validation.fraction",
            "does not combine",
        ),
        (
            {"leave_one_domain_out": "site", "group_column": "site"},
            "validation.group_column",
            "does not combine",
        ),
        (
            {"leave_one_domain_out": "site", "dataset_id": "x"},
            "validation.dataset_id",
            "does not combine",
        ),
        (
            {"leave_one_domain_out": "site", "time_split": {"column": "day", "cutoff": "2024"}},
            "validation",
            "not both",
        ),
        ({"leave_one_domain_out": True}, "validation.leave_one_domain_out", "column"),
        ({"time_split": {"column": "nope", "cutoff": 1}}, "validation.time_split.column", "not a"),
        (
            {"time_split": {"column": "day", "cutoff": "2030-01-01"}},
            "validation.time_split.cutoff",
            "validation (column >= cutoff) side empty",
        ),
        (
            {"time_split": {"column": "day", "cutoff": "2020-01-01"}},
            "validation.time_split.cutoff",
            "training (column < cutoff) side empty",
        ),
        (
            {"time_split": {"column": "day", "cutoff": 3}},
            "validation.time_split.cutoff",
            "ISO-8601",
        ),
        (
            {"time_split": {"column": "x1", "cutoff": "2024-01-01"}},
            "data.features",
            "the target or the group column",
        ),
    ],
)
def test_bad_domain_validation_requests_are_422_naming_the_field(
    store_client: TestClient, dataset: str, validation: dict[str, Any], field: str, words: str
) -> None:
    before = store_client.get("/v1/runs").json()["page"]["total"]
    res = store_client.post("/v1/runs", json=body(dataset, validation))
    assert res.status_code == 422, res.text
    problem = res.json()
    assert problem["field"] == field and words in problem["detail"], problem
    assert store_client.get("/v1/runs").json()["page"]["total"] == before


def test_a_domain_column_with_one_value_is_422(store_client: TestClient) -> None:
    cols = shifted_sites(20)
    cols["site"] = ["A"] * len(cols["site"])
    res = store_client.post(
        "/v1/runs", json=body(upload(store_client, cols), {"leave_one_domain_out": "site"})
    )
    assert res.status_code == 422
    assert res.json()["field"] == "validation.leave_one_domain_out"
    assert "single" in res.json()["detail"]


def test_a_domain_whose_holdout_leaves_one_class_for_training_is_422_naming_it(
    store_client: TestClient,
) -> None:
    # every positive row is in site C: holding C out leaves training with only negatives
    cols = shifted_sites(20)
    cols["label"] = [int(s == "C") for s in cols["site"]]
    res = store_client.post(
        "/v1/runs", json=body(upload(store_client, cols), {"leave_one_domain_out": "site"})
    )
    assert res.status_code == 422
    problem = res.json()
    assert problem["field"] == "validation.leave_one_domain_out"
    assert "domain 'C'" in problem["detail"] and "single class" in problem["detail"]


def test_inline_domains_are_validation_groups_with_leave_one_domain_out_true(
    store_client: TestClient,
) -> None:
    X = np.random.default_rng(0).normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(int).tolist()
    inline = {"task": "binary", "data": {"X": X.tolist(), "y": y}, "epochs": 2, "device": "cpu"}
    groups = ["a", "b"] * 20
    ok = store_client.post(
        "/v1/runs",
        json={**inline, "validation": {"leave_one_domain_out": True, "groups": groups}},
    )
    assert ok.status_code == 202, ok.text
    parent = ok.json()
    assert parent["status"] == "running" and parent["parent_id"] is None
    children = store_client.get("/v1/runs", params={"parent_id": parent["id"]}).json()["items"]
    holdouts = sorted(c["data"]["validation"].get("domain") or "-" for c in children)
    assert holdouts == ["-", "a", "b"]  # one fit per domain, one on a random split
    assert all(c["status"] == "queued" and c["parent_id"] == parent["id"] for c in children)

    for validation, field in [
        ({"leave_one_domain_out": True}, "validation.leave_one_domain_out"),
        ({"leave_one_domain_out": "site", "groups": groups}, "validation.leave_one_domain_out"),
        ({"leave_one_domain_out": True, "groups": ["a"] * 40}, "validation.groups"),
        ({"time_split": {"column": "t", "cutoff": 1}}, "validation.time_split"),
    ]:
        res = store_client.post("/v1/runs", json={**inline, "validation": validation})
        assert res.status_code == 422 and res.json()["field"] == field, (validation, res.text)


def test_cancelling_a_parent_cancels_its_queued_children_and_the_parent_at_once(
    store_client: TestClient, dataset: str
) -> None:
    parent = store_client.post("/v1/runs", json=body(dataset, {"leave_one_domain_out": "site"}))
    assert parent.status_code == 202, parent.text
    run_id = parent.json()["id"]
    res = store_client.post(f"/v1/runs/{run_id}/cancel")
    assert res.status_code == 200, res.text
    assert res.json()["status"] == "cancelled"
    children = store_client.get("/v1/runs", params={"parent_id": run_id}).json()["items"]
    assert len(children) == len(SITES) + 1
    assert {c["status"] for c in children} == {"cancelled"}


# -- trained by the in-process runner (committed databases) ---------------------------------------
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with live_app(request, tmp_path_factory, worker_concurrency=2) as client:
        yield client


def wait_done(client: TestClient, run_id: str, timeout: float = 120.0) -> dict[str, Any]:
    return wait_for(client, f"/v1/runs/{run_id}", timeout)


def stored_metrics(client: TestClient, child: dict[str, Any]) -> dict[str, float | None]:
    evaluation = client.get(f"/v1/evaluations/{child['evaluation_id']}").json()
    names = {"rmse": "root_mean_squared_error", "mae": "mean_absolute_error"}
    m = evaluation["metrics"]
    return {k: m.get(names.get(k, k)) for k in TASK_METRICS["binary"]}


@pytest.fixture(scope="module")
def lodo_parent(live_client: TestClient) -> dict[str, Any]:
    """A leave-one-domain-out run over the four sites, trained once per backend."""
    dataset_id = upload(live_client, shifted_sites())
    res = live_client.post("/v1/runs", json=body(dataset_id, {"leave_one_domain_out": "site"}))
    assert res.status_code == 202, res.text
    return wait_done(live_client, res.json()["id"])


def test_leave_one_domain_out_reports_what_a_random_split_hides(
    live_client: TestClient, lodo_parent: dict[str, Any]
) -> None:
    parent = lodo_parent
    assert parent["status"] == "succeeded", parent["error"]
    children = live_client.get("/v1/runs", params={"parent_id": parent["id"]}).json()["items"]
    assert len(children) == len(SITES) + 1
    assert all(c["status"] == "succeeded" for c in children)
    # every child trained without the domain column among its features
    assert all("site" not in c["data"]["features"] for c in children)

    dv = parent["summary"]["domain_validation"]
    assert dv["mode"] == "leave_one_domain_out" and dv["column"] == "site"
    assert [d["domain"] for d in dv["domains"]] == list(SITES)
    by_id = {c["id"]: c for c in children}
    support = {d["domain"]: d["n_val"] for d in dv["domains"]}
    assert support == {s: 60 for s in SITES}
    per_domain = {}
    for d in dv["domains"]:
        child = by_id[d["run_id"]]
        assert child["data"]["validation"] == {
            "kind": "domain",
            "column": "site",
            "domain": d["domain"],
            "seed": 1,
            "n_rows": 60,
        }
        stored = stored_metrics(live_client, child)
        assert d["metrics"] == pytest.approx(stored, abs=1e-12)
        assert dv["ece_by_domain"][d["domain"]] == pytest.approx(stored["ece"], abs=1e-12)
        per_domain[d["domain"]] = stored

    # the support-weighted mean, by hand, of the children's stored validation metrics
    for name in TASK_METRICS["binary"]:
        values = [(per_domain[s][name], support[s]) for s in SITES]
        expected = sum(v * n for v, n in values) / sum(n for _, n in values)
        assert dv["weighted_mean"][name] == pytest.approx(expected, rel=1e-12), name
    worst = min(SITES, key=lambda s: per_domain[s]["roc_auc"])
    assert dv["worst_domain"] == {
        "domain": worst,
        "metric": "roc_auc",
        "value": pytest.approx(per_domain[worst]["roc_auc"]),
    }
    worst_loss = max(SITES, key=lambda s: per_domain[s]["log_loss"])
    assert dv["worst"]["log_loss"]["domain"] == worst_loss

    # the random split of the same rows looks much better than any unseen site
    random_child = by_id[dv["random_split"]["run_id"]]
    assert random_child["data"]["validation"]["kind"] == "fraction"
    random = stored_metrics(live_client, random_child)
    assert dv["random_split"]["metrics"] == pytest.approx(random, abs=1e-12)
    assert random["accuracy"] > dv["weighted_mean"]["accuracy"] + 0.15
    assert random["log_loss"] < dv["weighted_mean"]["log_loss"]
    gap = dv["random_split_minus_domain"]
    assert gap["accuracy"] == pytest.approx(random["accuracy"] - dv["weighted_mean"]["accuracy"])
    assert dv["random_split_overestimates"]["accuracy"] is True
    assert dv["random_split_overestimates"]["log_loss"] is True
    assert all(GREATER_IS_BETTER[k] == (gap[k] > 0) for k in ("accuracy", "log_loss"))


def test_the_domain_validation_plot_draws_the_trained_run_as_svg_or_png_with_a_content_etag(
    live_client: TestClient, lodo_parent: dict[str, Any]
) -> None:
    assert lodo_parent["status"] == "succeeded", lodo_parent["error"]
    dv = lodo_parent["summary"]["domain_validation"]
    url = f"/v1/runs/{lodo_parent['id']}/domain-validation/plot"
    svg = live_client.get(url)
    assert svg.status_code == 200, svg.text
    assert svg.headers["content-type"] == "image/svg+xml"
    text = svg_text(svg.content)
    for d in dv["domains"]:
        assert d["domain"] in text and f"n = {d['n_val']}" in text
    mean, random = dv["weighted_mean"]["roc_auc"], dv["random_split"]["metrics"]["roc_auc"]
    assert f"support-weighted mean ({mean:.3f})" in text
    assert f"random split ({random:.3f})" in text
    assert f"random − domain = {dv['random_split_minus_domain']['roc_auc']:+.3f}" in text
    assert f"worst domain by roc_auc: {dv['worst_domain']['domain']}" in text
    assert "calibration error (ECE) per domain" in text
    assert svg.headers["etag"] == '"' + hashlib.sha256(svg.content).hexdigest()[:32] + '"'
    again = live_client.get(url)
    assert again.content == svg.content and again.headers["etag"] == svg.headers["etag"]

    png = live_client.get(url, params={"format": "png", "title": "Sites"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert png.headers["etag"] == '"' + hashlib.sha256(png.content).hexdigest()[:32] + '"'

    loss = live_client.get(url, params={"metric": "log_loss", "title": "Sites"})
    assert loss.status_code == 200 and loss.headers["etag"] != svg.headers["etag"]
    text = svg_text(loss.content)
    assert (
        "Sites" in text and f"worst domain by log_loss: {dv['worst']['log_loss']['domain']}" in text
    )

    for params, field in [({"metric": "rmse"}, "metric"), ({"format": "gif"}, "format")]:
        res = live_client.get(url, params=params)
        assert res.status_code == 422 and res.json()["field"] == field, res.text
    res = live_client.get("/v1/runs/nope/domain-validation/plot")
    assert res.status_code == 404 and res.json()["field"] == "run_id"
    assert res.headers["content-type"] == "application/problem+json"
    child = dv["domains"][0]["run_id"]  # a child run is trained, but is no domain validation
    res = live_client.get(f"/v1/runs/{child}/domain-validation/plot")
    assert res.status_code == 422 and res.json()["field"] == "run_id", res.text
    assert lodo_parent["id"] in res.json()["detail"]


def test_the_plot_of_a_domain_validation_still_training_or_cancelled_is_409(
    store_client: TestClient, dataset: str
) -> None:
    # no worker here: the children stay queued, the parent running without per-domain metrics
    run_id = store_client.post(
        "/v1/runs", json=body(dataset, {"leave_one_domain_out": "site"})
    ).json()["id"]
    url = f"/v1/runs/{run_id}/domain-validation/plot"
    res = store_client.get(url)
    assert res.status_code == 409, res.text
    assert res.json()["field"] == "run_id" and "not all finished" in res.json()["detail"]
    assert res.headers["content-type"] == "application/problem+json"
    assert store_client.post(f"/v1/runs/{run_id}/cancel").status_code == 200
    res = store_client.get(url)
    assert res.status_code == 409 and "cancelled" in res.json()["detail"], res.text


def test_a_time_split_trains_on_the_past_and_validates_on_the_future(
    live_client: TestClient,
) -> None:
    dataset_id = upload(live_client, shifted_sites())
    validation = {"time_split": {"column": "day", "cutoff": "2024-03-01T00:00:00Z"}}
    res = live_client.post("/v1/runs", json=body(dataset_id, validation, name="future"))
    assert res.status_code == 202, res.text
    parent = wait_done(live_client, res.json()["id"])
    assert parent["status"] == "succeeded", parent["error"]
    assert parent["data"]["validation"]["n_past"] == 120
    assert parent["data"]["validation"]["n_future"] == 120
    dv = parent["summary"]["domain_validation"]
    (future,) = dv["domains"]
    assert (future["domain"], future["n_train"], future["n_val"]) == ("future", 120, 120)
    child = live_client.get(f"/v1/runs/{future['run_id']}").json()
    assert child["parent_id"] == parent["id"] and child["summary"]["n_val"] == 120
    assert dv["weighted_mean"] == pytest.approx(future["metrics"])
    # sites C and D (the future) have offsets the past never showed
    assert dv["random_split"]["metrics"]["accuracy"] > future["metrics"]["accuracy"]
    assert abs(dv["random_split"]["n_val"] - 120) <= 2  # as many held-out rows as the future


def test_cancelling_a_parent_stops_its_running_children(live_client: TestClient) -> None:
    dataset_id = upload(live_client, shifted_sites(20))
    long = body(dataset_id, {"leave_one_domain_out": "site"}, epochs=100_000, batch_size=4)
    run_id = live_client.post("/v1/runs", json=long).json()["id"]
    deadline = time.monotonic() + 60
    while True:
        children = live_client.get("/v1/runs", params={"parent_id": run_id}).json()["items"]
        if any(c["progress"]["epoch"] >= 1 for c in children):
            break
        assert time.monotonic() < deadline, children
        time.sleep(0.05)
    res = live_client.post(f"/v1/runs/{run_id}/cancel")
    assert res.status_code == 202 and res.json()["cancel_requested"], res.text
    parent = wait_done(live_client, run_id)
    assert parent["status"] == "cancelled"
    children = live_client.get("/v1/runs", params={"parent_id": run_id}).json()["items"]
    assert {c["status"] for c in children} == {"cancelled"}
    assert all(c["progress"]["epoch"] < 100_000 for c in children)


def test_the_reaper_finishes_a_parent_whose_last_child_ended_without_finishing_it(
    live_client: TestClient,
) -> None:
    dataset_id = upload(live_client, shifted_sites(20))
    res = live_client.post("/v1/runs", json=body(dataset_id, {"leave_one_domain_out": "site"}))
    parent = wait_done(live_client, res.json()["id"])
    assert parent["status"] == "succeeded", parent["error"]
    settings: Settings = live_client.app.state.settings  # type: ignore[attr-defined]
    # As if the last child's worker died between finishing its run and finishing the parent:
    with session_scope(settings) as session:
        session.execute(
            update(Run).where(Run.id == parent["id"]).values(status="running", summary=None)
        )
    assert live_client.get(f"/v1/runs/{parent['id']}").json()["status"] == "running"
    actions = reap_once(settings)
    assert (parent["id"], "finalized") in actions  # and not "failed": a parent has no heartbeat
    again = live_client.get(f"/v1/runs/{parent['id']}").json()
    assert again["status"] == "succeeded"
    assert again["summary"] == parent["summary"]
    assert reap_once(settings) == []  # finished once


def test_a_failed_child_fails_the_parent_naming_its_domain(
    store_client: TestClient, dataset: str, db_session: Session
) -> None:
    run_id = store_client.post(
        "/v1/runs", json=body(dataset, {"leave_one_domain_out": "site"})
    ).json()["id"]
    children = store_client.get("/v1/runs", params={"parent_id": run_id}).json()["items"]
    by_domain = {c["data"]["validation"].get("domain"): c["id"] for c in children}
    now = utcnow()
    for domain, child_id in by_domain.items():
        failed = domain == "B"
        db_session.execute(
            update(Run)
            .where(Run.id == child_id)
            .values(
                status="failed" if failed else "succeeded",
                error="non-finite loss at epoch 3" if failed else None,
                finished_at=now,
                summary={"has_weights": True, "n_train": 40, "n_val": 20},
            )
        )
        if domain == "C":  # not the last one: the parent must stay running
            assert not domain_validation.finalize(db_session, run_id)
    assert domain_validation.finalize(db_session, run_id)
    assert not domain_validation.finalize(db_session, run_id)  # exactly once
    db_session.commit()
    parent = store_client.get(f"/v1/runs/{run_id}").json()
    assert parent["status"] == "failed" and parent["finished_at"] is not None
    assert parent["error"] == (
        f"the fit holding out domain 'B' (run {by_domain['B']}) failed: non-finite loss at epoch 3"
    )
    statuses = {d["domain"]: d["status"] for d in parent["summary"]["domain_validation"]["domains"]}
    assert statuses == {"A": "succeeded", "B": "failed", "C": "succeeded", "D": "succeeded"}
    # a finished parent cannot be cancelled any more
    assert store_client.post(f"/v1/runs/{run_id}/cancel").status_code == 409
