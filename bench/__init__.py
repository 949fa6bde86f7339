"""Benchmarks: `python -m bench` (bench/run.py: the engine's ceiling and redialer beside it) and
`python -m bench.twilio_path` (real calls: history events per attempt on the Twilio path, verified
status callbacks per second through `redialer api`)."""
