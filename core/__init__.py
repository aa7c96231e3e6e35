"""Method-agnostic machinery: CLI, configuration, training loop, evaluation."""
