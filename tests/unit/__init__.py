"""Unit tests of the pure domain core: domain objects built directly, no database."""
