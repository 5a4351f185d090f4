"""The Analytics page: what the runs gained, by prompt type, engine, model and technique."""
