"""One module per revision, `NNNN_slug.py`; see `redialer/store/migrations/__init__.py`."""
