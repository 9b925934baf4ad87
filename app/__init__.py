"""evalserve: a REST service for evaluating machine-learning models."""

__version__ = "0.1.0"
