"""redialer: durable outbound call campaigns on Temporal.

This package is the domain every layer shares: the campaign spec, the pure retry schedule and the
settings. It imports nothing from Temporal so the schedule can be tested exhaustively on its own.
"""
