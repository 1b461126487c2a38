"""Pure sampling functions. Model-call convention: ``velocity(x, tau, text, mask) -> v`` in flow units."""
