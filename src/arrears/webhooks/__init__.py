"""Outbound webhooks: state-change events posted, signed, to the endpoints a provider registers.

- `events`: which history lines are events, and what each says (pure);
- `outbox`: the journal's side: a delivery row per wanting endpoint, in the change's transaction;
- `dispatcher`: posts due deliveries, retries them with backoff for three days;
- `service`: endpoints and deliveries as the API and the CLI manage and list them.

See docs/webhooks.md.
"""
