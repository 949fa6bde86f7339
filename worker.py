"""The redialer worker."""
