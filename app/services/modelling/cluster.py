"""Fitting on a Dask cluster (``FIT_CLUSTER``, ``flask fit-params --cluster``), through joblib's dask backend.

The per-skill fits that ``fitting.fit_frame`` runs in joblib's local processes go to the workers of a Dask
scheduler instead: the same ``fit_skill`` on the same rows with the same arguments. Each pyBKT model draws
its starting points from its own ``RandomState(seed)``, so where a fit runs, and what ran there before, does
not change its result: the stored parameters equal the in-process path's
(``tests/services/test_fit_cluster.py``). Each skill's rows travel with its task (joblib scatters them to a
worker): workers never open the database and need no settings. A worker imports ``fitting`` when it
unpickles its first task, which installs the service's EM loop there (``pybkt_engine.install``), as in
joblib's local workers; pyBKT's own ``parallel`` stays off there too (``fitting._pybkt_fit``).

``connect`` checks, before any fit, that every worker runs the same fitting code, pyBKT, numpy and E-step
build as this process (``fingerprint``), and refuses the cluster otherwise: the results could differ.
The code is hashed as it is on disk, so a worker still running code it imported before an upgrade passes:
workers are restarted after an upgrade (README, "Fitting on a cluster").
Needs the optional extra ``pip install '.[cluster]'`` (Dask ``distributed``) here and on every worker.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import distributed
import structlog
from joblib import parallel_config, register_parallel_backend
from joblib._dask import DaskDistributedBackend

from app.services.modelling import fitting, pybkt_engine

# distributed's Client is only partly annotated (its calls are untyped for mypy): used as Any here.
Client: Any = distributed.Client
BACKEND = "tutor-dask"
CONNECT_TIMEOUT_SECONDS = 30.0  # to reach the scheduler, and for it to have a worker
log = structlog.stdlib.get_logger(__name__)


class _Backend(DaskDistributedBackend):
    """joblib's dask backend, except that it never reports a single job.

    joblib runs a call whose backend offers one job in the calling process, so a cluster with one worker
    thread would silently fit here instead; two jobs keep a second task queued on that worker.
    """

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        return max(2, int(super().effective_n_jobs(n_jobs)))


register_parallel_backend(BACKEND, _Backend)


def fingerprint() -> dict[str, Any]:
    """What a fit's result depends on besides its arguments, in this process (run on workers too)."""
    digest = hashlib.sha256()
    for module in (fitting, pybkt_engine):  # the fitting code, as imported here
        digest.update(Path(str(module.__file__)).read_bytes())
    return {
        "code": digest.hexdigest()[:16],
        "pybkt": pybkt_engine.pybkt_version(),
        "numpy": importlib.metadata.version("numpy"),
        "e_step": pybkt_engine.choose_e_step(1, 1),  # compiled, or pure Python where the build has none
        "em_loop_installed": _em_loop_installed(),
    }


def _em_loop_installed() -> bool:
    import pyBKT.fit.EM_fit as pybkt_em

    return bool(pybkt_em.EM_fit is pybkt_engine.em_fit)


def _worker_fingerprint() -> dict[str, Any]:
    return {**fingerprint(), "host": socket.gethostname(), "pid": os.getpid()}


@dataclass(frozen=True)
class Cluster:
    address: str  # the scheduler's
    workers: dict[str, dict[str, Any]]  # worker address -> its fingerprint (host, pid)
    threads: int  # worker threads in all: fits at once


def connect(address: str) -> tuple[Any, Cluster]:
    """A client of the scheduler at ``address`` whose workers were checked; FitError when unusable."""
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise fitting.FitError(
            f"cannot reach the Dask scheduler at {address} (FIT_CLUSTER): {error}"
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_SECONDS)
        except TimeoutError:
            raise fitting.FitError(
                f"the Dask scheduler at {address} has no workers (after {CONNECT_TIMEOUT_SECONDS:.0f} s)"
            ) from None
        try:
            workers: dict[str, dict[str, Any]] = client.run(_worker_fingerprint)
        except Exception as error:  # e.g. the project is not installed on a worker: it cannot unpickle this
            raise fitting.FitError(
                f"the workers of {address} cannot run the tutor's fitting code ({type(error).__name__}: "
                f"{error}); install this release on every worker: pip install '.[cluster]'"
            ) from None
        ours = fingerprint()
        differing = {
            worker: {key: value for key, value in theirs.items() if key in ours and value != ours[key]}
            for worker, theirs in workers.items()
        }
        differing = {worker: keys for worker, keys in differing.items() if keys}
        if differing:
            raise fitting.FitError(
                f"workers of {address} would fit differently from this process ({ours}): {differing}; "
                "run the same release, pyBKT build and numpy on every worker"
            )
        threads = sum(int(n) for n in client.ncores().values())
    except BaseException:
        client.close()
        raise
    return client, Cluster(address, workers, threads)


@contextmanager
def fits_on(address: str) -> Iterator[Cluster]:
    """Within the block, ``fitting.fit_frame(..., cluster=True)`` fits on the cluster at ``address``."""
    client, cluster = connect(address)
    log.info(
        "fit.cluster",
        scheduler=address,
        workers=len(cluster.workers),
        threads=cluster.threads,
        hosts=sorted({str(w["host"]) for w in cluster.workers.values()}),
    )
    try:
        with parallel_config(BACKEND, client=client, wait_for_workers_timeout=CONNECT_TIMEOUT_SECONDS):
            yield cluster
    finally:
        client.close()
