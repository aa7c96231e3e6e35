"""The training loop (`Trainer`), method-agnostic; projects subclass it for their step."""
