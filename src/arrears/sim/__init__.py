"""The simulation: a scenario file run through the production engine on a virtual clock."""
