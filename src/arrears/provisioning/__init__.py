"""Provisioning adapters: how a decision reaches the provider's network (SPEC §8).

Each adapter (log, webhook, radius, command) implements the small `Adapter`
interface of `base`; the dispatcher in `arrears.engine.provisioning` knows
nothing else about them. `registry.adapter_from_config` builds one from its
configuration.
"""
