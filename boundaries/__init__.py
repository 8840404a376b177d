"""Boundary-set import and the embedded default data (real Hackney/London sets with licences).

- ``catalog``: what is embedded under ``data/``, with provenance and licence for each file.
- ``readers``: read boundary, proxy, spend and classification files with row-level errors.
"""
