"""Names every layer may import: domain errors and the algorithm version. Imports nothing else.

- ``errors``: the domain errors (each names its cause and its fix), mapped to HTTP status codes
  by ``api/errors.py`` and printed as one line by the CLI.
- ``version``: :data:`~domain.version.ALGORITHM_VERSION`, the version of the figures.
"""
