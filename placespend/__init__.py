"""Placespend: apportion public spend to wards and neighbourhoods.

This package holds what ties the layers together: settings, domain errors, the run
orchestrator (store -> geo -> allocation -> store) and the command line.
"""

__version__ = "0.1.0"
