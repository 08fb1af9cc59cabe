"""Real protocol peers (SMSC, HTTP gateways, SMTP) that the channel tests talk to over sockets."""
