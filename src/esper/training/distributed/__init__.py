"""One training over several processes: collectives, launching ranks, and
naming the rank that failed."""
