"""The ``alignsphere`` command line: one module per subcommand."""
