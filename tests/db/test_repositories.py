"""Repository functions against real SQLite and PostgreSQL databases (each test runs on both)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DataError, IntegrityError, InvalidRequestError, StatementError
from sqlalchemy.orm import Session

from app.db.models import HEADLINE_METRICS, Evaluation
from app.db.repositories import create_evaluation, get_evaluation, list_evaluations
from app.errors import InvalidInput

MakeEvaluation = Callable[..., Evaluation]
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _reload(session: Session, evaluation_id: str) -> Evaluation:
    """Read the row back from the database, not from the session's identity map."""
    session.expunge_all()
    evaluation = get_evaluation(session, evaluation_id)
    assert evaluation is not None
    return evaluation


def _assert_same_json(loaded: Any, original: Any, path: str = "report") -> None:
    """Equal, floats bit for bit. jsonb keeps numbers as decimals, so on PostgreSQL -0.0 reads
    back as 0.0, and a float Python writes in exponent form (|x| >= 1e16) as an int with the
    same decimal digits, which converts back to the very same float."""
    if isinstance(original, float):
        assert isinstance(loaded, int | float) and not isinstance(loaded, bool), path
        if abs(original) < 1e16 or abs(original) >= 2**64:
            assert isinstance(loaded, float), path
        assert float(loaded) == original, path
        if original != 0:
            assert float(loaded).hex() == original.hex(), path
    elif isinstance(original, dict):
        assert isinstance(loaded, dict) and loaded.keys() == original.keys(), path
        for key in original:
            _assert_same_json(loaded[key], original[key], f"{path}.{key}")
    elif isinstance(original, list):
        assert isinstance(loaded, list) and len(loaded) == len(original), path
        for i, (a, b) in enumerate(zip(loaded, original, strict=True)):
            _assert_same_json(a, b, f"{path}[{i}]")
    else:
        assert type(loaded) is type(original) and loaded == original, path


