"""The HTTP matching service."""
