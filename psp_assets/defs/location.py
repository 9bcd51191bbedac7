"""What every area of the code location shares: the workspace paths, the PHP runtimes, the IO manager of
the JSON handles, and the executor."""

import dagster as dg

from psp_assets.defs.resources import JsonHandleIOManager, PhpResource, PspWorkspace


@dg.definitions
def location() -> dg.Definitions:
    return dg.Definitions(
        # the default of every job without its own, the UI's ad-hoc asset materializations among them
        executor=dg.in_process_executor,
        resources={"workspace": PspWorkspace(), "php": PhpResource(), "io_manager": JsonHandleIOManager()},
    )
