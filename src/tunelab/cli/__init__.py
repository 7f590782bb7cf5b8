"""The ``tunelab`` command line: thin parsers over the library (``main``), one module per command group."""
