"""Built-in worlds, prompt sets and caches."""
