"""The aggregator: leaderboards (CSV, Markdown) from run records."""
