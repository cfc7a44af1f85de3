"""riskstream's Feast repository: ``feature_store.yaml`` and the definitions in ``repo.py``."""
