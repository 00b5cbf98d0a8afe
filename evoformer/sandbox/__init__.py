"""Run untrusted candidate code in a separate, isolated, resource-limited process."""
