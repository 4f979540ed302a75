"""Other stream engines run on the same stream as streamlec, for comparison (``streamlec
baseline``): each runs as its own OS process, is killed for real, and writes a run directory."""
