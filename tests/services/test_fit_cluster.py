"""Fitting on a real Dask cluster (two worker processes) stores exactly what the in-process path stores."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from distributed import Client, LocalCluster, get_task_stream
from flask import Flask

from app.extensions import db
from app.models import FitRun, SkillParameters
from app.services.modelling.fitting import fit_parameters
from app.services.modelling.imports import import_log
from app.settings import SettingsError, current_settings
from tests.conftest import DATA_DIR, make_app

BUILDER = DATA_DIR / "assistments2009_builder_train.csv"
STORED = ("prior", "learn", "guess", "slip", "forget", "log_likelihood", "n_students", "n_responses")


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Two worker processes of one thread each, as `dask worker --nthreads 1` runs them."""
    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, host="127.0.0.1"
    ) as local:
        yield local


@pytest.fixture(scope="module")
def observer(cluster: LocalCluster) -> Iterator[Client]:
    """A client of our own, to read the scheduler's task stream (which worker ran what)."""
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        yield client


@pytest.fixture
def builder_slice(tmp_path: Path) -> Path:
    """The first 300 students of the ASSISTments 2009 builder set, on their 8 most answered skills (7.7k)."""
    log = pd.read_csv(BUILDER, dtype={"skill_name": str, "user_id": str})
    log = log[log["user_id"].isin(log["user_id"].drop_duplicates().head(300))]
    log = log[log["skill_name"].isin(log["skill_name"].value_counts().head(8).index)]
    path = tmp_path / "builder_slice.csv"
    log.to_csv(path, index=False)
    return path


def current_parameters(run_id: int | None) -> dict[str, tuple[Any, ...]]:
    rows = db.session.scalars(sa.select(SkillParameters).where(SkillParameters.fit_run_id == run_id))
    return {row.skill_id: tuple(getattr(row, name) for name in STORED) for row in rows}


def test_a_fit_on_the_cluster_stores_exactly_the_in_process_parameters(
    app: Flask, school: str, builder_slice: Path, cluster: LocalCluster, observer: Client
) -> None:
    options: dict[str, Any] = {"num_fits": 1, "seed": 7}
    with app.app_context():
        session = db.session()
        import_log(
            session, builder_slice, "assistments", school_name=school, rules=current_settings().mastery
        )
        here = fit_parameters(session, n_jobs=1, rules=current_settings().mastery, **options)
        with get_task_stream(client=observer) as stream:
            there = fit_parameters(
                session, cluster=cluster.scheduler_address, rules=current_settings().mastery, **options
            )

        assert len(here.fitted) == 8 and here.run_id != there.run_id
        in_process, on_cluster = current_parameters(here.run_id), current_parameters(there.run_id)
        assert sorted(in_process) == sorted(on_cluster) == sorted(f.skill_id for f in here.fitted)
        # Exactly equal, not close: the same fit_skill on the same rows with the same seed, and each pyBKT
        # model draws from its own RandomState(seed), wherever it runs.
        assert on_cluster == in_process
        assert [f.restarts for f in there.fitted] == [f.restarts for f in here.fitted]
        assert there.rejected == here.rejected and there.engine == here.engine
        assert session.get(FitRun, there.run_id).engine == here.engine  # type: ignore[union-attr]
        current = session.scalars(
            sa.select(SkillParameters.fit_run_id)
            .where(SkillParameters.skill_id.in_(list(on_cluster)))
            .where(SkillParameters.is_current)
        ).all()
        assert current == [there.run_id] * 8  # the cluster's fit is the current one

    # Both workers fitted: joblib's tasks (each a batch of skill fits) ran on each of the two processes.
    fits_by_worker: Counter[str] = Counter()
    for task in stream.data:  # joblib's task keys say how many calls each batch holds
        batch = re.match(r"batch_of_fit_skill_(\d+)_calls-", str(task["key"]))
        if batch:
            fits_by_worker[task["worker"]] += int(batch[1])
    assert set(fits_by_worker) == set(cluster.scheduler_info["workers"]), fits_by_worker
    assert fits_by_worker.total() == 8, fits_by_worker  # every skill fitted once, on the cluster


def test_fit_params_fits_where_fit_cluster_says_and_cluster_overrides_it(
    app: Flask, database_url: str, school: str, builder_slice: Path, cluster: LocalCluster
) -> None:
    address = cluster.scheduler_address
    with app.app_context():
        import_log(
            db.session(), builder_slice, "assistments", school_name=school, rules=current_settings().mastery
        )
    configured = make_app(database_url, FIT_CLUSTER=address)
    try:
        runner = configured.test_cli_runner()
        result = runner.invoke(args=["fit-params", "--num-fits", "1", "--skills", "123"])
        assert result.exit_code == 0, result.output
        assert f"fitted on the Dask cluster at {address}" in result.output
        assert "Fitted 1, kept 0, rejected 0." in result.output
        here = runner.invoke(args=["fit-params", "--num-fits", "1", "--skills", "123", "--cluster", ""])
        assert here.exit_code == 0 and "Dask" not in here.output, here.output
        with configured.app_context():
            first, second = db.session.scalars(
                sa.select(SkillParameters)
                .where(SkillParameters.skill_id == "123")
                .order_by(SkillParameters.version)
            ).all()[-2:]
            assert tuple(getattr(first, n) for n in STORED) == tuple(getattr(second, n) for n in STORED)

        refused = runner.invoke(args=["fit-params", "--cluster", "10.0.0.5:8786"])
        assert refused.exit_code == 2 and "tcp://10.0.0.5:8786" in refused.output, refused.output
        both = runner.invoke(args=["fit-params", "--cluster", address, "--jobs", "2"])
        assert both.exit_code == 2 and "--jobs counts this machine's processes" in both.output
    finally:
        with configured.app_context():
            db.engine.dispose()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("  ", None),
        ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("tls://[::1]:8786", "tls://[::1]:8786"),
    ],
)
def test_fit_cluster_setting(tmp_path: Path, value: str, expected: str | None) -> None:
    app = make_app(f"sqlite:///{tmp_path / 's.sqlite3'}", FIT_CLUSTER=value)
    with app.app_context():
        assert current_settings().fit_cluster == expected


@pytest.mark.parametrize("value", ["10.0.0.5:8786", "tcp://10.0.0.5", "http://h:8786", "tcp://h:70000", 8786])
def test_a_bad_fit_cluster_stops_start_up(tmp_path: Path, value: object) -> None:
    with pytest.raises(SettingsError) as refused:
        make_app(f"sqlite:///{tmp_path / 's.sqlite3'}", FIT_CLUSTER=value)
    assert str(refused.value).startswith("invalid FIT_CLUSTER setting: must be a Dask scheduler's address")
