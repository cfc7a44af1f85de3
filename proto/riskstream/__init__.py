"""riskstream protobuf packages."""
