"""Foreign checkpoint formats users already have, read without running their code (restricted unpickler), one
module per source, and `load` / `describe` that sniff a path and dispatch."""
