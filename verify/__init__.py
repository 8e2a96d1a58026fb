"""Alias for running verify from a checkout: ``python -m verify`` is
``python -m reffeat.verify``. This folder holds the committed report
(REPORT.md, results.json, figures/) that ``python -m reffeat.verify --out verify``
regenerates; it is not installed."""
