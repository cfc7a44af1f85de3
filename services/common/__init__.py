"""Code shared by every riskstream service: errors, wire formats, Kafka plumbing.

Anything two services need lives here once, never copied into each.
"""
