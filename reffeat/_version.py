"""The one version of reffeat (setup.cfg reads it: ``attr: reffeat._version.__version__``)."""

__version__ = "0.1.0"
