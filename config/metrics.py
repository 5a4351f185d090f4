"""prometheus-client's multiprocess mode for gunicorn's worker processes.

Each worker writes its metrics to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds up
every process's files, so a scrape shows the whole server rather than whichever worker answered.
``manage.py serve`` empties the folder before gunicorn starts (files of a previous run's processes
would be added in) and passes this module to gunicorn as its config (``-c python:config.metrics``),
for its ``child_exit`` hook. Only gunicorn settings may be defined at the top of this module.
"""

import shutil
from pathlib import Path

from prometheus_client import multiprocess


def multiprocess_dir_prepare(path: Path) -> Path:
    """An empty folder, owner-only, for this run's metric files."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700, parents=True)
    return path


def child_exit(server, worker) -> None:
    """gunicorn's hook: a worker's live gauges go with it (its counters stay counted)."""
    multiprocess.mark_process_dead(worker.pid)
