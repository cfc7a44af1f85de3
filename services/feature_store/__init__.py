"""Feature store: one definition of each feature, Feast repository, fast Redis reader/writer."""
