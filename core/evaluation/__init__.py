"""The evaluation protocol: scoring pipeline, threshold rules, metrics, the evaluator and its result."""
