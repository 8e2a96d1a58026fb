"""Jobs floor: run a job function over Configs × seeds on local processes or
Dask, resumable through a result store — ``store`` (job hashing, on-disk
results), ``executors`` (inline, local processes, Dask), ``runner`` (the
``Runner``), ``progress``. The job function is passed in: nothing here imports
the experiments or the commands (floors: README's module map).

    from reffeat.jobs import Runner
    results = Runner(scheduler="local:2", store="runs/store").map(fn, configs)
"""

from .executors import THREAD_VARS, WorkerDied, execute, import_distributed, parse_scheduler
from .progress import Progress
from .runner import Outcome, Runner, SweepError
from .store import STORE_FORMAT, Job, Store, fn_name

__all__ = ["Runner", "Outcome", "SweepError", "Job", "Store", "STORE_FORMAT", "fn_name", "Progress",
           "execute", "parse_scheduler", "import_distributed", "WorkerDied", "THREAD_VARS"]
