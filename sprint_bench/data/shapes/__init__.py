"""The built-in "shapes" world (DESIGN.md §3)."""
