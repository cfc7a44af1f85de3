"""riskstream services."""
