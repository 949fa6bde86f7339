"""redialer's HTTP service (`redialer api`): provider callbacks, and later the public API."""
