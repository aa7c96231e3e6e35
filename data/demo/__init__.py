"""Demo data: real healthy T1 templates from pinned PyPI wheels plus synthetic anomalies."""
