"""The distributed runtime: source, processors, sink and supervisor as OS processes."""
