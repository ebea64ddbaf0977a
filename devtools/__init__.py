"""Development tools, not installed: the local System Log server, the event generator, the demo, the docs generator."""
