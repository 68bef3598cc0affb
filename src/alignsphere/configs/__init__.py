"""YAML training configs shipped with alignsphere; list them with ``bundled_config_names``."""
