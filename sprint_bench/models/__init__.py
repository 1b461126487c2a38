"""nn.Modules: backbone adapters, text encoder."""