def test_create_evaluation_returns_a_flushed_row_with_id_and_created_at(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    before = datetime.now(UTC)
    evaluation = make_evaluation(name="run-1", model="m", tags=["a", "b"])
    assert uuid.UUID(evaluation.id).version == 4
    assert str(uuid.UUID(evaluation.id)) == evaluation.id
    assert evaluation.created_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= evaluation.created_at <= datetime.now(UTC)
    assert db_session.scalar(select(Evaluation.id).where(Evaluation.id == evaluation.id))


def test_get_evaluation_round_trips_every_field(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    headline = {metric: 1.0 / (i + 3) for i, metric in enumerate(HEADLINE_METRICS)}
    created = make_evaluation(
        task="multiclass",
        n_samples=1234,
        name="nightly",
        model="resnet-50",
        tags=["prod", "v2"],
        report={"task": "multiclass", "metrics": {"accuracy": 0.5}},
        headline=headline,
    )
    loaded = _reload(db_session, created.id)
    assert loaded is not created
    assert (loaded.id, loaded.task, loaded.n_samples, loaded.name, loaded.model) == (
        created.id,
        "multiclass",
        1234,
        "nightly",
        "resnet-50",
    )
    assert loaded.tags == ["prod", "v2"]
    assert loaded.report == {"task": "multiclass", "metrics": {"accuracy": 0.5}}
    assert {m: getattr(loaded, m) for m in HEADLINE_METRICS} == headline
    assert loaded.created_at == created.created_at
    assert loaded.created_at.utcoffset() == timedelta(0)


def test_headline_keeps_known_metrics_and_ignores_unknown_keys(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    created = make_evaluation(
        headline={"rmse": 2.5, "r2": None, "not_a_metric": 3.0, "id": "x", "report": 1.0}
    )
    loaded = _reload(db_session, created.id)
    assert loaded.rmse == 2.5
    assert {m: getattr(loaded, m) for m in HEADLINE_METRICS if m != "rmse"} == dict.fromkeys(
        (m for m in HEADLINE_METRICS if m != "rmse"), None
    )
    assert loaded.report == {"task": "binary", "metrics": {"accuracy": 0.9}}


EXACT_FLOATS = [
    0.1 + 0.2,
    1 / 3,
    2 / 3,
    5e-324,  # smallest subnormal
    2.2250738585072014e-308,  # smallest normal
    1.7976931348623157e308,  # largest finite
    -1.5e-300,
    123456789.12345679,
    1e16,
    0.0,
]


@pytest.mark.parametrize("value", EXACT_FLOATS, ids=repr)
def test_headline_columns_round_trip_floats_exactly(
    db_session: Session, make_evaluation: MakeEvaluation, value: float
) -> None:
    created = make_evaluation(headline={"log_loss": value, "mae": -value})
    loaded = _reload(db_session, created.id)
    assert loaded.log_loss is not None and loaded.mae is not None
    assert loaded.log_loss.hex() == value.hex()
    assert loaded.mae.hex() == (-value + 0.0).hex()


def test_negative_zero_headline_is_stored_as_zero_on_every_backend(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    # SQLite would turn -0.0 into 0 and PostgreSQL keep it: normalized so both agree.
    loaded = _reload(db_session, make_evaluation(headline={"r2": -0.0}).id)
    assert loaded.r2 is not None and math.copysign(1.0, loaded.r2) == 1.0


def test_nested_report_round_trips_with_exact_floats_and_nulls(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    report: dict[str, Any] = {
        "task": "binary",
        "n_samples": 3,
        "metrics": {"roc_auc": 1 / 3, "log_loss": None, "brier": 0.1 + 0.2},
        "curves": {"roc": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 2 / 3, 1.0], "thr": EXACT_FLOATS}},
        "warnings": [{"metric": "ece", "reason": "one class present", "value": None}],
        "flags": [True, False, None],
        "big_int": 2**63 + 1,
        "unicode": "modèle – 模型 🚀",
        "empty": {"list": [], "dict": {}},
    }
    created = make_evaluation(report=report)
    _assert_same_json(_reload(db_session, created.id).report, report)


finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none()
    | st.booleans()
    # the integers orjson can send back; wider literals read back as floats (session.json_loads)
    | st.integers(-(2**63), 2**64 - 1)
    | finite_floats
    | st.text(
        alphabet=st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=8
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(min_size=1, max_size=6).filter(lambda k: "\x00" not in k), children, max_size=4
        )
    ),
    max_leaves=20,
)


@settings(
    max_examples=40,
    deadline=None,
    # Rows from every example share the test's transaction and are rolled back with it.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(report=st.dictionaries(st.sampled_from(["a", "b", "c"]), json_values, max_size=3))
def test_any_json_report_round_trips(db_session: Session, report: dict[str, Any]) -> None:
    created = create_evaluation(
        db_session, task="regression", n_samples=1, report=report, headline={}
    )
    _assert_same_json(_reload(db_session, created.id).report, report)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused_on_every_backend(
    make_evaluation: MakeEvaluation, bad: float
) -> None:
    with pytest.raises(InvalidInput) as headline_error:
        make_evaluation(headline={"roc_auc": bad})
    assert headline_error.value.field == "headline.roc_auc"
    with pytest.raises(InvalidInput) as report_error:
        make_evaluation(report={"metrics": {"log_loss": bad}})
    assert report_error.value.field == "report"


def test_get_evaluation_of_an_unknown_id_is_none(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    make_evaluation()
    assert get_evaluation(db_session, str(uuid.uuid4())) is None
    assert get_evaluation(db_session, "not-a-uuid") is None
    assert get_evaluation(db_session, "x" * 100) is None


def test_unicode_names_models_and_tags_round_trip(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    name = "Évaluation ✓ 模型 🚀 " + "é" * 182  # 200 characters, more than 200 bytes
    assert len(name) == 200
    created = make_evaluation(name=name, model="μ-model/版本2", tags=["日本語", "emoji 🚀"])
    loaded = _reload(db_session, created.id)
    assert (loaded.name, loaded.model, loaded.tags) == (
        name,
        "μ-model/版本2",
        ["日本語", "emoji 🚀"],
    )
    assert list_evaluations(db_session, name=name)[1] == 1
    assert list_evaluations(db_session, tag="emoji 🚀")[1] == 1


def test_nul_in_text_is_refused_by_postgresql_only(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    # Documented difference: the API must refuse NUL before it reaches the database.
    if db_session.get_bind().dialect.name == "postgresql":
        with pytest.raises(DataError):
            make_evaluation(name="a\x00b")
        db_session.rollback()
    else:
        created = make_evaluation(name="a\x00b")
        assert _reload(db_session, created.id).name == "a\x00b"


def test_tags_are_stored_once_each_in_first_seen_order(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    created = make_evaluation(tags=("b", "a", "b", "c", "a"))
    assert _reload(db_session, created.id).tags == ["b", "a", "c"]
    assert _reload(db_session, make_evaluation().id).tags == []


def test_invalid_task_and_negative_sample_count_violate_constraints(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    with pytest.raises(IntegrityError):
        make_evaluation(task="ranking")
    db_session.rollback()
    with pytest.raises(IntegrityError):
        make_evaluation(n_samples=-1)
    db_session.rollback()


def test_server_default_created_at_reads_back_aware_utc(db_session: Session) -> None:
    # Rows written in plain SQL (other tools, data fixes) get the database's own timestamp.
    db_session.execute(
        text(
            "INSERT INTO evaluations (id, task, n_samples, report) "
            "VALUES ('00000000-0000-4000-8000-000000000000', 'binary', 1, '{}')"
        )
    )
    loaded = _reload(db_session, "00000000-0000-4000-8000-000000000000")
    assert loaded.created_at.utcoffset() == timedelta(0)
    assert abs(loaded.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert loaded.tags == []


def test_created_at_is_stored_as_utc_and_naive_datetimes_are_refused(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    evaluation = make_evaluation()
    evaluation.created_at = datetime(2026, 1, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    db_session.flush()
    loaded = _reload(db_session, evaluation.id)
    assert loaded.created_at == datetime(2026, 1, 1, 7, 30, tzinfo=UTC)
    assert loaded.created_at.tzinfo == UTC

    loaded.created_at = datetime(2026, 1, 1, 7, 30)  # naive: ambiguous
    with pytest.raises(StatementError, match="naive datetime"):
        db_session.flush()
    db_session.rollback()


def _at(evaluation: Evaluation, created_at: datetime) -> Evaluation:
    evaluation.created_at = created_at
    return evaluation


def test_list_evaluations_orders_newest_first_then_by_id_descending(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    oldest = _at(make_evaluation(), T0)
    tied = [_at(make_evaluation(), T0 + timedelta(hours=1)) for _ in range(4)]
    newest = _at(make_evaluation(), T0 + timedelta(hours=2, microseconds=1))
    db_session.flush()

    rows, total = list_evaluations(db_session)
    assert total == 6
    expected = [newest.id, *sorted((e.id for e in tied), reverse=True), oldest.id]
    assert [e.id for e in rows] == expected


def test_list_evaluations_orders_by_microseconds(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    first = _at(make_evaluation(), T0)
    second = _at(make_evaluation(), T0 + timedelta(microseconds=1))
    db_session.flush()
    assert [e.id for e in list_evaluations(db_session)[0]] == [second.id, first.id]


def test_pages_partition_the_list_and_total_ignores_paging(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    ids = [_at(make_evaluation(), T0 + timedelta(minutes=i)).id for i in range(7)]
    db_session.flush()
    newest_first = ids[::-1]

    pages = [list_evaluations(db_session, limit=3, offset=o) for o in (0, 3, 6, 9)]
    assert [total for _, total in pages] == [7, 7, 7, 7]
    assert [[e.id for e in rows] for rows, _ in pages] == [
        newest_first[0:3],
        newest_first[3:6],
        newest_first[6:7],
        [],
    ]
    assert [e.id for e in list_evaluations(db_session, limit=50)[0]] == newest_first
    assert list_evaluations(db_session, limit=0) == ([], 7)


def test_list_evaluations_filters_combine_with_and(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    a = make_evaluation(model="m1", name="nightly", task="binary", tags=["prod"])
    b = make_evaluation(model="m1", name="weekly", task="regression", tags=["prod", "gpu"])
    c = make_evaluation(model="m2", name="nightly", task="binary", tags=["dev"])
    d = make_evaluation()  # no model, name or tags

    def ids(**filters: Any) -> tuple[set[str], int]:
        rows, total = list_evaluations(db_session, **filters)
        return {e.id for e in rows}, total

    assert ids() == ({a.id, b.id, c.id, d.id}, 4)
    assert ids(model="m1") == ({a.id, b.id}, 2)
    assert ids(name="nightly") == ({a.id, c.id}, 2)
    assert ids(task="regression") == ({b.id}, 1)
    assert ids(tag="prod") == ({a.id, b.id}, 2)
    assert ids(model="m1", task="binary") == ({a.id}, 1)
    assert ids(model="m1", tag="gpu") == ({b.id}, 1)
    assert ids(model="m2", tag="prod") == (set(), 0)
    assert ids(model="M1") == (set(), 0)  # exact, case-sensitive


@pytest.mark.parametrize(
    "tag",
    ["a", 'quo"te', "back\\slash", "100%", "under_score", "[x]", "{}", "日本", " spaced ", "null"],
)
def test_tag_filter_matches_whole_tags_only(
    db_session: Session, make_evaluation: MakeEvaluation, tag: str
) -> None:
    exact = make_evaluation(tags=["other", tag])
    make_evaluation(tags=[tag + "x", "x" + tag, tag.strip() + "  "])
    make_evaluation(tags=[])
    make_evaluation(tags=[tag.upper() if tag.upper() != tag else "Z"])
    rows, total = list_evaluations(db_session, tag=tag)
    assert ([e.id for e in rows], total) == ([exact.id], 1)


def test_tag_filter_does_not_match_non_string_json(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    make_evaluation(tags=["1", "true"])
    assert list_evaluations(db_session, tag="1")[1] == 1
    assert list_evaluations(db_session, tag="[]")[1] == 0
    assert list_evaluations(db_session, tag="")[1] == 0


def test_list_without_report_does_not_load_it(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    created = make_evaluation(headline={"accuracy": 0.75})
    db_session.expunge_all()
    rows, total = list_evaluations(db_session, include_report=False)
    assert total == 1 and rows[0].id == created.id and rows[0].accuracy == 0.75
    with pytest.raises(InvalidRequestError):
        _ = rows[0].report


def test_floats_beyond_int64_read_back_as_floats_on_every_backend(
    db_session: Session, make_evaluation: MakeEvaluation
) -> None:
    # jsonb prints 1e20 as 100000000000000000000; read as an int, orjson could not encode it.
    report = {"rmse": 1e20, "tiny": -3e25, "count": 2**63 - 1, "big_count": 2**64 - 1}
    created = make_evaluation(report=report)
    loaded = _reload(db_session, created.id)
    assert loaded.report == report
    assert isinstance(loaded.report["rmse"], float) and isinstance(loaded.report["tiny"], float)
    assert isinstance(loaded.report["count"], int)
    orjson.dumps(loaded.report)
