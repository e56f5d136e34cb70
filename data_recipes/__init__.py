"""Dataset sources (embedded and real), imbalance recipes and dataset statistics."""
