"""The pure domain core: figures, rules, exclusions, decisions and schedules.

Nothing here performs I/O or reads the clock; every function that depends on
time takes the instant as an argument.
"""
