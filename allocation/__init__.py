"""The pure core: apportion whole pence from reporting areas to atoms, and atoms to targets.

numpy and pandas only: no geometry library, database driver or web framework is imported here,
so every rule about money can be tested in isolation and reused by the CLI, API and benchmarks.

- ``money``: largest-remainder splitting of whole pence (every line adds back exactly).
- ``apportion``: spread each spend line over the atoms of its reporting area by a proxy.
- ``crosswalk``: sum atom-level pence into any target geography through a crosswalk.
- ``conservation``: the per-run report of what was allocated, what was not, and why.
- ``summary``: the flat per-feature properties served to maps and GIS clients.
"""
