"""Starting esper's processes: ``esper ppo --nproc N`` through torch's launcher,
and how to start this process again (the resume hints).

The processes it starts find each other through torch.distributed
(``esper.training.distributed.collectives``); nothing here runs inside a training.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from esper.runtime.torchrun_env import launched_by_torchrun


def launch_local(nproc: int, esper_args: Sequence[str]) -> int:
    """``esper ppo --nproc N``: the same as ``torchrun --standalone --nproc-per-node N
    -m esper ppo ...``, through torch's own launcher, but exiting with the ranks'
    exit code (2 for bad input, 130/143 when stopped) instead of torchrun's traceback."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, get_args_parser

    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "-m", "esper", "ppo", *esper_args]
    )
    args.rdzv_backend, args.rdzv_endpoint, args.rdzv_id = "c10d", "localhost:0", str(uuid.uuid4())
    config, command, command_args = config_from_args(args)
    # The ranks say what went wrong themselves; the agent's own report of it is noise.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        elastic_launch(config=config, entrypoint=command)(*command_args)
    except ChildFailedError as exc:
        for rank, failure in sorted(exc.failures.items()):
            if failure.exitcode < 0:  # the ranks cannot say this themselves: the signal
                print(
                    f"esper: rank {rank} (pid {failure.pid}) was killed by {failure.signal_name()}",
                    file=sys.stderr,
                    flush=True,
                )
        codes = [failure.exitcode for failure in exc.failures.values()]
        return next((code for code in codes if code > 0), 1)
    except SignalException as exc:
        return 128 + int(exc.sigval)
    return 0


def restart_words() -> list[str]:
    """The words that start esper again the way this process was started."""
    return torchrun_words() or launcher()


def torchrun_words() -> list[str]:
    """How to start this torchrun job's esper again (resume hints); [] outside torchrun."""
    if not launched_by_torchrun():
        return []
    nodes = int(os.environ["WORLD_SIZE"]) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    words = ["torchrun", f"--nproc-per-node={os.environ.get('LOCAL_WORLD_SIZE', '1')}"]
    if nodes > 1:
        words += [f"--nnodes={nodes}", "--node-rank=NODE", "--rdzv-endpoint=HOST:PORT"]
    return [*words, "-m", "esper"]


def launcher() -> list[str]:
    """How to start esper again as this process was started: under ``uv run``
    (uv sets ``UV`` for what it runs), as ``python -m esper``, or by the script."""
    main = sys.modules.get("__main__")
    as_module = getattr(getattr(main, "__spec__", None), "name", "") == "esper.__main__"
    if os.environ.get("UV"):
        return ["uv", "run", "python", "-m", "esper"] if as_module else ["uv", "run", "esper"]
    if as_module:
        on_path = shutil.which("python")
        same = on_path and Path(on_path).resolve() == Path(sys.executable).resolve()
        return ["python" if same else sys.executable, "-m", "esper"]
    script = sys.argv[0] if sys.argv and sys.argv[0] else "esper"
    on_path = shutil.which("esper")
    if on_path and Path(on_path).resolve() == Path(script).resolve():
        return ["esper"]
    return [script if Path(script).name == "esper" else "esper"]
