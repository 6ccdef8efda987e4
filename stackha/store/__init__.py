"""Configuration stores: one module per store behind the interface in ``base``."""
