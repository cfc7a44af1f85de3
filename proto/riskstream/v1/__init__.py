"""Generated protobuf code for riskstream.v1 (do not edit: `make proto`)."""
