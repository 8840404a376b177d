"""The pure core: apportion whole pence from reporting areas to atoms, and atoms to targets.

numpy and pandas only: no geometry library, database driver or web framework is imported here
(an import contract in pyproject.toml keeps it so), so every rule about money can be tested in
isolation and reused by the CLI, API and benchmarks.

- ``pipeline``: the one pipeline everyone calls: compute a run, publish it to any target set.
- ``money``: running-total rounding of whole pence (every line adds back exactly).
- ``apportion``: spread every line over the atoms of its reporting area by a proxy, in one pass.
- ``crosswalk``: sum the atom product into any target geography through a crosswalk.
- ``conservation``: the per-run report of what was allocated, what was not, and why.
- ``summary``: the flat per-feature properties served to maps and GIS clients, and budgets.
"""
