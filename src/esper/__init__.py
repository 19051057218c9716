"""esper."""
