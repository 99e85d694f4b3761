"""Provider adapters, one module per API family, behind the interface in ``base``."""
