"""pytest-cov in a forked worker: its coverage data saved as an xdist worker's would be."""

import os

from . import channel


def save_coverage(config):
    """pytest-cov measures in the zygote and so in every fork; each worker saves its own
    data file (coverage picks a new name after a fork) and the zygote combines them all
    at its end, as pytest-cov does under xdist."""
    plugin = config.pluginmanager.getplugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    cov = getattr(controller, "cov", None)
    if cov is None:
        return
    try:
        cov.stop()
        cov.save()
    except Exception as e:
        channel.emit({"e": "notice", "text": "coverage data of worker %d not saved: %s"
                      % (os.getpid(), e)})
