"""Running arrears in production: metrics, health and structured logs."""
