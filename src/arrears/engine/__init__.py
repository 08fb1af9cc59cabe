"""The engine: evaluates accounts and carries out decisions, in production and simulation alike."""
