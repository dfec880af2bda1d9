"""The ``balans cloud`` command line: thin over the domain packages, each of which keeps its own commands."""
